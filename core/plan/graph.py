"""The plan's agents as a graph: ids unique and not reserved, dependencies known and acyclic,
and the order the engine starts them in. core/plan/model.py runs `check_graph` on every plan
it parses and re-exports these names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from corral.core.plan.problems import PlanError, PlanProblem

if TYPE_CHECKING:  # the model module imports this one to check each plan it parses
    from corral.core.plan.model import Plan

RESERVED_IDS = frozenset({"integration"})
"""Agent ids corral uses itself (the integration step)."""


def check_graph(plan: Plan) -> Iterable[PlanProblem]:
    """Ids unique and not reserved, dependencies known, no cycle, `min_success` reachable."""
    seen: set[str] = set()
    for spec in plan.agents:
        where = f"agent {spec.id!r}"
        if spec.id in seen:
            yield PlanProblem(
                where=where, field="id", message="is used twice; give each agent its own id"
            )
        if spec.id in RESERVED_IDS:
            yield PlanProblem(
                where=where, field="id", message="is reserved by corral; choose another id"
            )
        seen.add(spec.id)
    for spec in plan.agents:
        for dep in spec.depends_on:
            if dep == spec.id:
                yield PlanProblem(
                    where=f"agent {spec.id!r}",
                    field="depends_on",
                    message="an agent cannot depend on itself",
                )
            elif dep not in seen:
                yield PlanProblem(
                    where=f"agent {spec.id!r}",
                    field="depends_on",
                    message=f"names {dep!r}, which is not an agent of this plan; "
                    f"use one of: {', '.join(sorted(seen))}",
                )
    cycle = find_cycle({spec.id: [d for d in spec.depends_on if d in seen] for spec in plan.agents})
    if cycle:
        yield PlanProblem(
            where=f"agent {cycle[0]!r}",
            field="depends_on",
            message=f"forms a cycle {' -> '.join(cycle)}; remove one of these dependencies",
        )
    required = plan.required_successes()
    if required > len(plan.agents):
        yield PlanProblem(
            where="run",
            field="min_success",
            message=f"asks for {required} successes but the plan has {len(plan.agents)} agents",
        )


def find_cycle(graph: dict[str, list[str]]) -> list[str]:
    """One dependency cycle as a path that ends where it starts, or [] when there is none."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return []


def topological_order(plan: Plan) -> list[str]:
    """Agent ids with every dependency before its dependents, plan order otherwise."""
    done: set[str] = set()
    order: list[str] = []
    pending = [spec.id for spec in plan.agents]
    deps = {spec.id: set(spec.depends_on) for spec in plan.agents}
    while pending:
        ready = [agent for agent in pending if deps[agent] <= done]
        if not ready:  # pragma: no cover - check_graph rejects cycles first
            raise PlanError("plan", [PlanProblem(where="plan", message="dependency cycle")])
        for agent in ready:
            done.add(agent)
            order.append(agent)
        pending = [agent for agent in pending if agent not in done]
    return order
