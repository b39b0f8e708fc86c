"""`corral demo --agents`: the AI demo (examples/agents.toml) end to end, the real Gemini CLI,
Codex and Claude Code against the scripted model servers the demo serves itself; and what it
says when the CLIs are not there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents import clis
from tests.core.engine_helpers import CORRAL

CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home() -> Iterator[Path]:
    """A HOME no ancestor of which others may write (Gemini CLI skips its settings overlay
    below one, such as /tmp), so the demo's repository, under HOME's cache, is one too."""
    root = Path.home() / ".cache" / "corral-tests"
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=root))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def demo(home: Path, cache: Path, path: str) -> subprocess.CompletedProcess[str]:
    env = {
        "HOME": str(home),
        "PATH": path,
        "LANG": "C.UTF-8",
        "CORRAL_AGENT_CLIS": str(cache),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    return subprocess.run(
        [*CORRAL, "demo", "--agents", "--quiet"],
        cwd=CHECKOUT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_the_ai_demo_runs_three_cli_agents_merges_two_and_reports_a_finding(home: Path) -> None:
    for name in ("claude", "codex", "gemini"):
        clis.require(name)
    done = demo(home, clis.CACHE, f"{Path(sys.executable).parent}:/usr/bin:/bin")
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "3 of 3 agents succeeded" in said
    assert "(1 finding(s), 0 conflict(s), 2 branch(es) merged, 0 left out)" in said
    assert "verification passed" in said
    for agent in ("gemini-docs", "codex-tests", "claude-audit"):
        assert agent in said
    assert "tok" in said  # the CLIs' streams became usage


def test_without_the_clis_the_ai_demo_says_how_to_install_them(home: Path, tmp_path: Path) -> None:
    done = demo(home, tmp_path / "no-cache", f"{Path(sys.executable).parent}:/usr/bin:/bin")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "tests/agents/install_clis.sh ~/.cache/corral/agents" in done.stderr
    assert "not found: " in done.stderr
