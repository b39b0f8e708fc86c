"""The `corral lock ...` and `corral put` commands.

Agents run these often, so this module imports only argparse at the top; each command imports
the standard-library client when it runs (no pydantic, no git, no rich).
"""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False  # keep typing and pathlib out of the agent-side commands' start-up
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


def _fail(message: str, code: int = 1) -> int:
    from corral.core.trust.inert import inert  # the engine's answer may quote an agent's words

    print(f"corral: {inert(message, lines=True)}", file=sys.stderr)
    return code


def _duration(text: str) -> float:
    from corral.core.plan.durations import parse_duration

    try:
        return parse_duration(text if not text.replace(".", "", 1).isdigit() else float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_lock_parsers(sub: Any, argv: list[str]) -> None:
    """`corral lock VERB ...` and `corral put`, in full only when `argv` may use them: building
    them costs milliseconds that every `corral heartbeat` would pay (docs/performance.md)."""
    lock = sub.add_parser("lock", help="(inside an agent) leases on shared resources")
    put = sub.add_parser(
        "put", help="(inside an agent) write a shared file, fenced by a lease's token"
    )
    if "lock" not in argv and "put" not in argv:
        return
    verbs = lock.add_subparsers(dest="lock_command", metavar="VERB", required=True)

    def lease_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", help="the resource, e.g. db or port-8080")
        parser.add_argument(
            "--ttl", type=_duration, default=60.0, help="lease length (default 60s)"
        )
        parser.add_argument(
            "--wait", type=_duration, default=30.0, help="how long to wait in line (default 30s)"
        )
        parser.add_argument("--reason", default="", help="why, shown to whoever waits")

    acquire = verbs.add_parser("acquire", help="take a lease and print its fencing token")
    lease_options(acquire)
    acquire.add_argument(
        "--request-id", help="repeat an acquire safely: the same id gets the same grant"
    )
    acquire.add_argument("--json", action="store_true", help="print the whole grant as JSON")

    renew = verbs.add_parser("renew", help="extend a lease you hold by its TTL")
    renew.add_argument("name")
    renew.add_argument("--token", type=int, required=True, help="the lease's fencing token")
    renew.add_argument("--ttl", type=_duration, default=None, help="a new lease length")

    release = verbs.add_parser("release", help="give a lease back")
    release.add_argument("name")
    release.add_argument("--token", type=int, required=True, help="the lease's fencing token")

    listing = verbs.add_parser("list", help="holders, tokens, TTL left and waiters")
    listing.add_argument("--run", help="from a terminal: the run whose locks to show")
    listing.add_argument("--json", action="store_true")

    run = verbs.add_parser(
        "run", help="hold a lease while a command runs (renewed; the command is stopped if lost)"
    )
    lease_options(run)
    run.add_argument(
        "--grace",
        type=_duration,
        default=2.0,
        help="time between SIGTERM and SIGKILL when the lease is lost (default 2s)",
    )
    run.add_argument("cmd", nargs="*", metavar="-- CMD ...", help="the command, after --")

    brk = verbs.add_parser("break", help="(a person) take a lease away from its holder")
    brk.add_argument("name")
    brk.add_argument("--reason", required=True, help="why (recorded in the run's log)")
    brk.add_argument("--run", help="the run (needed outside an agent)")
    brk.add_argument("--token", type=int, default=None, help="only if it still has this token")

    put.add_argument("name", help="the lock whose lease you hold")
    put.add_argument("--token", type=int, required=True, help="the lease's fencing token")
    put.add_argument("path", help="where, relative to CORRAL_SHARED; the data comes on stdin")


def parse_with_command(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse the command line; for `lock run`, everything after `--` is the command as is."""
    if "--" in argv:
        cut = argv.index("--")
        head = parser.parse_args(argv[:cut])
        if head.command == "lock" and head.lock_command == "run":
            head.cmd = [*head.cmd, *argv[cut + 1 :]]
            return head
    return parser.parse_args(argv)


def _lock_acquire(args: argparse.Namespace) -> int:
    import json

    from corral.core.agent.lock_client import LockClient

    client = LockClient.from_env("lock acquire")
    lease = client.acquire(
        args.name,
        ttl=args.ttl,
        wait=args.wait,
        reason=args.reason,
        request_id=args.request_id,
        pid=os.getppid(),  # the shell or program that asked, which outlives this command
    )
    if args.json:
        fields = ("lock", "token", "ttl", "expires_at", "request_id")
        print(json.dumps({key: getattr(lease, key) for key in fields}))
    else:
        print(lease.token)
    return 0


def _lock_renew(args: argparse.Namespace) -> int:
    from corral.core.agent.lock_client import Lease, LockClient

    client = LockClient.from_env("lock renew")
    lease = Lease(args.name, args.token, args.ttl or 0.0, 0.0, "", 0.0)
    renewed = client.renew(lease, args.ttl)
    print(f"{args.name}: token {renewed.token} renewed for {renewed.ttl:g}s")
    return 0


def _lock_release(args: argparse.Namespace) -> int:
    from corral.core.agent.lock_client import LockClient

    client = LockClient.from_env("lock release")
    if not client.release((args.name, args.token)):
        print(f"{args.name}: token {args.token} was no longer held (nothing to release)")
    return 0


def _operator_socket(args: argparse.Namespace, command: str) -> str:
    """The run's socket: the agent's own run, or the run a person names with --run."""
    socket_path = os.environ.get("CORRAL_SOCKET")
    if socket_path:
        return socket_path
    if not args.run:
        from corral.core.agent.client import ControlError

        raise ControlError(
            f"`corral {command}` is not running inside a run (CORRAL_SOCKET is not set); "
            "from a terminal, name the run: --run RUN"
        )
    from corral.core.runs.rundir import find_run, git_common_dir

    return str(find_run(git_common_dir(args.repo or _cwd()), args.run).socket)


def _named_run(args: argparse.Namespace) -> Any:
    """The run named with --run, None without (an agent's own run, by CORRAL_SOCKET)."""
    if not args.run:
        return None
    from corral.core.cli.common import find_to_operate

    return find_to_operate(args, args.run, "lock break", f"lock {args.name}")


def _lock_list(args: argparse.Namespace) -> int:
    import json

    from corral.core.agent.client import request
    from corral.core.agent.lock_command import lock_lines
    from corral.core.trust.inert import inert

    data = request(_operator_socket(args, "lock list"), {"op": "lock_list"})
    locks = data.get("locks") or []
    if args.json:
        print(json.dumps(locks, indent=2))
        return 0
    for line in lock_lines(locks):
        print(inert(line))
    return 0


def _lock_break(args: argparse.Namespace) -> int:
    from corral.core.operator.actions import break_lock
    from corral.core.operator.identity import Operator
    from corral.core.trust.inert import inert

    socket_path = _operator_socket(args, "lock break")
    # an OperatorError (refused, unreachable): exit 1, from cli/main.py
    broken = break_lock(
        _named_run(args), args.name, Operator.current(), args.reason, args.token, socket=socket_path
    )
    print(
        inert(
            f"{args.name}: broke the lease of {broken.agent}#{broken.attempt} "
            f"(token {broken.token}); the next waiter, if any, has it now"
        )
    )
    return 0


def _lock_run(args: argparse.Namespace) -> int:
    from corral.core.agent.lock_command import run_locked

    command = list(args.cmd)
    if not command:
        return _fail(
            "lock run: give the command after --, e.g. corral lock run db -- make migrate", 2
        )
    return run_locked(
        args.name, command, ttl=args.ttl, wait=args.wait, reason=args.reason, grace=args.grace
    )


_LOCK_VERBS = {
    "acquire": _lock_acquire,
    "renew": _lock_renew,
    "release": _lock_release,
    "list": _lock_list,
    "run": _lock_run,
    "break": _lock_break,
}


def cmd_lock(args: argparse.Namespace) -> int:
    """Errors (the engine's refusals, no such run) are CorralErrors, caught in cli/main.py."""
    return int(_LOCK_VERBS[args.lock_command](args))


def cmd_put(args: argparse.Namespace) -> int:
    from corral.core.agent.lock_client import MAX_PUT_BYTES, LockClient

    client = LockClient.from_env("put")
    data = sys.stdin.buffer.read(MAX_PUT_BYTES + 1)
    if len(data) > MAX_PUT_BYTES:
        return _fail(f"put: more than {MAX_PUT_BYTES} bytes on stdin; write less", 2)
    client.put(args.name, args.token, args.path, data)
    return 0


def _cwd() -> Path:
    from pathlib import Path

    return Path.cwd()
