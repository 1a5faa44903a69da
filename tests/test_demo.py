"""The README's main command, as the demo runs it (on a free port)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import free_port


def test_demo_starts_the_example_node_shows_what_it_serves_and_stops() -> None:
    env = {**os.environ, "DSGO_NODE_PORT": str(free_port())}
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "demo", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "healthy: 62 triples from 2 sources" in out
    assert "void:classPartition" in out
    assert "hydra:member <https://data.hellobouw.example/id/building/1>" in out
    assert '"dsgo:energyLabel": "F"' in out
    assert "stopped." in out
