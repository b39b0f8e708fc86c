"""Output into a pipe whose reader has gone (`corral status --json | head -c 300`): corral stops
quietly with SIGPIPE's status, as Unix tools do, and prints no traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from corral.core.log import events as ev
from tests.core.engine_helpers import (
    CORRAL,
    agent_block,
    only_run,
    state_of,
    wait_for_event,
    write_plan,
)
from tests.core.operator_helpers import make_reviewable_run

PIPE_CLOSED = 141
"""128 + SIGPIPE: what a shell reports for `cat` or `yes` cut off by `head`."""


def into_closed_pipe(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run corral with its standard output a pipe nobody reads any more (read end closed)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [*CORRAL, *args],
            cwd=repo,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)


def assert_quiet(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == PIPE_CLOSED, result.stderr
    assert "Traceback" not in result.stderr
    assert "BrokenPipeError" not in result.stderr
    assert "Exception ignored" not in result.stderr


def test_status_into_a_closed_pipe_stops_quietly(repo: Path) -> None:
    rundir, _, _ = make_reviewable_run(repo)
    for args in (["status", "--json"], ["status"], ["runs", "--json"], ["review", "show"]):
        assert_quiet(into_closed_pipe(repo, *args))
    # the shell's own pipe: head leaves after 300 bytes of a status far longer than that
    piped = subprocess.run(
        ["sh", "-c", f"{' '.join(CORRAL)} status --json {rundir.run_id} | head -c 300"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 0
    assert len(piped.stdout) == 300
    assert piped.stderr == ""


def test_detach_into_a_closed_pipe_stops_quietly_and_the_run_goes_on(
    repo: Path, tmp_path: Path
) -> None:
    plan = write_plan(tmp_path, agent_block("a", ["true"]))
    assert_quiet(into_closed_pipe(repo, "run", str(plan), "--detach"))
    rundir = only_run(repo)
    wait_for_event(rundir, lambda e: isinstance(e, ev.RunFinished), what="the run to finish")
    assert state_of(rundir).verdict == "passed"


def test_a_foreground_run_outlives_its_closed_output(repo: Path, tmp_path: Path) -> None:
    """`corral run PLAN | head -1`: the engine prints events as they happen; when the reader
    leaves, it stops printing and drives the run to its end (it used to die mid-run, leaving
    its agents running and the run unfinished). Its status stays the run's verdict."""
    body = agent_block("a", ["sh", "-c", "sleep 0.5; echo one"])
    body += agent_block("b", ["sh", "-c", "sleep 0.7; echo two"])
    plan = write_plan(tmp_path, body)
    result = into_closed_pipe(repo, "run", str(plan))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    state = state_of(only_run(repo))
    assert state.status == "finished", state.status
    assert state.verdict == "passed"


def test_a_failure_that_is_not_the_output_pipe_is_not_hidden(repo: Path) -> None:
    """Only our own standard output closing is quiet: stdout open, the error still shows."""
    result = subprocess.run(
        [*CORRAL, "status", "--json"], cwd=repo, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "no corral runs" in result.stderr
