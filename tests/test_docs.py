"""Every shell block of README.md and examples/*/README.md runs as written.

A block is a fenced ``sh`` block. It runs with ``bash -e -o pipefail`` from the root of a
fresh copy of the repository (its tracked files, with ``.venv`` linked to the venv that
runs the tests, and ``dsgo`` not on PATH, as after a clone). The ports the docs and the
example files name (the hello node's 8100, the pilot's 8200-8205 and 18200-18204) are
moved to free ones, in the blocks and in the copy's files alike, so the blocks run as a
reader would run them, only elsewhere. The blocks of one file run in order; the servers
they start in the background are stopped at the end. The main README's blocks run
against the pilot, started in the copy as its README says (``dsgo demo``, in another
terminal).

A block right after ``<!-- not run by tests/test_docs.py: REASON -->`` is not run; the
reason must be given. A failure names the file and line of the block, its exit status
and the end of its output.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXAMPLES = sorted((ROOT / "examples").glob("*/README.md"))
DOC_PORTS = (8100, 8200, 8201, 8202, 8203, 8204, 8205, 18200, 18201, 18202, 18203, 18204)
PILOT_PORTS = (8200, 8201, 8202, 8203, 8204)
SKIP = re.compile(r"<!-- not run by tests/test_docs\.py:(.*?)-->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")
BLOCK_TIMEOUT = 240

pytestmark = pytest.mark.integration


@dataclass(frozen=True, slots=True)
class Block:
    file: Path
    line: int  # of the opening fence
    text: str
    skipped: str | None  # the reason, when marked not to be run
    section: str  # the heading above it

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line} ({self.section})"


def blocks(file: Path) -> list[Block]:
    """The ``sh`` blocks of a Markdown file, in order."""
    found: list[Block] = []
    lines = file.read_text(encoding="utf-8").splitlines()
    section, i = "", 0
    while i < len(lines):
        if lines[i].startswith("#"):
            section = lines[i].lstrip("# ")
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        marker = SKIP.match(lines[i - 1]) if i else None
        if fence.group(1) == "sh":
            text = "\n".join(lines[i + 1 : end]) + "\n"
            found.append(Block(file, i + 1, text, marker.group(1).strip() if marker else None, section))
        i = end + 1
    return found


def moved(text: str, ports: dict[int, int]) -> str:
    pattern = "|".join(str(p) for p in ports)
    return re.sub(rf"(?<!\d)({pattern})(?!\d)", lambda m: str(ports[int(m.group(1))]), text)


def free_ports() -> dict[int, int]:
    """Free ports below the kernel's ephemeral range (32768-60999 here), where the many
    outgoing connections of a run cannot take one between the choice and the use."""
    taken: set[int] = set()
    while len(taken) < len(DOC_PORTS):
        port = random.randrange(20_000, 32_000)
        with contextlib.suppress(OSError), socket.create_server(("127.0.0.1", port)):
            taken.add(port)
    return dict(zip(DOC_PORTS, sorted(taken), strict=True))


def fresh_copy(target: Path, ports: dict[int, int]) -> Path:
    """The repository's tracked files, as a clone has them, with the example ports moved."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for config in (target / "examples").rglob("*.toml"):
        config.write_text(moved(config.read_text(encoding="utf-8"), ports), encoding="utf-8")
    (target / ".venv").symlink_to(sys.prefix)
    return target


def environment(home: Path) -> dict[str, str]:
    """A new user's shell: no venv active, no DSGO_ settings."""
    venv_bin = str(Path(sys.prefix) / "bin")
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSGO_", "VIRTUAL_ENV"))}
    home.mkdir(exist_ok=True)
    return {**env, "PATH": os.pathsep.join(path), "HOME": str(home)}


