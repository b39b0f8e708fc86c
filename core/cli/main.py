"""The `corral` command.

argparse (standard library) rather than click or typer: agents run `corral heartbeat` often and
its start-up must stay near Python's own, so this module imports nothing heavy at the top and
each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from corral.core.cli.locks import add_lock_parsers, cmd_lock, cmd_put, parse_with_command
from corral.core.cli.review import add_review_parser

TYPE_CHECKING = False  # not typing's: importing typing (and pathlib) would slow `corral heartbeat`
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from corral.core.engine.runner import View


def _path(text: str) -> Path:
    """argparse type for paths, importing pathlib only when a path is given."""
    from pathlib import Path

    return Path(text)


def _cwd() -> Path:
    from pathlib import Path

    return Path.cwd()


def _parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corral",
        description="Run many coding and audit agents in parallel on one repository, safely.",
    )
    parser.add_argument(
        "--repo", type=_path, default=None, help="the repository (default: the current one)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="start a run from a plan (or resume one)")
    run.add_argument("plan", nargs="?", type=_path, help="the plan file (TOML)")
    run.add_argument(
        "--resume", metavar="RUN", help="carry on a run whose engine died or was stopped"
    )
    run.add_argument(
        "--retry",
        metavar="AGENT",
        action="append",
        default=[],
        help="with --resume: retry this agent",
    )
    run.add_argument(
        "--detach", action="store_true", help="leave the engine running in the background"
    )
    run.add_argument("--quiet", action="store_true", help="no live progress, only the summary")
    run.add_argument("--run-id", help=argparse.SUPPRESS)

    validate = sub.add_parser("validate", help="check a plan without running it")
    validate.add_argument("plan", type=_path)

    status = sub.add_parser("status", help="the state of a run (default: the latest)")
    status.add_argument("run", nargs="?")
    status.add_argument("--json", action="store_true", help="print the published RunState JSON")

    runs = sub.add_parser("runs", help="list the runs of the repository")
    runs.add_argument("--json", action="store_true")

    logs = sub.add_parser("logs", help="an agent's output")
    logs.add_argument("run")
    logs.add_argument("agent")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing until the attempt ends"
    )
    logs.add_argument(
        "--attempt", type=int, default=None, help="which attempt (default: the latest)"
    )
    logs.add_argument(
        "--raw",
        action="store_true",
        help="the agent's bytes as written, escapes included (default: made safe to print)",
    )

    kill = sub.add_parser("kill", help="stop an agent (it ends cancelled, no retry)")
    kill.add_argument("run")
    kill.add_argument("agent")
    kill.add_argument("--reason", default="")

    retry = sub.add_parser("retry", help="give an ended agent another attempt")
    retry.add_argument("run")
    retry.add_argument("agent")

    heartbeat = sub.add_parser("heartbeat", help="(inside an agent) say the agent is alive")
    heartbeat.add_argument(
        "--progress", help="how far along: 0.0 to 1.0, or a percentage such as 40%%"
    )
    heartbeat.add_argument("message", nargs="?", help="what the agent is doing now")

    add_lock_parsers(sub, argv)

    verify = sub.add_parser("verify", help="check a run's event log (sequence and hash chain)")
    verify.add_argument("run", nargs="?")

    gc = sub.add_parser("gc", help="remove worktrees and branches of finished runs")
    gc.add_argument(
        "--force", action="store_true", help="also dirty worktrees and unfinished (dead) runs"
    )
    gc.add_argument("--dry-run", action="store_true", help="say what would be removed")

    demo = sub.add_parser(
        "demo", help="run the example plan on a fresh copy of the sample repository"
    )
    demo.add_argument(
        "--repo",
        type=_path,
        default=argparse.SUPPRESS,  # so `corral --repo PATH demo` keeps its value
        help="run on this repository instead of a fresh copy of the sample",
    )
    demo.add_argument(
        "--quiet", action="store_true", help="no console and no live progress, only the summary"
    )

    tui = sub.add_parser("tui", help="open the console")
    tui.add_argument("run", nargs="?")
    tui.add_argument(
        "--read-only", action="store_true", help="watch only: no kill, retry or decision"
    )

    add_review_parser(sub)
    return parser


CONSOLE_COMMANDS = frozenset({"tui", "demo"})
"""Commands that may run the Textual console, which is left to exit the ordinary way."""


def main(argv: list[str] | None = None, *, exit_hard: bool = False) -> int:
    """Run one command. `exit_hard` (the console script) ends the process right after a
    command that runs no console, skipping the interpreter's slow teardown (entry.hard_exit)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["heartbeat"]:  # one implementation, the fast one
        from corral.core.entry import heartbeat_command

        return heartbeat_command(argv[1:])
    args = parse_with_command(_parser(argv), argv)
    command = args.command or "tui"
    handler = _COMMANDS[command]
    from corral.core.entry import quiet_when_output_closes
    from corral.core.errors import CorralError

    try:
        code = quiet_when_output_closes(lambda: int(handler(args)))
    except CorralError as exc:  # the one catch of corral's errors (core/errors.py)
        code = _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        code = 130
    if exit_hard and command not in CONSOLE_COMMANDS:
        from corral.core.entry import hard_exit

        hard_exit(code)
    return code


