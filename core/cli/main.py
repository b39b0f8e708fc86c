"""The `corral` command.

argparse (standard library) rather than click or typer: agents run `corral heartbeat` often and
its start-up must stay near Python's own, so this module imports nothing heavy at the top and
each command imports what it needs when it runs. The parser is in parser.py; the commands by
group in runs.py, agents.py, review.py and locks.py, and what they do to a run goes through the
operator API (core/operator/).
"""

from __future__ import annotations

import argparse
import os
import sys

from corral.core.cli import agents, runs
from corral.core.cli.common import cwd as _cwd
from corral.core.cli.common import fail as _fail
from corral.core.cli.common import find as _find
from corral.core.cli.common import find_to_operate
from corral.core.cli.hosts import cmd_hosts
from corral.core.cli.locks import cmd_lock, cmd_put, parse_with_command
from corral.core.cli.mcp import cmd_mcp
from corral.core.cli.parser import build_parser
from corral.core.cli.presets import cmd_presets

TYPE_CHECKING = False  # not typing's: importing typing (and pathlib) would slow `corral heartbeat`
if TYPE_CHECKING:
    from typing import Any

    from corral.core.operator.identity import Operator

_parser = build_parser  # its name before the parser had a module of its own

CONSOLE_COMMANDS = frozenset({"tui", "demo", "attach"})
"""Commands that may run the Textual console, which is left to exit the ordinary way."""


def main(argv: list[str] | None = None, *, exit_hard: bool = False) -> int:
    """Run one command. `exit_hard` (the console script) ends the process right after a
    command that runs no console, skipping the interpreter's slow teardown (cli/exits.py, hard_exit)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["heartbeat"]:  # one implementation, the fast one
        from corral.core.agent.heartbeat_command import heartbeat_command

        return heartbeat_command(argv[1:])
    args = parse_with_command(_parser(argv), argv)
    command = args.command or "tui"
    handler = _COMMANDS[command]
    from corral.core.cli.exits import quiet_when_output_closes
    from corral.core.errors import CorralError

    try:
        code = quiet_when_output_closes(lambda: int(handler(args)))
    except CorralError as exc:  # the one catch of corral's errors (core/errors.py)
        code = _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        code = 130
    if exit_hard and command not in CONSOLE_COMMANDS:
        from corral.core.cli.exits import hard_exit

        hard_exit(code)
    return code


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


cmd_run = _guard(runs.cmd_run)
cmd_validate = _guard(runs.cmd_validate)
cmd_status = _guard(runs.cmd_status)
cmd_runs = _guard(runs.cmd_runs)
cmd_verify = _guard(runs.cmd_verify)
cmd_rerun = _guard(runs.cmd_rerun)
cmd_gc = _guard(runs.cmd_gc)
cmd_kill = _guard(agents.cmd_kill)
cmd_retry = _guard(agents.cmd_retry)
cmd_send = _guard(agents.cmd_send)
cmd_stop = _guard(agents.cmd_stop)
cmd_pause = _guard(agents.cmd_pause)
cmd_unpause = _guard(agents.cmd_unpause)


@_guard
def cmd_logs(args: argparse.Namespace) -> int:
    """An attempt's output; made inert (T5) unless `--raw`, on a terminal or not: a pipe often
    ends on a screen (`| less -R`, `| tail`), and only a person who asks gets the raw bytes."""
    import time

    from corral.core.log import LogFollower
    from corral.core.log.state import ACTIVE_STATES, apply, fold
    from corral.core.trust.inert import InertStream

    rundir = _find(args, args.run)
    events, contents = LogFollower.replay(rundir.events)  # -f polls it: one fstat when idle
    state = fold(contents.events)
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

    with events:
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
            for event in events.poll():
                apply(state, event)
            current = state.agents[args.agent]
            still = current.attempt == number and current.state in ACTIVE_STATES | {
                "queued",
                "waiting",
            }
            if not still and not chunk:
                return show(b"", final=True)
            time.sleep(0.2)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo plan: in the console on a terminal, headless otherwise (CI, pipes, --quiet)."""
    from corral.core.cli.demo import demo_plan, demo_repo, prepare_environment
    from corral.core.runs.rundir import new_run_id

    if getattr(args, "agents", False):
        return _demo_agents(args)

    prepare_environment()
    args.repo = demo_repo(args.repo)
    print(f"demo repository: {args.repo}")
    args.plan, args.resume, args.retry, args.run_id = demo_plan(), None, [], None
    args.rerun_of, args.rerun_agent = None, []
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


