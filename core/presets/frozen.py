"""What a run's preset agents were, frozen in its run directory (`presets.json`).

A resumed run starts the commands it started with: the presets it used and each preset agent
as expanded (its prompt read from its `prompt_file` then), not whatever the catalog or the
prompt file says now. Secrets stay references (`from_env`), as in the plan copy beside it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from corral.core.atomic import write_atomic
from corral.core.plan.model import EXPANDED, AgentSpec, Plan, PlanError, PlanProblem
from corral.core.presets.catalog import Catalog
from corral.core.presets.schema import Preset


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid")

    presets: list[Preset]
    agents: list[dict[str, object]]
    """The expanded preset agents, as `AgentSpec` dumps (validated when read)."""


def freeze(path: Path, plan: Plan, presets: list[Preset]) -> None:
    """Write the expanded preset agents of `plan` (nothing when it has none)."""
    agents = [spec.model_dump(mode="json", by_alias=True) for spec in plan.agents if spec.preset]
    if not agents:
        return
    frozen = Frozen(presets=presets, agents=agents)
    write_atomic(path, frozen.model_dump_json(indent=1).encode(), mode=0o600)


def thaw(path: Path, plan: Plan) -> tuple[Plan, Catalog]:
    """The plan copy with its preset agents as they were started, and their presets."""
    if not any(spec.preset for spec in plan.agents):
        return plan, Catalog()
    source = str(path)
    try:
        frozen = Frozen.model_validate_json(path.read_bytes())
        specs = {
            spec.id: spec
            for spec in (
                AgentSpec.model_validate(data, context={EXPANDED: True}) for data in frozen.agents
            )
        }
    except (OSError, ValidationError) as exc:
        problem = PlanProblem(
            where=source, message=f"the run's expanded preset agents cannot be read ({exc})"
        )
        raise PlanError(source, [problem]) from None
    missing = [spec.id for spec in plan.agents if spec.preset and spec.id not in specs]
    if missing:
        problem = PlanProblem(where=source, message=f"holds no expanded agent {', '.join(missing)}")
        raise PlanError(source, [problem])
    agents = [specs[spec.id] if spec.preset else spec for spec in plan.agents]
    return plan.model_copy(update={"agents": agents}), Catalog.of(frozen.presets)
