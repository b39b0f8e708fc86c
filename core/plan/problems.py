"""What is wrong with a plan, said so that a person can fix it: the problems, the error that
carries them, and pydantic's validation errors told in the plan's own terms (which agent,
which field). core/plan/model.py re-exports PlanProblem and PlanError.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from corral.core.errors import InputError


class PlanProblem(BaseModel):
    """One thing wrong with a plan, said so that a person can fix it."""

    where: str
    """`run`, `defaults`, `agent 'lint'` or the file itself."""
    field: str = ""
    message: str

    def __str__(self) -> str:
        field = f" {self.field}:" if self.field else ""
        return f"{self.where}:{field} {self.message}"


class PlanError(InputError):
    """A plan that cannot run; carries every problem found."""

    def __init__(self, source: str, problems: list[PlanProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{source}: the plan is invalid ({len(problems)} problem(s)):\n{lines}")


_ERROR_HINTS = {
    "missing": "is required; add it",
    "extra_forbidden": "is not a known field; check its spelling",
    "too_short": "must not be empty",
    "string_pattern_mismatch": "must use only letters, digits, '-' and '_' (at most 63 characters)",
}


def describe_validation_error(exc: ValidationError, data: dict[str, Any]) -> list[PlanProblem]:
    problems = []
    raw_agents = data.get("agent")
    agents: list[Any] = raw_agents if isinstance(raw_agents, list) else []
    for error in exc.errors():
        loc = list(error["loc"])
        where = "plan"
        if loc and loc[0] == "agent" and len(loc) > 1 and isinstance(loc[1], int):
            index = loc[1]
            agent = agents[index] if index < len(agents) else None
            agent_id = agent.get("id") if isinstance(agent, dict) else None
            where = f"agent {agent_id!r}" if agent_id else f"[[agent]] number {index + 1}"
            loc = loc[2:]
        elif loc and loc[0] == "host" and len(loc) > 1 and isinstance(loc[1], int):
            raw_hosts = data.get("host")
            hosts: list[Any] = raw_hosts if isinstance(raw_hosts, list) else []
            host = hosts[loc[1]] if loc[1] < len(hosts) else None
            name = host.get("name") if isinstance(host, dict) else None
            where = f"host {name!r}" if name else f"[[host]] number {loc[1] + 1}"
            loc = loc[2:]
        elif loc and loc[0] in ("run", "defaults"):
            where = str(loc[0])
            loc = loc[1:]
        elif loc == ["agent"]:
            where = "plan"
        field = ".".join(str(part) for part in loc)
        message = _ERROR_HINTS.get(error["type"]) or error["msg"].removeprefix("Value error, ")
        if error["type"] == "string_pattern_mismatch" and field.startswith("locks"):
            message = "a lock name uses only letters, digits and '._:-' (at most 100 characters)"
        if error["type"] == "string_pattern_mismatch" and field == "runtime":
            message = "a runtime's name is lowercase letters, digits, '-' and '_', e.g. \"local\""
        if error["type"] == "extra_forbidden" and field == "workspace":
            message = (
                "is no longer a setting: every attempt gets its own worktree; choose where "
                'agents run with `runtime` (e.g. runtime = "local")'
            )
        if where == "plan" and field == "agent":
            message = "has no [[agent]] table; add at least one agent"
        problems.append(PlanProblem(where=where, field=field, message=message))
    return problems
