"""Checks a plan against the machine before anything starts: repository, base, programs, files.

Together with the plan's own validation this is why a bad plan starts nothing and creates no
worktree: every problem is found here first, all of them at once.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from corral.core.plan.model import AgentSpec, Plan, PlanError, PlanProblem, resolve_env
from corral.core.plan.sandbox_checks import (
    container_warnings,
    image_of,
    image_program_problem,
    sandbox_problems,
    sandbox_warnings,
)
from corral.core.presets.catalog import Catalog, PresetError, load_catalog
from corral.core.presets.expand import expand_plan, read_prompt, used_presets
from corral.core.presets.schema import Preset
from corral.core.trust.redact import MIN_LENGTH, is_secret_name
from corral.worktrees.git import (
    GitError,
    NotARepository,
    current_branch,
    git_common_dir,
    repo_toplevel,
    resolve_commit,
)


@dataclass(frozen=True)
class Preflight:
    """A plan tied to a real repository and commit."""

    plan: Plan
    repo_top: Path
    common_dir: Path
    base_ref: str
    snapshot: str
    warnings: tuple[str, ...] = ()
    """What is allowed but unwise (a secret written into the plan), for the user to read."""
    presets: tuple[Preset, ...] = ()
    """The presets the plan's agents name; `plan` holds those agents expanded."""


def agent_path(spec: AgentSpec) -> str:
    """PATH as the agent will see it (corral's own bin directory first)."""
    own, _ = resolve_env(spec.env, os.environ)
    path = own.get("PATH", os.environ.get("PATH", os.defpath))
    return str(Path(sys.executable).parent) + os.pathsep + path


def _program_problem(
    program: str,
    spec: AgentSpec,
    repo_top: Path,
    field: str,
    found: dict[tuple[str, str], bool],
    install: str = "",
) -> PlanProblem | None:
    """What is wrong with `program` for this agent; `found` remembers PATH lookups in one check
    (fifty agents running the same program search PATH once)."""
    if "/" in program:
        candidate = Path(program) if os.path.isabs(program) else repo_top / program
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return None
        what = "does not exist" if not candidate.exists() else "is not an executable file"
        fix = "commit it to the repository" if not os.path.isabs(program) else "fix the path"
        return PlanProblem(
            where=f"agent {spec.id!r}", field=field, message=f"{program!r} {what}; {fix}"
        )
    key = (program, agent_path(spec))
    if key not in found:
        found[key] = shutil.which(program, path=key[1]) is not None
    if not found[key]:
        fix = f"install it: {install}" if install else "install it or give its full path"
        return PlanProblem(
            where=f"agent {spec.id!r}",
            field=field,
            message=f"program {program!r} is not on PATH; {fix}",
        )
    return None


def preflight(plan: Plan, plan_path: Path, cwd: Path) -> Preflight:
    """Resolve the repository and the base commit, and check every program and file exists."""
    source = str(plan_path)
    repo = plan.run.repo
    start = (plan_path.parent / repo) if repo is not None else cwd
    try:
        repo_top = repo_toplevel(start)
        common_dir = git_common_dir(start)
    except (NotARepository, GitError) as exc:
        raise PlanError(
            source, [PlanProblem(where="run", field="repo", message=str(exc))]
        ) from None
    base_ref = plan.run.base or current_branch(repo_top) or "HEAD"
    try:
        snapshot = resolve_commit(repo_top, base_ref)
    except GitError as exc:
        raise PlanError(
            source, [PlanProblem(where="run", field="base", message=str(exc))]
        ) from None
    problems: list[PlanProblem] = list(_runtime_problems(plan))
    host_problems, host_warnings = _host_problems(plan)
    problems += host_problems
    problems += sandbox_problems(plan, common_dir, repo_top)
    catalog = Catalog()
    if any(spec.preset for spec in plan.agents):  # a plan of plain commands reads no preset
        try:
            catalog = load_catalog(repo_top)
        except PresetError as exc:
            raise PlanError(source, [PlanProblem(where="presets", message=str(exc))]) from None
        plan, preset_problems = expand_plan(
            plan, catalog, read_prompt(plan_path.parent), os.environ
        )
        problems += preset_problems
    problems += _stream_problems(plan, repo_top)
    found: dict[tuple[str, str], bool] = {}
    for spec in plan.agents:
        if spec.command is None:  # a preset that is not known: reported above
            continue
        preset = catalog.get(spec.preset) if spec.preset else None
        install = f"{preset.install} (preset {preset.name!r})" if preset else ""
        image = image_of(spec, plan, repo_top)
        programs = [("preset" if preset else "command", spec.command[0], install)]
        programs += [(f"setup[{i}]", command[0], "") for i, command in enumerate(spec.setup)]
        for field, program, hint in programs:
            in_image = program.startswith("/") or "/" not in program  # not a repository file
            if image is not None and image.is_dir() and in_image:
                problem = image_program_problem(program, spec, image, field)
            else:
                problem = _program_problem(program, spec, repo_top, field, found, hint)
            if problem:
                problems.append(problem)
        _, missing = resolve_env(spec.env, os.environ)
        for key, name in missing.items():
            problems.append(
                PlanProblem(
                    where=f"agent {spec.id!r}",
                    field=f"env.{key}",
                    message=f"{name} is not set in corral's environment; export it "
                    "before `corral run`, or give the value itself",
                )
            )
        for name in spec.copy_files:
            if not (repo_top / name).exists():
                problems.append(
                    PlanProblem(
                        where=f"agent {spec.id!r}",
                        field="copy",
                        message=f"{name!r} does not exist in {repo_top}; create it or remove it from copy",
                    )
                )
    if problems:
        raise PlanError(source, problems)
    return Preflight(
        plan=plan,
        repo_top=repo_top,
        common_dir=common_dir,
        base_ref=base_ref,
        snapshot=snapshot,
        warnings=(
            *_literal_secrets(plan),
            *sandbox_warnings(plan),
            *container_warnings(plan, repo_top),
            *host_warnings,
        ),
        presets=tuple(used_presets(plan, catalog)),
    )