def _fail(message: str, code: int = 1) -> int:
    from corral.core.trust.inert import inert  # messages may quote what an agent or a plan wrote

    print(f"corral: {inert(message, lines=True)}", file=sys.stderr)
    return code


def _common_dir(args: argparse.Namespace) -> Path:
    from corral.core.runs.rundir import git_common_dir

    return git_common_dir(args.repo or _cwd())


def _find(args: argparse.Namespace, name: str | None) -> Any:
    from corral.core.runs.rundir import find_run

    return find_run(_common_dir(args), name)


def _guard(handler: Any) -> Any:
    """Turn a planted or unusable runtime file into one clear line and an exit status
    (corral's own errors are caught once, in `main`)."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            result: int = handler(args)
        except OSError as exc:
            message = _runtime_file_problem(exc)
            if message is None:
                raise
            return _fail(message)
        return result

    return wrapped


def _runtime_file_problem(exc: OSError) -> str | None:
    """A person's words for a planted or unusable runtime file (docs/reliability.md L8), or None."""
    import errno

    if exc.errno == errno.ELOOP:
        return (
            f"{exc.filename} is a symbolic link; corral never follows links for its runtime "
            "files, since a planted link could redirect its writes. Remove the link and try again"
        )
    if isinstance(exc, PermissionError):
        return str(exc)
    return None


def _load_checked(args: argparse.Namespace) -> Any:
    from corral.core.plan.model import load_plan
    from corral.core.plan.preflight import preflight

    plan = load_plan(args.plan)
    checked = preflight(plan, args.plan.resolve(), (args.repo or _cwd()).resolve())
    from corral.core.trust.inert import inert

    for warning in checked.warnings:
        print(f"corral: warning: {inert(warning, lines=True)}", file=sys.stderr)
    return checked


@_guard
def cmd_validate(args: argparse.Namespace) -> int:
    pre = _load_checked(args)
    from corral.core.trust.inert import inert

    print(
        inert(
            f"{args.plan}: valid: {len(pre.plan.agents)} agent(s) on {pre.base_ref} "
            f"({pre.snapshot[:12]}) in {pre.repo_top}"
        )
    )
    return 0


@_guard
def cmd_run(args: argparse.Namespace) -> int:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import corral.core.plan.preflight  # noqa: F401 - imported here, so the thread below imports nothing

    checking = None
    if args.plan is not None and not args.resume:
        # the plan's git checks wait on git processes: let them run while the engine loads
        checking = ThreadPoolExecutor(max_workers=1).submit(_load_checked, args)
    from corral.core.engine.runner import resume_run, start_run
    from corral.core.runs.rundir import new_run_id

    if args.resume:
        if args.plan is not None:
            return _fail("give either a plan or --resume RUN, not both", 2)
        rundir = _find(args, args.resume)
        if args.retry:
            from corral.core.trust.authority import refuse_operator

            refused = refuse_operator("retry", f"agent {', '.join(args.retry)}", rundir)
            if refused is not None:
                return _fail(refused)
        if args.detach:
            return _detach(args, rundir.path.parent.parent.parent, rundir.run_id, resume=True)
        outcome = asyncio.run(resume_run(rundir, _view(args), args.retry, _whoami()))
    else:
        if checking is None:
            return _fail("name a plan: corral run PLAN (or --resume RUN)", 2)
        if args.retry:
            return _fail("--retry goes with --resume RUN", 2)
        pre = checking.result()
        run_id = args.run_id or new_run_id()
        if args.detach:
            return _detach(args, pre.common_dir, run_id, resume=False)
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


