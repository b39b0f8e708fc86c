"""An attempt's environment as the engine gives it to the runtime, and its secrets redacted.

The engine owns the parts: the run's starting environment, the plan's `env` (secrets read now),
and corral's own variables (the attempt's token, its marks, its trace context). The runtime
(core/runtime/base.py `Runtime.place`) combines them with the paths the agent sees.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from corral.core.engine.context import AttemptControl, RunContext
from corral.core.locks.shared_files import shared_dir
from corral.core.plan.model import AgentSpec, env_references, resolve_env
from corral.core.runtime.base import AttemptRef, AttemptRequest
from corral.core.runtime.procfs import Marks
from corral.core.trust.redact import Redactor


def attempt_ref(ctx: RunContext, agent: str, attempt: int) -> AttemptRef:
    return AttemptRef(run_id=ctx.run_id, agent=agent, attempt=attempt)


def environment_problem(ctx: RunContext, spec: AgentSpec) -> str | None:
    """Why the attempt's environment cannot be built (a resumed run started elsewhere, a
    `from_env` variable not set), which fails the attempt; None when it can."""
    problem = ctx.environment.problem(ctx.run_id)
    if problem is not None:
        return problem
    _, missing = resolve_env(spec.env, os.environ)
    if missing:
        return (
            f"{', '.join(missing.values())} (taken by `from_env` in agent {spec.id}'s env) is not "
            "set in the engine's environment; export it and retry the agent"
        )
    return None


def attempt_request(ctx: RunContext, spec: AgentSpec, control: AttemptControl) -> AttemptRequest:
    """What the runtime places (check `environment_problem` first)."""
    own, _ = resolve_env(spec.env, os.environ)
    ref = attempt_ref(ctx, spec.id, control.attempt)
    trace_id = ctx.run_id.encode().hex()[-32:].rjust(32, "0")
    marks = Marks(run_id=ref.run_id, agent=ref.agent, attempt=ref.attempt)
    corral_env = {
        **marks.environment(),
        "CORRAL_AGENT_TOKEN": control.token,
        "TRACEPARENT": f"00-{trace_id}-{secrets.token_hex(8)}-01",
    }
    return AttemptRequest(
        ref=ref,
        output_dir=ctx.rundir.output_dir(spec.id, control.attempt),
        log_path=ctx.rundir.output_log(spec.id, control.attempt),
        socket=ctx.rundir.socket,
        shared_dir=shared_dir(ctx.rundir.path),
        copy_files=tuple(spec.copy_files),
        base_env={k: v for k, v in ctx.environment.values.items() if not k.startswith("CORRAL_")},
        plan_env=own,
        corral_env=corral_env,
        sandbox=spec.sandbox,
        image=ctx.image(spec.image),
        resources=spec.resources,
    )


def environment_redactor(spec: AgentSpec, env: dict[str, str] | None = None) -> Redactor:
    """The known secrets of an attempt's environment `env`, its control token included.

    Without `env` (a lost attempt, whose environment is gone): the engine's environment with the
    plan's variables, which is all of it but the token."""
    references = env_references(spec.env)
    if env is None:
        own, _ = resolve_env(spec.env, os.environ)
        return Redactor.for_environment({**os.environ, **own}, references)
    return Redactor.for_environment(env, [*references, "CORRAL_AGENT_TOKEN"])


def redact_outputs(redactor: Redactor, log_path: Path, out_dir: Path) -> None:
    """Known secrets out of the attempt's log and every file it left in its output directory."""
    redactor.redact_file(log_path)
    for directory, _, files in os.walk(out_dir):
        for name in files:
            redactor.redact_file(Path(directory) / name)
