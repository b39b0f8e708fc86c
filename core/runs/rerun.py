"""A re-run of agents a run left out at merge-back: the one rule for `corral rerun` and the console.

A coding agent whose branch conflicted with what merged first is left out of the integration
(`branch_left_out`). Re-running it starts a new run whose snapshot is the old run's integration
commit (so the agent sees what did land) and whose plan is the old run's frozen plan
(`plan.toml`, `presets.json`) narrowed to the named agents, as they ran:

- each kept agent keeps its settings; its `depends_on` loses the agents that are not re-run;
- `[run]` keeps its settings (its `name` too: the run's `rerun_of` says where it came from) but
  `min_success` (every re-run agent must succeed), `base` (the old run's base branch, where
  approvals land) and `repo` (the old run's repository, absolute);
- the programs are not looked up again: the agents start as the old run started them.

Landing order: the new run's snapshot is the old integration commit, so the old run is approved
first (its approval merge has that commit as its second parent) and the new run lands on top of
that merge (core/review/gate.py); approved first, the new run is refused, naming the old run.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.core.errors import CorralError
from corral.core.log import events as ev
from corral.core.log.state import RunState
from corral.core.plan.model import Plan, PlanError, load_plan, parse_plan
from corral.core.presets.frozen import thaw
from corral.core.presets.schema import Preset
from corral.core.runs.index import run_state
from corral.core.runs.rundir import RunDir


class RerunRefused(CorralError):
    """The agents cannot be re-run as asked; the message says why and what to do instead."""


@dataclass(frozen=True, kw_only=True)
class Rerun:
    """A re-run, ready to start: the plan as it will be frozen and where it came from."""

    plan: Plan
    """The narrowed plan, its preset agents expanded as the old run ran them."""
    plan_bytes: bytes
    """The narrowed plan as TOML: the new run's `plan.toml`."""
    presets: tuple[Preset, ...]
    origin: ev.RerunOrigin
    repo: Path
    base_ref: str


def left_out_agents(state: RunState) -> list[str]:
    """The agents `state`'s merge left out, in the order the merge met them."""
    return list(dict.fromkeys(left.agent for left in state.merge.left_out))


def check_rerun(state: RunState, agents: list[str]) -> None:
    """Refuse, saying why, unless every one of `agents` can be re-run on `state`'s integration."""
    run = state.run_id
    if not agents:
        raise RerunRefused(f"name the agents of run {run} to re-run")
    unknown = [agent for agent in agents if agent not in state.agents]
    if unknown:
        raise RerunRefused(
            f"run {run} has no agent {', '.join(unknown)}; its agents: {', '.join(state.agents)}"
        )
    if state.status != "finished":
        raise RerunRefused(
            f"run {run} has not finished; re-run its left-out agents once it has merged"
        )
    if state.merge.integration_commit is None:
        raise RerunRefused(
            f"run {run} has no integration branch (nothing was merged); start its plan again "
            "instead"
        )
    if state.review is not None and state.review.decision == "rejected":
        raise RerunRefused(
            f"run {run} was rejected by {state.review.by}: there is no integration to build on; "
            "start its plan again instead"
        )
    left = left_out_agents(state)
    merged = [agent for agent in agents if agent not in left]
    if merged:
        which = ", ".join(left) if left else "none"
        raise RerunRefused(
            f"{', '.join(merged)} {'was' if len(merged) == 1 else 'were'} not left out of run "
            f"{run}; only left-out agents are re-run on its integration (left out: {which})"
        )