class Shell:
    """Runs blocks one after another; stops every process they left behind."""

    def __init__(self, cwd: Path, env: dict[str, str], log_dir: Path) -> None:
        self.cwd, self.env, self.log_dir = cwd, env, log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.outputs: dict[str, str] = {}

    def start(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append(proc)
        return proc

    def run(self, block: Block, text: str) -> str:
        name = f"block-{len(self.outputs)}"
        proc = self.start(["bash", "-e", "-o", "pipefail", "-c", text], name)
        try:
            code = proc.wait(BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        output = (self.log_dir / f"{name}.log").read_text(errors="replace")
        self.outputs[block.where] = output
        if code != 0:
            status = f"did not end within {BLOCK_TIMEOUT} s" if code is None else f"exited with {code}"
            tail = "\n".join(output.splitlines()[-40:])
            pytest.fail(f"{block.where}: this block {status}:\n{text}--- its output, last lines ---\n{tail}")
        return output

    def stop(self) -> None:
        """SIGTERM to every block's process group (servers stop cleanly), then SIGKILL."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(deadline - time.monotonic(), 0.1))  # reaped: no zombie in its group
            while time.monotonic() < deadline and _alive(proc.pid):
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def copy_and_shell(tmp_path: Path) -> Iterator[tuple[Shell, dict[int, int]]]:
    ports = free_ports()
    clone = fresh_copy(tmp_path / "clone", ports)
    logs = tmp_path / "logs"
    logs.mkdir()
    shell = Shell(clone, environment(tmp_path / "home"), logs)
    try:
        yield shell, ports
    finally:
        shell.stop()


@pytest.fixture(scope="module")
def pilot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Shell, dict[int, int]]]:
    """A fresh copy with the pilot running in it, for the main README's blocks."""
    with copy_and_shell(tmp_path_factory.mktemp("readme")) as (shell, ports):
        start_pilot(shell, ports)
        yield shell, ports


def start_pilot(shell: Shell, ports: dict[int, int]) -> None:
    """``dsgo demo`` in the copy, as the README has it run in another terminal."""
    demo = shell.start([".venv/bin/dsgo", "demo"], "pilot")
    deadline = time.monotonic() + 120
    pending = [ports[p] for p in PILOT_PORTS]
    with httpx.Client(timeout=2) as client:
        while pending:
            if demo.poll() is not None or time.monotonic() > deadline:
                log = (shell.log_dir / "pilot.log").read_text(errors="replace")
                pytest.fail(f"the pilot did not start (dsgo demo in the copy):\n{log[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"http://127.0.0.1:{pending[0]}/health").status_code == 200:
                    pending.pop(0)
                    continue
            time.sleep(0.2)


def run_all(shell: Shell, ports: dict[int, int], found: list[Block]) -> None:
    for block in found:
        if block.skipped is None:
            shell.run(block, moved(block.text, ports))


def join_block() -> Block:
    """The join: the first block of the README's 'Join a federation' section."""
    join = [b for b in blocks(README) if b.section == "Join a federation"]
    assert join, "the README has a 'Join a federation' section whose first block joins the pilot"
    return join[0]


def test_every_skipped_block_says_why() -> None:
    unexplained = [b.where for f in (README, *EXAMPLES) for b in blocks(f) if b.skipped == ""]
    assert unexplained == []


def test_readme_blocks_run_against_a_running_pilot(pilot: tuple[Shell, dict[int, int]]) -> None:
    """All but the join, which the next test runs (the pilot is shared; a party joins once)."""
    run_all(*pilot, [b for b in blocks(README) if b != join_block()])


def test_a_fifth_party_joins_the_running_pilot_with_the_readme_commands(
    pilot: tuple[Shell, dict[int, int]],
) -> None:
    shell, ports = pilot
    block = join_block()
    output = shell.run(block, moved(block.text, ports))
    row = re.search(r"(?m)^https://data\.architect\.example/id/building/1\s+1958\s*$", output)
    assert row is not None, output
    assert "Answer complete" in output


@pytest.mark.parametrize("readme", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_example_readme_blocks_run_on_a_fresh_clone(tmp_path: Path, readme: Path) -> None:
    with copy_and_shell(tmp_path) as (shell, ports):
        run_all(shell, ports, blocks(readme))