def _detach(args: argparse.Namespace, common_dir: Path, run_id: str, *, resume: bool) -> int:
    """Start the engine in its own session, wait until it answers, and return.

    A run whose engine lives is refused as `corral run --resume` refuses it."""
    from corral.core.engine.runner import EngineBusy, engine_is_live, start_in_background
    from corral.core.runs.rundir import RunDir, runs_root

    rundir = RunDir(runs_root(common_dir) / run_id)
    if resume and engine_is_live(rundir.check()):
        return _fail(str(EngineBusy(run_id)))
    if resume:
        command = ["run", "--resume", run_id, "--quiet", *[f"--retry={a}" for a in args.retry]]
    else:
        command = ["run", str(args.plan), "--run-id", run_id, "--quiet"]
    pid = start_in_background(rundir, command, repo=args.repo)
    _print_background(run_id, pid)
    return 0


def _print_background(run_id: str, pid: int) -> None:
    print(f"run {run_id} is running in the background (engine pid {pid})")
    print(f"  follow it:  corral status {run_id}    stop it:  kill {pid}")


def _whoami() -> str:
    import getpass

    return getpass.getuser()


@_guard
def cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console

    from corral.core.cli.headless import print_summary
    from corral.core.log import read_log
    from corral.core.log.state import fold
    from corral.core.trust.inert import inert_json

    rundir = _find(args, args.run)
    state = fold(read_log(rundir.events).events)
    if args.json:
        print(inert_json(state.model_dump_json(indent=2)))
        return 0
    print_summary(Console(), state, state.verdict_reason)
    return 0


@_guard
def cmd_runs(args: argparse.Namespace) -> int:
    from corral.core.runs.listing import RunList, summarize_runs
    from corral.core.trust.inert import inert, inert_json

    runs = summarize_runs(_common_dir(args))
    if args.json:
        print(inert_json(RunList(runs=runs).model_dump_json(indent=2)))
        return 0
    if not runs:
        print("no runs yet; start one with `corral run PLAN`")
        return 0
    for run in runs:
        counts = ", ".join(f"{count} {name}" for name, count in sorted(run.counts.items()))
        verdict = f" {run.verdict}" if run.verdict else ""
        print(inert(f"{run.run_id}  {run.status}{verdict}  {run.name}  ({counts})"))
    return 0


@_guard
def cmd_logs(args: argparse.Namespace) -> int:
    """An attempt's output; made inert (T5) unless `--raw`, on a terminal or not: a pipe often
    ends on a screen (`| less -R`, `| tail`), and only a person who asks gets the raw bytes."""
    import time

    from corral.core.log import read_log
    from corral.core.log.state import ACTIVE_STATES, fold
    from corral.core.trust.inert import InertStream

    rundir = _find(args, args.run)
    state = fold(read_log(rundir.events).events)
    agent = state.agents.get(args.agent)
    if agent is None:
        return _fail(
            f"no agent {args.agent!r} in run {rundir.run_id}; agents: {', '.join(state.agents)}", 2
        )
    number = args.attempt or agent.attempt
    if number < 1:
        return _fail(f"agent {args.agent!r} has not started yet")
    path = rundir.output_log(args.agent, number)
    out = sys.stdout.buffer
    offset = inode = 0
    stream = None if args.raw else InertStream()

    def show(chunk: bytes, *, final: bool = False) -> int:
        data = chunk if stream is None else stream.feed(chunk, final=final).encode()
        if data:
            out.write(data)
            out.flush()
        return 0

    while True:
        try:
            with path.open("rb") as handle:
                seen, inode = inode, os.fstat(handle.fileno()).st_ino
                if seen and inode != seen:
                    print(
                        f"corral: the log was redacted as the attempt ended; `corral logs "
                        f"{rundir.run_id} {args.agent}` prints that copy",
                        file=sys.stderr,
                    )
                    return show(b"", final=True)
                handle.seek(offset)
                chunk = handle.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            show(chunk)
            offset += len(chunk)
        if not args.follow:
            return show(b"", final=True)
        state = fold(read_log(rundir.events).events)
        current = state.agents[args.agent]
        still = current.attempt == number and current.state in ACTIVE_STATES | {"queued", "waiting"}
        if not still and not chunk:
            return show(b"", final=True)
        time.sleep(0.2)