def prepare_rerun(rundir: RunDir, agents: list[str]) -> Rerun:
    """The re-run of `agents` of the ended run `rundir`, checked (RerunRefused says why not)."""
    state = run_state(rundir)
    state.run_id = state.run_id or rundir.run_id
    wanted = list(dict.fromkeys(agents))
    check_rerun(state, wanted)
    assert state.merge.integration_commit is not None  # checked above
    try:
        raw = tomllib.loads(rundir.plan.read_text("utf-8"))
        plan, catalog = thaw(rundir.presets, load_plan(rundir.plan))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, PlanError) as exc:
        raise RerunRefused(f"the plan run {state.run_id} ran cannot be read: {exc}") from None
    missing = [agent for agent in wanted if agent not in {spec.id for spec in plan.agents}]
    if missing:
        raise RerunRefused(
            f"the plan run {state.run_id} ran ({rundir.plan}) holds no agent {', '.join(missing)}"
        )
    plan_bytes = toml_bytes(_narrowed(raw, wanted, state))
    try:  # the new run's plan.toml, read as its resume will read it
        narrowed = parse_plan(tomllib.loads(plan_bytes.decode()), f"the re-run of {state.run_id}")
    except PlanError as exc:
        raise RerunRefused(f"the narrowed plan is not valid: {exc}") from None
    expanded = {spec.id: spec for spec in plan.agents}
    kept = [  # a preset agent as the old run expanded it, with its narrowed depends_on
        expanded[spec.id].model_copy(update={"depends_on": spec.depends_on})
        if spec.preset
        else spec
        for spec in narrowed.agents
    ]
    narrowed = narrowed.model_copy(update={"agents": kept})
    used = sorted({spec.preset for spec in kept if spec.preset})
    origin = ev.RerunOrigin(
        run=state.run_id, agents=wanted, integration_commit=state.merge.integration_commit
    )
    return Rerun(
        plan=narrowed,
        plan_bytes=plan_bytes,
        presets=tuple(p for name in used if (p := catalog.get(name)) is not None),
        origin=origin,
        repo=Path(state.repo),
        base_ref=state.base_ref,
    )


def _narrowed(raw: dict[str, Any], agents: list[str], state: RunState) -> dict[str, Any]:
    """The plan file's data with only `agents` (their depends_on on the others dropped)."""
    out = dict(raw)
    kept = []
    for table in raw.get("agent", []):
        if table.get("id") in agents:
            table = dict(table)
            if "depends_on" in table:
                table["depends_on"] = [d for d in table["depends_on"] if d in agents]
            kept.append(table)
    out["agent"] = kept
    settings = dict(raw.get("run", {}))
    settings["min_success"] = "100%"
    settings["base"] = state.base_ref
    settings["repo"] = state.repo
    out["run"] = settings
    return out


def toml_bytes(data: dict[str, Any]) -> bytes:
    """`data` (as tomllib reads a plan: tables, arrays, strings, numbers, booleans) as TOML.

    Nested tables are written inline; strings as JSON-escaped basic strings (with DEL escaped,
    which TOML requires and JSON does not). Checked by reading it back: equal, or refused."""
    lines: list[str] = []
    scalars = {k: v for k, v in data.items() if not _is_table(v) and not _is_table_array(v)}
    lines += [f"{_key(k)} = {_value(v)}" for k, v in scalars.items()]
    for key, value in data.items():
        if _is_table(value):
            lines += ["", f"[{_key(key)}]"] + [f"{_key(k)} = {_value(v)}" for k, v in value.items()]
    for key, value in data.items():
        if _is_table_array(value):
            for table in value:
                lines += ["", f"[[{_key(key)}]]"]
                lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
    text = "\n".join(lines).lstrip("\n") + "\n"
    if tomllib.loads(text) != data:
        raise RerunRefused("the narrowed plan could not be written as TOML faithfully")
    return text.encode("utf-8")


def _is_table(value: object) -> bool:
    return isinstance(value, dict)


def _is_table_array(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _key(key: str) -> str:
    return _string(key)


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=True).replace("\x7f", "\\u007f")


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise RerunRefused(f"the plan holds a value TOML cannot be written from here: {value!r}")


__all__ = ["Rerun", "RerunRefused", "check_rerun", "left_out_agents", "prepare_rerun", "toml_bytes"]
