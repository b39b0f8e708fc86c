"""Finding what a dead engine left running, without ever hitting an unrelated process.

A process is the agent's only if its pid AND its kernel start time match the log (a reused
pid has another start time), or if its environment carries the attempt's own CORRAL_* marks
(which covers a crash between spawning the agent and logging its pid).
"""

from __future__ import annotations

import os

import psutil

from corral.core.proctree import is_same_process


def find_attempt_processes(
    run_id: str, agent: str, attempt: int, pid: int | None, start_time: float | None
) -> list[tuple[int, float]]:
    """(pid, start time) of the attempt's surviving root processes."""
    found: dict[int, float] = {}
    if pid is not None and start_time is not None and is_same_process(pid, start_time):
        found[pid] = start_time
    marks = {"CORRAL_RUN_ID": run_id, "CORRAL_AGENT_ID": agent, "CORRAL_ATTEMPT": str(attempt)}
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "create_time"]):
        if proc.pid == me or proc.pid in found:
            continue
        try:
            env = proc.environ()
        except (psutil.Error, OSError):
            continue
        if all(env.get(key) == value for key, value in marks.items()):
            found[proc.pid] = proc.info["create_time"]
    return sorted(found.items())
