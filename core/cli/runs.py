"""The commands about whole runs: `corral run`, `validate`, `status`, `runs`, `verify`, `gc`.

Each imports what it needs when it runs (main.py says why); what they do to a run goes through
the operator API (core/operator/)."""

from __future__ import annotations

import argparse
import sys

from corral.core.cli.common import (
    common_dir,
    cwd,
    fail,
    find,
    find_to_operate,
    print_background,
)

TYPE_CHECKING = False  # not typing's: importing typing (and pathlib) would slow `corral heartbeat`
if TYPE_CHECKING:
    from typing import Any

    from corral.core.engine.runner import View


def _load_checked(args: argparse.Namespace) -> Any:
    from corral.core.operator.actions import check_plan
    from corral.core.trust.inert import inert

    checked = check_plan(args.repo or cwd(), args.plan)
    for warning in checked.warnings:
        print(f"corral: warning: {inert(warning, lines=True)}", file=sys.stderr)
    return checked


def cmd_validate(args: argparse.Namespace) -> int:
    pre = _load_checked(args)  # StartFailed (an invalid plan): exit 2, from cli/main.py
    from corral.core.trust.inert import inert

    print(
        inert(
            f"{args.plan}: valid: {len(pre.plan.agents)} agent(s) on {pre.base_ref} "
            f"({pre.snapshot[:12]}) in {pre.repo_top}"
        )
    )
    from corral.core.presets.attempt import preview

    for spec in pre.plan.agents:
        if spec.preset:
            preset = {preset.name: preset for preset in pre.presets}[spec.preset]
            argv = preview(spec, preset, spec.runtime or pre.plan.run.runtime)
            print(inert(f"agent {spec.id} runs preset {spec.preset}: {' '.join(argv)}"))
    from corral.core.plan.sandbox_checks import explanations

    for agent, lines in explanations(pre.plan, pre.common_dir, pre.repo_top):
        print(inert(f"agent {agent} runs sandboxed:"))
        for line in lines:
            print(inert(f"  {line}"))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import corral.core.plan.preflight  # noqa: F401 - imported here, so the thread below imports nothing
    from corral.core.operator import actions

    checking = None
    if args.plan is not None and not args.resume:
        # the plan's git checks wait on git processes: let them run while the engine loads
        checking = ThreadPoolExecutor(max_workers=1).submit(_load_checked, args)
    from corral.core.engine.runner import resume_run, start_run
    from corral.core.operator.guard import people_only
    from corral.core.runs.rundir import new_run_id

    if args.rerun_of:
        from corral.core.engine.runner import start_rerun
        from corral.core.runs.rerun import prepare_rerun

        rerun = prepare_rerun(find(args, args.rerun_of), args.rerun_agent)
        outcome = asyncio.run(start_rerun(rerun, args.run_id or new_run_id(), _view(args)))
    elif args.resume:
        if args.plan is not None:
            return fail("give either a plan or --resume RUN, not both", 2)
        rundir = (
            find_to_operate(args, args.resume, "retry", f"agent {', '.join(args.retry)}")
            if args.retry
            else find(args, args.resume)
        )
        if args.detach:
            started = actions.resume_in_background(rundir, args.retry)
            print_background(started.run_id, started.pid)
            return 0
        if args.retry:
            people_only("retry", f"agent {', '.join(args.retry)}", rundir)
        outcome = asyncio.run(resume_run(rundir, _view(args), args.retry, _whoami()))
    else:
        if checking is None:
            return fail("name a plan: corral run PLAN (or --resume RUN)", 2)
        if args.retry:
            return fail("--retry goes with --resume RUN", 2)
        pre = checking.result()
        run_id = args.run_id or new_run_id()
        if args.detach:
            repo = args.repo or cwd()
            started = actions.start_run(repo, args.plan, run_id=run_id, checked=pre)
            print_background(started.run_id, started.pid)
            return 0
        outcome = asyncio.run(start_run(pre, args.plan.read_bytes(), run_id, _view(args)))
    # imported late: with --quiet, rich loads on the engine's preload thread while agents run
    from rich.console import Console

    from corral.core.cli.headless import print_summary

    print_summary(Console(), outcome.state, outcome.message)
    return outcome.exit_code


def _view(args: argparse.Namespace) -> View | None:
    if args.quiet:
        return None
    from rich.console import Console

    from corral.core.cli.headless import HeadlessView

    return HeadlessView(Console())


def _whoami() -> str:
    import getpass

    return getpass.getuser()


def cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console

    from corral.core.cli.headless import print_hosts, print_nodes, print_runtimes, print_summary
    from corral.core.operator.reading import agent_runtimes, cluster_line, status
    from corral.core.trust.inert import inert_json

    rundir = find(args, args.run)
    state = status(rundir)
    runtimes = agent_runtimes(rundir)
    if args.json:
        import json

        published = state.model_dump(mode="json")
        published["runtimes"] = {a: r.model_dump(mode="json") for a, r in runtimes.items()}
        print(inert_json(json.dumps(published, indent=2)))
        return 0
    console = Console()
    print_summary(console, state, state.verdict_reason)
    print_runtimes(console, runtimes)
    print_hosts(console, state)
    print_nodes(console, state, cluster_line(rundir))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from corral.core.operator.reading import list_runs
    from corral.core.runs.listing import RunList
    from corral.core.trust.inert import inert, inert_json

    runs = list_runs(common_dir(args))
    if args.json:
        print(inert_json(RunList(runs=runs).model_dump_json(indent=2)))
        return 0
    if not runs:
        print("no runs yet; start one with `corral run PLAN`")
        return 0
    for run in runs:
        counts = ", ".join(f"{count} {name}" for name, count in sorted(run.counts.items()))
        verdict = f" {run.verdict}" if run.verdict else ""
        origin = ""
        if run.rerun_of is not None:
            origin = f"  re-runs {', '.join(run.rerun_of.agents)} of {run.rerun_of.run}"
        print(inert(f"{run.run_id}  {run.status}{verdict}  {run.name}  ({counts}){origin}"))
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    """`corral rerun RUN AGENT...`: a new run, in the background, of agents RUN left out."""
    from corral.core.operator.actions import rerun
    from corral.core.trust.inert import inert

    rundir = find_to_operate(args, args.run, "rerun", f"agent {', '.join(args.agents)}")
    started = rerun(rundir, args.agents)
    print(inert(f"re-running {', '.join(args.agents)} of run {rundir.run_id} on its integration"))
    print_background(started.run_id, started.pid)
    print(f"  land both:  approve {rundir.run_id} first, then {started.run_id}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from corral.core.log import verify_log

    rundir = find(args, args.run)
    result = verify_log(rundir.events)
    if result.ok:
        print(f"{rundir.events}: ok, {result.events} events, head {result.head[:16]}")
        return 0
    return fail(f"{rundir.events}: {result.problem}")


def cmd_gc(args: argparse.Namespace) -> int:
    from corral.core.operator.guard import people_only_everywhere
    from corral.core.runs.gc import collect_garbage
    from corral.core.runs.rundir import list_runs
    from corral.core.trust.inert import inert

    where = common_dir(args)
    people_only_everywhere("gc", list_runs(where), where)
    report = collect_garbage(where, force=args.force, dry_run=args.dry_run)
    for line in report:
        print(inert(line))
    return 0
