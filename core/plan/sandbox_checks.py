"""The plan's sandbox policies checked before anything starts, and explained (`corral validate`).

Every agent that runs in the `sandbox` or `container` runtime (core/runtime/sandbox.py,
container.py) has its policy
(`[agent.sandbox]`, `[defaults.sandbox]`, or the default: no network, secrets hidden) checked
for contradictions (core/sandbox/policy.py), and bubblewrap is probed once (core/sandbox/bwrap.py
`probe`): a plan that cannot be sandboxed as written starts nothing (exit 2, with the fix).
A `container` agent's image must be a root filesystem (core/sandbox/image.py), and its
programs are looked for inside it, where the agent will look.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from corral.core.plan.model import AgentSpec, Plan, PlanProblem, resolve_env
from corral.core.sandbox.image import (
    BUILD_HINT,
    IMAGE_PATH,
    image_problem,
    image_python,
    image_which,
    resolve_image,
)
from corral.core.sandbox.paths import AttemptPaths
from corral.core.sandbox.policy import SandboxPolicy, contradictions, explain

SANDBOX_RUNTIME = "sandbox"
CONTAINER_RUNTIME = "container"
SANDBOXED_RUNTIMES = (SANDBOX_RUNTIME, CONTAINER_RUNTIME)
"""The runtimes that run agents inside bubblewrap, with a policy."""


def sandboxed(plan: Plan) -> list[AgentSpec]:
    """The agents that run in the sandbox or container runtime."""
    return [s for s in plan.agents if plan.runtime_of(s) in SANDBOXED_RUNTIMES]


def image_of(spec: AgentSpec, plan: Plan, repo_top: Path) -> Path | None:
    """A container agent's image directory (its own `image`, else `[defaults]`), or None."""
    if plan.runtime_of(spec) != CONTAINER_RUNTIME:
        return None
    text = spec.image or plan.defaults.image
    return None if text is None else resolve_image(text, repo_top, Path.home())


def image_mounts(spec: AgentSpec) -> list[PurePosixPath]:
    """The host paths a container agent's policy binds at their own place inside the image."""
    resolved = policy_of(spec).resolve(Path.home())
    return [PurePosixPath(path) for path in (*resolved.read, *resolved.write)]


def policy_of(spec: AgentSpec) -> SandboxPolicy:
    return spec.sandbox or SandboxPolicy()


def _home(spec: AgentSpec) -> Path:
    """The home the agent will have: the plan's HOME, else the engine's."""
    own, _ = resolve_env(spec.env, os.environ)
    return Path(own.get("HOME") or os.environ.get("HOME") or Path.home())


def attempt_paths(spec: AgentSpec, common_dir: Path, image: Path | None = None) -> AttemptPaths:
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
        home=Path.home() if image is not None else _home(spec),
        image=image,
    )


def sandbox_problems(plan: Plan, common_dir: Path, repo_top: Path) -> list[PlanProblem]:
    """Each contradiction of a sandboxed agent's policy, a container agent's missing or broken
    image, and bubblewrap not working here."""
    agents = sandboxed(plan)
    problems: list[PlanProblem] = []
    for spec in agents:
        where = f"agent {spec.id!r}"
        image = image_of(spec, plan, repo_top)
        if plan.runtime_of(spec) == CONTAINER_RUNTIME:
            problem = (
                'runs in the container runtime but names no image; set image = "DIR" on the '
                f"agent or in [defaults] ({BUILD_HINT})"
                if image is None
                else image_problem(image)
            )
            if problem is not None:
                problems.append(PlanProblem(where=where, field="image", message=problem))
                continue
        home = Path.home() if image is not None else _home(spec)
        paths = attempt_paths(spec, common_dir, image)
        problems += [
            PlanProblem(where=where, field="sandbox", message=message)
            for message in contradictions(policy_of(spec), home, paths)
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


def image_program_problem(
    program: str, spec: AgentSpec, image: Path, field: str
) -> PlanProblem | None:
    """A container agent's program that its image does not have (looked up as the agent's
    shell will: the plan's PATH, else the image's)."""
    own, _ = resolve_env(spec.env, os.environ)
    if image_which(image, program, own.get("PATH", IMAGE_PATH), image_mounts(spec)):
        return None
    return PlanProblem(
        where=f"agent {spec.id!r}",
        field=field,
        message=f"program {program!r} is not in the image {image} (on its PATH); install it "
        "in the image or give its full path inside it",
    )


def container_warnings(plan: Plan, repo_top: Path) -> list[str]:
    """A container agent whose image has no Python 3.11+: its `corral` tools will not run."""
    warnings = []
    for spec in sandboxed(plan):
        image = image_of(spec, plan, repo_top)
        if image is None or image_problem(image) is not None:
            continue
        version = image_python(image, image_mounts(spec))
        if version is None or version < (3, 11):
            found = "no python3" if version is None else f"python3.{version[1]}"
            warnings.append(
                f"agent {spec.id!r}: the image {image} has {found}; corral heartbeat, lock and "
                "put need Python 3.11 or newer inside it (the agent itself may still run)"
            )
    return warnings


def sandbox_warnings(plan: Plan) -> list[str]:
    """A sandbox table on an agent that does not run in the sandbox: it would do nothing."""
    inside = {spec.id for spec in sandboxed(plan)}
    return [
        f"agent {spec.id!r} has a sandbox policy but runs in runtime "
        f"{spec.runtime or plan.run.runtime!r}, which does not apply it; "
        f'set runtime = "{SANDBOX_RUNTIME}" (or "{CONTAINER_RUNTIME}") or remove the table'
        for spec in plan.agents
        if spec.sandbox is not None and spec.id not in inside
    ]


def explanations(plan: Plan, common_dir: Path, repo_top: Path) -> list[tuple[str, list[str]]]:
    """For `corral validate`: what each sandboxed agent can write, read, not see and reach."""
    return [
        (
            spec.id,
            explain(
                policy_of(spec), attempt_paths(spec, common_dir, image_of(spec, plan, repo_top))
            ),
        )
        for spec in sandboxed(plan)
    ]