def _demo_agents(args: argparse.Namespace) -> int:
    """`corral demo --agents`: examples/agents.toml, real agent CLIs, scripted model servers
    serving from this process while the run (and, on a terminal, the console) lasts."""
    from corral.core.cli import demo_agents
    from corral.core.runs.rundir import new_run_id

    demo_agents.check()
    args.repo = args.repo.resolve() if args.repo else demo_agents.agents_repo()
    print(f"demo repository: {args.repo}")
    args.plan, args.resume, args.retry = demo_agents.agents_plan(), None, []
    args.rerun_of, args.rerun_agent = None, []
    args.run_id = new_run_id()
    interactive = not args.quiet and sys.stdin.isatty() and sys.stdout.isatty()
    with demo_agents.model_servers(args.repo, args.run_id) as endpoints:
        os.environ.update(endpoints)
        if not interactive:
            args.detach = False
            return int(cmd_run(args))
        args.detach, args.quiet = True, True
        started = int(cmd_run(args))
        if started != 0:
            return started
        from corral.tui.app import run_console

        print("the model servers stop when you leave the console", file=sys.stderr)
        return run_console(args.repo, args.run_id)


def cmd_tui(args: argparse.Namespace) -> int:
    from corral.tui.app import run_console

    return run_console(
        args.repo or _cwd(),
        getattr(args, "run", None),
        read_only=getattr(args, "read_only", False),
        operator=_served_operator(args),
    )


def _served_operator(args: argparse.Namespace) -> Operator | None:
    """The person a server says this console serves (`--as NAME --fingerprint FP --roles R`),
    or None: the user at this terminal, with every role."""
    from corral.core.errors import InputError
    from corral.core.operator.identity import Operator, parse_roles

    name = getattr(args, "as_name", None)
    if name is None:
        return None
    if not args.fingerprint or not args.roles:
        raise InputError("--as NAME needs --fingerprint SHA256:... and --roles ROLES")
    try:
        roles = parse_roles(args.roles)
    except ValueError as exc:
        raise InputError(f"--roles {args.roles}: {exc}") from None
    return Operator.ssh_key(name, args.fingerprint, roles, args.keys_file or "")


def cmd_attach(args: argparse.Namespace) -> int:
    """`corral attach RUN AGENT`: the console opened on that agent's terminal; ctrl+] leaves."""
    from corral.tui.app import run_console

    return run_console(
        args.repo or _cwd(), args.run, read_only=args.read_only, attach_to=args.agent
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from corral.core.cli.serve import cmd_serve as serve

    return serve(args, args.repo or _cwd())


@_guard
def cmd_review(args: argparse.Namespace) -> int:
    from corral.core.cli.review import cmd_review as review

    action = REVIEW_ACTIONS.get(args.review_action)
    if action is None:  # `show` reads
        return review(args, _find(args, args.run))
    return review(args, find_to_operate(args, args.run, action, "the report"))


REVIEW_ACTIONS = {
    "approve": "approve",
    "reject": "reject",
    "acknowledge": "acknowledge tampering",
    "suppress": "suppress",
}
"""`corral review` verbs that are operator actions, by the name a refusal gives them."""


_COMMANDS = {
    "run": cmd_run,
    "validate": cmd_validate,
    "status": cmd_status,
    "runs": cmd_runs,
    "presets": cmd_presets,
    "hosts": cmd_hosts,
    "logs": cmd_logs,
    "kill": cmd_kill,
    "retry": cmd_retry,
    "send": cmd_send,
    "stop": cmd_stop,
    "pause": cmd_pause,
    "unpause": cmd_unpause,
    "answer": _guard(agents.cmd_answer),
    "mcp": cmd_mcp,
    "lock": cmd_lock,
    "put": cmd_put,
    "verify": cmd_verify,
    "rerun": cmd_rerun,
    "gc": cmd_gc,
    "demo": cmd_demo,
    "review": cmd_review,
    "tui": cmd_tui,
    "attach": cmd_attach,
    "serve": cmd_serve,
}

if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(exit_hard=True))
