"""Helpers for tests that drive the real `corral` command against real repositories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from corral.core.log import read_log
from corral.core.log.events import Event
from corral.core.log.state import RunState, fold
from corral.core.runs.rundir import RunDir, list_runs
from tests.conftest import wait_until

CORRAL = [sys.executable, "-m", "corral.core.cli"]


def corral(
    repo: Path, *args: str, timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the corral command in `repo` and wait for it."""
    proc = subprocess.run(
        [*CORRAL, *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"corral {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def start_corral(repo: Path, *args: str) -> subprocess.Popen[str]:
    """Start the corral command in the background (its own session, like a terminal would).

    Its output goes to `engine-N.out` beside the repository, for reading when a test fails.
    """
    number = len(list(repo.parent.glob("engine-*.out")))
    with (repo.parent / f"engine-{number}.out").open("w") as out:
        return subprocess.Popen(
            [*CORRAL, *args],
            cwd=repo,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env=os.environ.copy(),
        )


def engine_output(repo: Path) -> str:
    return "".join(path.read_text() for path in sorted(repo.parent.glob("engine-*.out")))


def write_plan(directory: Path, body: str, header: str = "") -> Path:
    path = directory / "plan.toml"
    path.write_text(
        '[run]\nname = "test"\nbackoff = "50ms"\nbackoff_max = "100ms"\nkill_grace = "500ms"\n'
        + header
        + "\n"
        + body
    )
    return path


def agent_block(agent_id: str, command: list[str], **fields: Any) -> str:
    lines = ["[[agent]]", f"id = {json.dumps(agent_id)}", f"command = {json.dumps(command)}"]
    for key, value in fields.items():
        if isinstance(value, dict):
            table = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items())
            lines.append(f"{key} = {{ {table} }}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n\n"


def only_run(repo: Path) -> RunDir:
    runs = list_runs(repo / ".git")
    assert len(runs) == 1, [run.run_id for run in runs]
    return runs[0]


def events_of(rundir: RunDir) -> list[Event]:
    return read_log(rundir.events).events


def state_of(rundir: RunDir) -> RunState:
    return fold(events_of(rundir))


def wait_for_run(repo: Path, timeout: float = 30) -> RunDir:
    found = wait_until(lambda: list_runs(repo / ".git"), timeout=timeout, what="the run directory")
    assert isinstance(found, list)
    return found[0]  # type: ignore[no-any-return]


def wait_for_event(
    rundir: RunDir, predicate: Any, timeout: float = 30, what: str = "an event"
) -> Event:
    def find() -> Event | None:
        if not rundir.events.exists():
            return None
        for event in read_log(rundir.events).events:
            if predicate(event):
                return event
        return None

    return wait_until(find, timeout=timeout, what=what)  # type: ignore[return-value]


def kill9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def assert_all_dead(pids: list[int], timeout: float = 10) -> None:
    """Each pid is gone (or a zombie awaiting its reaper)."""

    def gone() -> bool:
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    return False
            except psutil.NoSuchProcess:
                continue
        return True

    wait_until(gone, timeout=timeout, what=f"processes {pids} to end")


def processes_with_env(key: str, value: str) -> list[int]:
    """Live processes whose environment has key=value (how tests find orphans of a run)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(key) == value and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


def monotonic_deadline(seconds: float) -> float:
    return time.monotonic() + seconds
