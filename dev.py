#!/usr/bin/env python3
"""The project's two commands, runnable with nothing installed but Python 3.11.

    python3 dev.py demo     the example federation: start it and show what it serves
    python3 dev.py test     ruff, mypy (strict) and pytest with warnings as errors

Both first make `.venv` and install the project into it (again only when
`pyproject.toml` changed), so a fresh clone needs no other step.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"


def _say(line: str) -> None:
    print(f"[dev] {line}", flush=True)


def _ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - run by any python3 before the venv exists
        sys.exit("dsgo needs Python 3.11 or newer; this is " + sys.version.split()[0])
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        _say("creating .venv")
        venv.create(VENV, with_pip=True)
    _say("installing the project and its test tools into .venv (once)")
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(wanted)


def _run(*argv: str) -> int:
    return subprocess.run(list(argv), cwd=ROOT).returncode


def test(args: list[str]) -> int:
    py = str(BIN / "python")
    for step in (
        [py, "-m", "ruff", "check", "gateway", "connectors", "tests", "bench", "dev.py"],
        [
            py,
            "-m",
            "ruff",
            "format",
            "--check",
            "gateway",
            "connectors",
            "tests",
            "bench",
            "dev.py",
        ],
        [py, "-m", "mypy"],
        [py, "-m", "pytest", "-W", "error", *args],
    ):
        _say(" ".join(Path(step[0]).name if i == 0 else s for i, s in enumerate(step)))
        code = _run(*step)
        if code:
            return code
    return 0


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in {"demo", "test"}:
        print(__doc__)
        return 2
    _ensure_venv()
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "test":
        return test(rest)
    return _run(str(BIN / "dsgo"), "demo", *rest)


if __name__ == "__main__":
    raise SystemExit(main())
