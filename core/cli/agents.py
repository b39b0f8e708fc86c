"""`corral kill` and `corral retry`: what a person does to one agent, through the operator API."""

from __future__ import annotations

import argparse

from corral.core.cli.common import find, operator, print_background


def cmd_kill(args: argparse.Namespace) -> int:
    from corral.core.operator.actions import kill

    killed = kill(find(args, args.run), args.agent, operator(), args.reason)
    print(f"{args.agent}: stopping (was {killed.was})")
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    from corral.core.operator.actions import answer

    done = answer(find(args, args.run), args.agent, args.text, operator(), args.question)
    print(f"{done.agent}#{done.attempt}: answered")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from corral.core.operator.actions import retry

    rundir = find(args, args.run)
    retried = retry(rundir, args.agent, operator())
    if retried.resumed_pid is None:
        print(f"{args.agent}: queued as attempt {retried.attempt}")
        return 0
    print(f"the engine of run {rundir.run_id} was not running; resumed it to retry {args.agent}")
    print_background(rundir.run_id, retried.resumed_pid)
    return 0
