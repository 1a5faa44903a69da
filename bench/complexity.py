"""The share of functions whose cyclomatic complexity is over 10 (radon), the figure issue
14 sets under 5 % (starlette 4.1 %, httpx 1.8 %, joserfc 0.8 %).

Not a speed figure but a shape one: a function that branches more than ten ways cannot be
read, or tested, one step at a time. Every function and method of ``gateway/`` and
``connectors/`` counts (closures count inside the function that holds them, as radon
does); the worst are listed.

    .venv/bin/python bench/complexity.py [--top N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from radon.complexity import cc_visit
from radon.visitors import Class, Function

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "connectors")
LIMIT = 10


def functions() -> list[tuple[Path, Function]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for block in cc_visit(path.read_text(encoding="utf-8")):
                if not isinstance(block, Class):
                    found.append((path.relative_to(ROOT), block))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=15, help="how many of the worst to list")
    top = parser.parse_args().top
    every = functions()
    over = sorted((f for f in every if f[1].complexity > LIMIT), key=lambda f: -f[1].complexity)
    share = 100 * len(over) / len(every)
    print(f"functions: {len(every)}, complexity over {LIMIT}: {len(over)} = {share:.1f} % (target < 5 %)")
    for path, function in over[:top]:
        print(f"  {function.complexity:3d}  {path}:{function.lineno} {function.fullname}")


if __name__ == "__main__":
    main()
