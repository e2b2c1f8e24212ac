"""The mutation score per module, from `mutmut results --all true` on stdin.

Each line is `    <module>.x_<function>__mutmut_<n>: <status>`. Killed (and timed-out) mutants
count as caught; survivors and mutants no selected test executes ("no tests") do not.
"""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict

LINE = re.compile(r"^\s*(?P<module>[\w.]+?)\.x[_ǁ]\S*__mutmut_\d+: (?P<status>.+?)\s*$")
CAUGHT = {"killed", "timeout"}


def main() -> None:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for line in sys.stdin:
        match = LINE.match(line)
        if match:
            counts[match["module"]][match["status"]] += 1
    total: Counter[str] = Counter()
    print(
        f"{'module':45} {'mutants':>7} {'killed':>7} {'survived':>8} {'no tests':>8} {'score':>6}"
    )
    for module in sorted(counts):
        c = counts[module]
        total.update(c)
        _row(module, c)
    _row("all", total)


def _row(name: str, c: Counter[str]) -> None:
    mutants = sum(c.values())
    caught = sum(c[s] for s in CAUGHT)
    score = f"{100 * caught / mutants:.1f}%" if mutants else "-"
    print(f"{name:45} {mutants:>7} {caught:>7} {c['survived']:>8} {c['no tests']:>8} {score:>6}")


if __name__ == "__main__":
    main()