def _runtime_problems(plan: Plan) -> list[PlanProblem]:
    """A runtime the plan names that is neither built in nor installed."""
    from corral.core.runtime import registry

    problems = []
    if not registry.is_known(plan.run.runtime):
        problems.append((("run", "runtime"), plan.run.runtime))
    for spec in plan.agents:
        if spec.runtime is not None and not registry.is_known(spec.runtime):
            problems.append(((f"agent {spec.id!r}", "runtime"), spec.runtime))
    if not problems:
        return _ray_problems(plan)
    known = registry.known()
    return [
        PlanProblem(
            where=where,
            field=field,
            message=f"{name!r} is not an installed runtime; known: {', '.join(known)} "
            f"(a runtime is installed as a package registering under {registry.ENTRY_POINT_GROUP!r})",
        )
        for (where, field), name in problems
    ]


def _host_problems(plan: Plan) -> tuple[list[PlanProblem], list[str]]:
    """The `ssh` runtime needs hosts (the plan's `[[host]]` or the user's hosts.toml), at
    least one of them reachable now; the others are warnings (a run starts without them)."""
    if not any(plan.runtime_of(spec) == "ssh" for spec in plan.agents):
        return [], []
    from corral.core.remote.config import pool, user_hosts_file
    from corral.core.remote.reachable import unreachable

    hosts = pool(list(plan.hosts))
    if not hosts:
        problem = PlanProblem(
            where="run",
            field="runtime",
            message=f'runtime "ssh" has no hosts; add [[host]] tables (name, address, identity) '
            f"to the plan or to {user_hosts_file()}",
        )
        return [problem], []
    down = unreachable(hosts)
    if len(down) == len(hosts):
        return [PlanProblem(where=f"host {name!r}", message=why) for name, why in down.items()], []
    return [], [
        f"{why}; the run starts without it and uses it once it answers" for why in down.values()
    ]


def _ray_problems(plan: Plan) -> list[PlanProblem]:
    """`runtime = "ray"`: Ray installed, and its cluster answering (the connection is kept for
    the engine of this process: core/ray/cluster.py)."""
    on_ray = [spec for spec in plan.agents if plan.runtime_of(spec) == "ray"]
    if not on_ray:
        return []
    from corral.core.errors import InputError
    from corral.core.ray.cluster import connect

    problems = [
        PlanProblem(
            where=f"agent {spec.id!r}",
            field="input_format",
            message='runtime "ray" does not carry an agent\'s stdin to its node yet; run this '
            'agent with runtime = "local", or remove input_format',
        )
        for spec in on_ray
        if spec.input_format is not None
    ]
    try:
        connect(plan.run.ray)
    except InputError as exc:
        problems.append(PlanProblem(where="run.ray", field="address", message=str(exc)))
    return problems


def _stream_problems(plan: Plan, repo_top: Path) -> list[PlanProblem]:
    """An unknown stream adapter, a budget nothing can count, a price table that cannot be read."""
    from corral.core.errors import InputError
    from corral.core.streams import load_prices, stream_names

    problems = []
    for spec in plan.agents:
        where = f"agent {spec.id!r}"
        if spec.stream is not None and spec.stream not in stream_names():
            problems.append(
                PlanProblem(
                    where=where,
                    field="stream",
                    message=f"{spec.stream!r} is not a stream adapter; use one of "
                    f"{', '.join(stream_names())}, or leave it out",
                )
            )
        budgets = [
            name
            for name in ("max_cost_usd", "max_tokens", "max_turns")
            if getattr(spec, name) is not None
        ]
        if budgets and spec.stream is None:
            problems.append(
                PlanProblem(
                    where=where,
                    field=budgets[0],
                    message="a budget needs the agent's stream to count against; set "
                    '`stream` (e.g. "claude") or remove the budget',
                )
            )
    if any(spec.stream for spec in plan.agents):
        try:
            load_prices(repo_top)
        except InputError as exc:
            problems.append(PlanProblem(where="prices", message=str(exc)))
    return problems


def _literal_secrets(plan: Plan) -> list[str]:
    """Secrets written into the plan are copied into the run directory with it."""
    return [
        f"agent {spec.id!r} env.{key}: a secret written into the plan is kept in the run "
        f'directory with it; export it and write {{ from_env = "{key}" }} instead'
        for spec in plan.agents
        for key, value in spec.env.items()
        if isinstance(value, str) and is_secret_name(key) and len(value) >= MIN_LENGTH
    ]