def _send(args: argparse.Namespace, payload: dict[str, Any]) -> dict[str, Any]:
    from corral.core.agent.client import request

    rundir = _find(args, args.run)
    return request(str(rundir.socket), payload)


def _operators_only(args: argparse.Namespace, payload: dict[str, Any]) -> int | None:
    """docs/reliability.md T1: None when a person asks; else the refusal, printed (core/trust/authority.py)."""
    from corral.core.trust.authority import refuse_operator

    action, target = payload["op"], f"agent {payload['agent']}"
    refused = refuse_operator(action, target, _find(args, args.run), request=payload)
    return None if refused is None else _fail(refused)


@_guard
def cmd_kill(args: argparse.Namespace) -> int:
    payload = {"op": "kill", "agent": args.agent, "by": _whoami(), "reason": args.reason}
    refused = _operators_only(args, payload)
    if refused is not None:
        return refused
    data = _send(args, payload)
    print(f"{args.agent}: stopping (was {data.get('was')})")
    return 0


@_guard
def cmd_retry(args: argparse.Namespace) -> int:
    from corral.core.engine.runner import retry_agent

    rundir = _find(args, args.run)
    retried = retry_agent(rundir, args.agent, _whoami())
    if retried.resumed_pid is None:
        print(f"{args.agent}: queued as attempt {retried.attempt}")
        return 0
    print(f"the engine of run {rundir.run_id} was not running; resumed it to retry {args.agent}")
    _print_background(rundir.run_id, retried.resumed_pid)
    return 0


@_guard
def cmd_verify(args: argparse.Namespace) -> int:
    from corral.core.log import verify_log

    rundir = _find(args, args.run)
    result = verify_log(rundir.events)
    if result.ok:
        print(f"{rundir.events}: ok, {result.events} events, head {result.head[:16]}")
        return 0
    return _fail(f"{rundir.events}: {result.problem}")


@_guard
def cmd_gc(args: argparse.Namespace) -> int:
    from corral.core.runs.gc import collect_garbage
    from corral.core.runs.rundir import list_runs
    from corral.core.trust.authority import refuse_everywhere
    from corral.core.trust.inert import inert

    common_dir = _common_dir(args)
    refused = refuse_everywhere("gc", list_runs(common_dir), common_dir)
    if refused is not None:
        return _fail(refused)
    report = collect_garbage(common_dir, force=args.force, dry_run=args.dry_run)
    for line in report:
        print(inert(line))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo plan: in the console on a terminal, headless otherwise (CI, pipes, --quiet)."""
    from corral.core.cli.demo import demo_plan, demo_repo, prepare_environment
    from corral.core.runs.rundir import new_run_id

    prepare_environment()
    args.repo = demo_repo(args.repo)
    print(f"demo repository: {args.repo}")
    args.plan, args.resume, args.retry, args.run_id = demo_plan(), None, [], None
    interactive = not args.quiet and sys.stdin.isatty() and sys.stdout.isatty()
    if not interactive:
        args.detach = False
        return int(cmd_run(args))
    args.run_id, args.detach, args.quiet = new_run_id(), True, True
    started = int(cmd_run(args))
    if started != 0:
        return started
    from corral.tui.app import run_console

    return run_console(args.repo, args.run_id)


def cmd_tui(args: argparse.Namespace) -> int:
    from corral.tui.app import run_console

    return run_console(
        args.repo or _cwd(),
        getattr(args, "run", None),
        read_only=getattr(args, "read_only", False),
    )


@_guard
def cmd_review(args: argparse.Namespace) -> int:
    from corral.core.cli.review import cmd_review as review

    return review(args, _find(args, args.run))


_COMMANDS = {
    "run": cmd_run,
    "validate": cmd_validate,
    "status": cmd_status,
    "runs": cmd_runs,
    "logs": cmd_logs,
    "kill": cmd_kill,
    "retry": cmd_retry,
    "lock": cmd_lock,
    "put": cmd_put,
    "verify": cmd_verify,
    "gc": cmd_gc,
    "demo": cmd_demo,
    "review": cmd_review,
    "tui": cmd_tui,
}

if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(exit_hard=True))
