#!/usr/bin/env bash
# Builds llama.cpp's llama-server from source the package index serves, and caches it.
#
#   bash scripts/llamacpp/build_server.sh [--cached-only]   # prints the binary's path
#
# The source: the llama-cpp-python sdist, which vendors llama.cpp's whole tree
# (vendor/llama.cpp, tools/server included). Only the llama-server target is built: CPU backend,
# Release, no OpenSSL (loopback only), no web UI (its provisioning step would download the
# prebuilt assets from a Hugging Face bucket: LLAMA_USE_PREBUILT_UI, tools/ui/CMakeLists.txt).
# The result lives outside the checkout, keyed by version, so a warm run takes a moment:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/llama-index-llms-ai21/llama-server-<version>-<arch>/
#
# Exit status: 0 with the path on stdout; 3 when the sdist cannot be downloaded (the caller
# skips its suite, loudly); 4 with --cached-only when nothing is cached (nothing is built);
# anything else is a failure.
set -euo pipefail

VERSION="0.3.36"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/llama-index-llms-ai21"
# GGML_NATIVE (the default) tunes the build for this CPU: the architecture and the CPU's
# flags are part of the key, so a cache copied to another machine is never run there.
cpu_key="$(uname -m)-$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null | sha256sum | cut -c1-8)"
DEST="$CACHE_ROOT/llama-server-$VERSION-$cpu_key"
JOBS="${LLAMA_BUILD_JOBS:-2}"
t0=$(date +%s)
say() { echo "==> [build_server $(($(date +%s) - t0))s] $*" >&2; }

if [ -x "$DEST/bin/llama-server" ]; then
    echo "$DEST/bin/llama-server"
    exit 0
fi
if [ "${1:-}" = "--cached-only" ]; then
    echo "build_server: llama-server $VERSION is not built yet (./dev test-llamacpp builds it)" >&2
    exit 4
fi

for tool in cmake c++; do
    command -v "$tool" >/dev/null || { echo "build_server: '$tool' is needed to build llama-server" >&2; exit 1; }
done

mkdir -p "$CACHE_ROOT"
work="$(mktemp -d "$CACHE_ROOT/llama-server-building-XXXXXX")"
trap 'rm -rf "$work"' EXIT

say "downloading the llama-cpp-python $VERSION sdist (it vendors llama.cpp)"
# pip prepares the sdist's metadata too (scikit-build-core in an isolated env: half a minute);
# a failure here means the index could not deliver it: exit 3, the caller skips loudly.
if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    "llama-cpp-python==$VERSION" -d "$work" >"$work/download.log" 2>&1; then
    tail -n 5 "$work/download.log" >&2
    exit 3
fi
sdist="$work/llama_cpp_python-$VERSION.tar.gz"
[ -f "$sdist" ] || { echo "build_server: pip saved no $sdist" >&2; exit 1; }

say "unpacking"
tar -xzf "$sdist" -C "$work"
src="$work/llama_cpp_python-$VERSION/vendor/llama.cpp"
[ -f "$src/tools/server/CMakeLists.txt" ] || { echo "build_server: no tools/server in $src" >&2; exit 1; }

say "configuring (cmake, Release, CPU)"
cmake -S "$src" -B "$work/build" -G "$(command -v ninja >/dev/null && echo Ninja || echo 'Unix Makefiles')" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_TOOLS=ON \
    -DGGML_BACKEND_DL=OFF \
    >"$work/configure.log" 2>&1 || { tail -n 40 "$work/configure.log" >&2; exit 1; }

say "building llama-server with $JOBS jobs (5 minutes on a quiet 2-core machine, longer when it is busy)"
cmake --build "$work/build" --target llama-server -j "$JOBS" >"$work/build.log" 2>&1 \
    || { tail -n 60 "$work/build.log" >&2; exit 1; }

bin="$work/build/bin/llama-server"
[ -x "$bin" ] || { echo "build_server: the build made no $bin" >&2; exit 1; }
"$bin" --version >"$work/version.txt" 2>&1 || { cat "$work/version.txt" >&2; exit 1; }

staging="$work/install"
mkdir -p "$staging/bin"
cp "$bin" "$staging/bin/"
cp "$work/version.txt" "$staging/"
# Another run may have finished the same build meanwhile: either copy will do.
mv -T "$staging" "$DEST" 2>/dev/null || true
# Builds of other versions are never used again.
find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -name 'llama-server-*' ! -name "llama-server-$VERSION-$cpu_key" \
    ! -name 'llama-server-building-*' -exec rm -rf {} +
say "built $(head -n 1 "$DEST/version.txt")"
echo "$DEST/bin/llama-server"
