"""`corral runs`: one line (or JSON object) per run, with whether its engine is alive.

Each run's state comes from the runs index (core/runs/index.py): a run whose log did not change
since the last listing is not replayed, a grown one is folded on from where it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from corral.core.log import LogCorrupted
from corral.core.log import events as ev
from corral.core.log.state import RunState
from corral.core.runs.index import run_state
from corral.core.runs.rundir import RunDir, list_runs
from corral.core.runtime.procfs import is_same_process

RunStatusName = Literal["running", "finished", "stopped", "interrupted", "corrupted"]


class RunSummary(BaseModel):
    """One run, as `corral runs --json` publishes it."""

    run_id: str
    name: str
    status: RunStatusName
    """`interrupted`: the log says running but no engine is alive (resume it)."""
    verdict: Literal["passed", "failed"] | None = None
    engine_live: bool
    started_ts: float | None = None
    finished_ts: float | None = None
    snapshot: str = ""
    rerun_of: ev.RerunOrigin | None = None
    """The run whose left-out agents this one redoes (`corral rerun`)."""
    counts: dict[str, int] = Field(default_factory=dict)
    path: str


class RunList(BaseModel):
    runs: list[RunSummary]


def engine_alive(state: RunState) -> bool:
    """Whether the engine the log last names still runs: by pid and start time, so listing
    runs never touches the engine lock (a probe of it could make a resume fail as busy)."""
    engine = state.engine
    return engine is not None and is_same_process(engine.pid, engine.start_time)


def summarize(rundir: RunDir, state: RunState, *, corrupted: bool = False) -> RunSummary:
    """One run's line, from its folded state (what could be read of it, when corrupted)."""
    live = engine_alive(state)
    status: RunStatusName
    if corrupted:
        status = "corrupted"
    elif state.status == "running" and not live:
        status = "interrupted"
    else:
        status = state.status
    return RunSummary(
        run_id=rundir.run_id,
        name=state.name,
        status=status,
        verdict=state.verdict,
        engine_live=live,
        started_ts=state.started_ts,
        finished_ts=state.finished_ts,
        snapshot=state.snapshot,
        rerun_of=state.rerun_of,
        counts=state.counts(),
        path=str(rundir.path),
    )


def summarize_runs(common_dir: Path) -> list[RunSummary]:
    summaries = []
    for rundir in list_runs(common_dir):
        try:
            summaries.append(summarize(rundir, run_state(rundir)))
        except LogCorrupted:
            summaries.append(summarize(rundir, RunState(), corrupted=True))
    return summaries
