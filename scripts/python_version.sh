# Sourced by scripts/test_lowest.sh and scripts/test_newest.sh.
# python_of X.Y [path]: a Python X.Y that runs, the first of `path` (a variable's value the user
# set), pythonX.Y on PATH and pyenv's newest versions/X.Y.*; prints nothing if there is none.
python_of() {
    local version="$1" candidate
    for candidate in "${2:-}" "$(command -v "python$version" || true)" \
        $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".*/bin/python 2>/dev/null | sort -V -r); do
        if [ -n "$candidate" ] && [ -x "$candidate" ] \
            && [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$version" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 0
}
