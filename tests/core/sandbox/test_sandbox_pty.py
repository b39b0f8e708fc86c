"""A `tty = true` agent in the `sandbox` runtime, through real bubblewrap: it keeps its
terminal inside (no `--new-session` for it), its bytes reach output.log, keystrokes and a size
reach it, its work is merged, and nothing of it outlives the run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from corral.core.log import events as ev
from corral.core.operator.actions import resize, send_keys
from corral.core.operator.identity import Operator
from tests.conftest import git, wait_until
from tests.core.engine_helpers import (
    agent_block,
    processes_with_env,
    start_corral,
    state_of,
    wait_for_event,
    wait_for_run,
)
from tests.core.sandbox.test_sandbox_runtime import sandboxed_plan
from tests.core.test_pty import TERMINAL_AGENT


@pytest.fixture(autouse=True)
def _bwrap(bwrap_works: None) -> None:
    """Real bubblewrap (the probe fails the test if it cannot)."""


def test_a_sandboxed_terminal_agent_takes_keys_and_a_size(repo: Path, tmp_path: Path) -> None:
    body = agent_block("term", [sys.executable, "-c", TERMINAL_AGENT], tty=True, tty_size=[90, 30])
    plan = sandboxed_plan(tmp_path, body)
    engine = start_corral(repo, "run", str(plan), "--quiet")
    me = Operator.current()
    try:
        run = wait_for_run(repo)
        wait_for_event(
            run,
            lambda e: isinstance(e, ev.AgentStarted) and e.agent == "term",
            what="term started",
        )
        log = run.output_log("term", 1)
        wait_until(lambda: log.is_file() and b"name? " in log.read_bytes(), what="the prompt")
        resize(run, "term", 100, 33, me)
        send_keys(run, "term", "boxed\r", me)
        assert engine.wait(timeout=60) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
    output = run.output_log("term", 1).read_bytes()
    assert b"\x1b[31mred\x1b[0m isatty=TrueTrue" in output
    assert b"size 90x30" in output
    assert b"hi boxed at 100x33" in output
    state = state_of(run)
    assert state.agents["term"].state == "succeeded"
    integration = state.merge.integration_commit
    assert integration is not None
    assert git(repo, "show", f"{integration}:answer.txt") == "boxed True 100x33"
    assert processes_with_env("CORRAL_RUN_ID", run.run_id) == []
