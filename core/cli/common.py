"""What every `corral` command shares: paths, finding the run, and one way to fail.

Imports only the standard library's light modules at the top, like main.py: agents run
`corral heartbeat` often (docs/performance.md)."""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False  # not typing's: importing typing (and pathlib) would slow `corral heartbeat`
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


def path_arg(text: str) -> Path:
    """argparse type for paths, importing pathlib only when a path is given."""
    from pathlib import Path

    return Path(text)


def cwd() -> Path:
    from pathlib import Path

    return Path.cwd()


def fail(message: str, code: int = 1) -> int:
    from corral.core.trust.inert import inert  # messages may quote what an agent or a plan wrote

    print(f"corral: {inert(message, lines=True)}", file=sys.stderr)
    return code


def common_dir(args: argparse.Namespace) -> Path:
    from corral.core.runs.rundir import git_common_dir

    return git_common_dir(args.repo or cwd())


def find(args: argparse.Namespace, name: str | None) -> Any:
    from corral.core.runs.rundir import find_run

    return find_run(common_dir(args), name)


def find_to_operate(args: argparse.Namespace, name: str | None, action: str, target: str) -> Any:
    """`find` for an operator action (docs/reliability.md T1): when no such run can be seen
    from inside an agent (a sandboxed one sees none), the agent is refused as T1 refuses it and
    its own engine logs the refusal, rather than told the run does not exist."""
    from corral.core.runs.rundir import RunNotFound

    try:
        return find(args, name)
    except RunNotFound:
        from corral.core.operator.guard import people_only_unseen

        run = f" of run {name}" if name else ""
        people_only_unseen(action, f"{target}{run}")
        raise


def operator() -> Any:
    """The person at this terminal (core/operator/identity.py), read once per command."""
    from corral.core.operator.identity import Operator

    return Operator.current()


def print_background(run_id: str, pid: int) -> None:
    print(f"run {run_id} is running in the background (engine pid {pid})")
    print(f"  follow it:  corral status {run_id}    stop it:  kill {pid}")
