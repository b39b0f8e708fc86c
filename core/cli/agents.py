"""`corral kill`, `retry`, `send`, `pause`, `unpause` and `stop`: what a person does to one
agent or to the whole run, through the operator API."""

from __future__ import annotations

import argparse

from corral.core.cli.common import find_to_operate, operator, print_background


def cmd_kill(args: argparse.Namespace) -> int:
    from corral.core.operator.actions import kill

    rundir = find_to_operate(args, args.run, "kill", f"agent {args.agent}")
    killed = kill(rundir, args.agent, operator(), args.reason)
    print(f"{args.agent}: stopping (was {killed.was})")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from corral.core.operator.actions import stop

    rundir = find_to_operate(args, args.run, "stop", f"run {args.run}")
    stopped = stop(rundir, operator(), args.reason)
    running = ", ".join(stopped.running) or "no agent running"
    print(f"run {stopped.run_id}: stopping ({running})")
    print(f"  carry it on later:  corral run --resume {stopped.run_id}")
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    from corral.core.operator.actions import pause

    rundir = find_to_operate(args, args.run, "pause", f"agent {args.agent}")
    done = pause(rundir, args.agent, operator())
    print(f"{done.agent}#{done.attempt}: paused ({done.processes} processes stopped)")
    print(f"  let it go on:  corral unpause {rundir.run_id} {done.agent}")
    return 0


def cmd_unpause(args: argparse.Namespace) -> int:
    from corral.core.operator.actions import unpause

    rundir = find_to_operate(args, args.run, "unpause", f"agent {args.agent}")
    done = unpause(rundir, args.agent, operator())
    print(f"{done.agent}#{done.attempt}: going on after {done.paused_for:.1f}s paused")
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    from corral.core.operator.actions import answer

    rundir = find_to_operate(args, args.run, "answer", f"agent {args.agent}")
    done = answer(rundir, args.agent, args.text, operator(), args.question)
    print(f"{done.agent}#{done.attempt}: answered")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from corral.core.operator.actions import retry

    rundir = find_to_operate(args, args.run, "retry", f"agent {args.agent}")
    retried = retry(rundir, args.agent, operator())
    if retried.resumed_pid is None:
        print(f"{args.agent}: queued as attempt {retried.attempt}")
        return 0
    print(f"the engine of run {rundir.run_id} was not running; resumed it to retry {args.agent}")
    print_background(rundir.run_id, retried.resumed_pid)
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from corral.core.operator.actions import send_input

    rundir = find_to_operate(args, args.run, "input", f"agent {args.agent}")
    sent = send_input(rundir, args.agent, " ".join(args.message), operator())
    print(f"{args.agent}#{sent.attempt}: message sent")
    return 0
