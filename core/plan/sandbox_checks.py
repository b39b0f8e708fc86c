"""The plan's sandbox policies checked before anything starts, and explained (`corral validate`).

Every agent that runs in the `sandbox` runtime (core/runtime/sandbox.py) has its policy
(`[agent.sandbox]`, `[defaults.sandbox]`, or the default: no network, secrets hidden) checked
for contradictions (core/sandbox/policy.py), and bubblewrap is probed once (core/sandbox/bwrap.py
`probe`): a plan that cannot be sandboxed as written starts nothing (exit 2, with the fix).
"""

from __future__ import annotations

import os
from pathlib import Path

from corral.core.plan.model import AgentSpec, Plan, PlanProblem, resolve_env
from corral.core.sandbox.paths import AttemptPaths
from corral.core.sandbox.policy import SandboxPolicy, contradictions, explain

SANDBOX_RUNTIME = "sandbox"


def sandboxed(plan: Plan) -> list[AgentSpec]:
    """The agents that run in the sandbox runtime."""
    return [s for s in plan.agents if plan.runtime_of(s) == SANDBOX_RUNTIME]


def policy_of(spec: AgentSpec) -> SandboxPolicy:
    return spec.sandbox or SandboxPolicy()


def _home(spec: AgentSpec) -> Path:
    """The home the agent will have: the plan's HOME, else the engine's."""
    own, _ = resolve_env(spec.env, os.environ)
    return Path(own.get("HOME") or os.environ.get("HOME") or Path.home())


def attempt_paths(spec: AgentSpec, common_dir: Path) -> AttemptPaths:
    """Where the agent's first attempt will be (the run id not yet known: `<run>`)."""
    run_root = common_dir / "corral"
    name = f"{spec.id}-1"
    return AttemptPaths(
        worktree=run_root / "worktrees" / "<run>" / name,
        output_dir=run_root / "runs" / "<run>" / "agents" / spec.id / "1" / "out",
        socket=run_root / "runs" / "<run>" / "control.sock",
        common_dir=common_dir,
        admin_dir=common_dir / "worktrees" / name,
        private_gitdir=run_root / "runs" / "<run>" / "runtime" / SANDBOX_RUNTIME / name / "git",
        home=_home(spec),
    )


def sandbox_problems(plan: Plan, common_dir: Path) -> list[PlanProblem]:
    """Each contradiction of a sandboxed agent's policy, and bubblewrap not working here."""
    agents = sandboxed(plan)
    problems = [
        PlanProblem(where=f"agent {spec.id!r}", field="sandbox", message=message)
        for spec in agents
        for message in contradictions(policy_of(spec), _home(spec), attempt_paths(spec, common_dir))
    ]
    if agents:
        from corral.core.sandbox.bwrap import probe

        probed = probe()
        if not probed.ok:
            problems.append(
                PlanProblem(
                    where="run",
                    field="runtime",
                    message=f"the sandbox runtime cannot run here: {probed.problem}; {probed.hint}",
                )
            )
    return problems


def sandbox_warnings(plan: Plan) -> list[str]:
    """A sandbox table on an agent that does not run in the sandbox: it would do nothing."""
    inside = {spec.id for spec in sandboxed(plan)}
    return [
        f"agent {spec.id!r} has a sandbox policy but runs in runtime "
        f"{spec.runtime or plan.run.runtime!r}, which does not apply it; "
        f'set runtime = "{SANDBOX_RUNTIME}" or remove the table'
        for spec in plan.agents
        if spec.sandbox is not None and spec.id not in inside
    ]


def explanations(plan: Plan, common_dir: Path) -> list[tuple[str, list[str]]]:
    """For `corral validate`: what each sandboxed agent can write, read, not see and reach."""
    return [
        (spec.id, explain(policy_of(spec), attempt_paths(spec, common_dir)))
        for spec in sandboxed(plan)
    ]
