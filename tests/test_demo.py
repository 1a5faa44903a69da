"""The README's main command: the pilot federation end to end, then nothing left running."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


def free_block(size: int = 5) -> int:
    """The first of ``size`` consecutive free loopback ports, below the kernel's ephemeral
    range (32768-60999 here): an outgoing connection cannot take one before the demo binds it."""
    for _ in range(100):
        base = random.randrange(20_000, 32_000 - size)
        try:
            for port in range(base, base + size):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no block of free ports")


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _table(out: str, name: str) -> list[str]:
    """The lines of the table that answers question ``name``, header to row count."""
    lines = out[out.index(f" asks ({name}): ") :].splitlines()
    first = lines.index("") + 1
    return lines[first : lines.index("", first)]


def test_demo_answers_the_pilot_questions_and_stops_everything(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "examples" / "pilot", tmp_path / "examples" / "pilot", ignore=shutil.ignore_patterns("state")
    )
    base = free_block()
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "demo", "--once", "--root", str(tmp_path), "--port", str(base)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    out = done.stdout
    assert "making a development CA" in out and (tmp_path / "keys" / "ca" / "root.cert.pem").exists()
    assert "all healthy in" in out
    labels = _table(out, "labels")
    assert [line.split("  ")[0] for line in labels[2:-1]] == [
        "Hugo de Vrieslaan 7, 1097 EA Amsterdam",
        "Zaaiersweg 12, 1097 SR Amsterdam",
        "Zaaiersweg 14, 1097 SR Amsterdam",
    ]
    assert labels[-1] == "(3 rows)"
    counts = {name: _table(out, name)[-1] for name in ("insulation", "materials", "optoppen")}
    assert counts == {"insulation": "(6 rows)", "materials": "(5 rows)", "optoppen": "(8 rows)"}
    assert out.count("Answer complete") == 4
    assert "Bouwbedrijf De Vries B.V. (EU.EORI.NL000000101)" in out and "fields withheld by its policy" in out
    assert "Woonstichting De Nieuwe Stad (EU.EORI.NL000000102)" in out
    assert "curl -H" in out
    assert not any(listening(port) for port in range(base, base + 5))


def test_demo_keys_are_made_once_and_reused(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "examples" / "pilot", tmp_path / "examples" / "pilot", ignore=shutil.ignore_patterns("state")
    )
    argv = [
        sys.executable,
        "-m",
        "gateway.cli",
        "demo",
        "--once",
        "--root",
        str(tmp_path),
        "--question",
        "labels",
    ]
    first = subprocess.run([*argv, "--port", str(free_block())], capture_output=True, text=True, timeout=120)
    key = (tmp_path / "keys" / "EU.EORI.NL000000101" / "key.pem").read_bytes()
    second = subprocess.run([*argv, "--port", str(free_block())], capture_output=True, text=True, timeout=120)
    assert first.returncode == second.returncode == 0, second.stderr
    assert "making" not in second.stdout
    assert (tmp_path / "keys" / "EU.EORI.NL000000101" / "key.pem").read_bytes() == key


def test_demo_hints_work_as_printed_with_the_ports_it_uses(tmp_path: Path) -> None:
    """The `dsgo token`, `curl` and `dsgo query` lines the demo prints, run as printed,
    reach the pilot on the ports it was moved to (not the files' 8200-8204)."""
    import os
    import signal
    import time

    shutil.copytree(
        ROOT / "examples" / "pilot", tmp_path / "examples" / "pilot", ignore=shutil.ignore_patterns("state")
    )
    base = free_block()
    log = tmp_path / "demo.log"
    argv = [sys.executable, "-m", "gateway.cli", "demo", "--root", ".", "--port", str(base)]
    with log.open("w") as out:
        demo = subprocess.Popen(argv, cwd=tmp_path, stdout=out, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 120
        while "serving until Ctrl-C" not in log.read_text() and demo.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        text = log.read_text()
        lines = text[text.index("Look around") :].splitlines()
        hints = [line.strip() for line in lines if line.strip().startswith(("TOKEN=", "curl", "DSGO_"))]
        assert len(hints) == 3 and f"DSGO_REGISTRY_URL=http://127.0.0.1:{base}" in hints[0], text
        env = {k: v for k, v in os.environ.items() if not k.startswith("DSGO_")}
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", "\n".join(hints)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(60)
    assert done.returncode == 0, done.stderr
    assert "<html" in done.stdout and "(3 rows)" in done.stdout
    assert not any(listening(port) for port in range(base, base + 5))


def test_demo_question_option_asks_that_question_only(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "examples" / "pilot", tmp_path / "examples" / "pilot", ignore=shutil.ignore_patterns("state")
    )
    argv = [sys.executable, "-m", "gateway.cli", "demo", "--once", "--root", str(tmp_path)]
    done = subprocess.run(
        [*argv, "--port", str(free_block()), "--question", "optoppen"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert [
        line.split(" asks ")[1].split(":")[0] for line in done.stdout.splitlines() if " asks (" in line
    ] == ["(optoppen)"]
    assert "yes: 2 storeys" in done.stdout and done.stdout.count("Answer complete") == 1


def test_demo_refuses_a_question_it_does_not_know_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "demo",
            "--once",
            "--root",
            str(tmp_path),
            "--question",
            "nope",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "invalid choice: 'nope'" in done.stderr and "Traceback" not in done.stderr
