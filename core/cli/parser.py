"""The `corral` command line: every command, its arguments and help.

Built on each start (argparse is fast; the lock verbs only when asked, cli/locks.py), so it
imports nothing heavy: the commands themselves live in main.py, runs.py, agents.py, review.py
and locks.py.
"""

from __future__ import annotations

import argparse

from corral.core.cli.common import path_arg
from corral.core.cli.hosts import add_hosts_parser
from corral.core.cli.locks import add_lock_parsers
from corral.core.cli.mcp import add_mcp_parser
from corral.core.cli.presets import add_presets_parser
from corral.core.cli.review import add_review_parser
from corral.core.cli.serve import add_serve_parser


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corral",
        description="Run many coding and audit agents in parallel on one repository, safely.",
    )
    parser.add_argument(
        "--repo", type=path_arg, default=None, help="the repository (default: the current one)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="start a run from a plan (or resume one)")
    run.add_argument("plan", nargs="?", type=path_arg, help="the plan file (TOML)")
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
    # what `corral rerun` starts in the background (core/operator/actions.py rerun)
    run.add_argument("--rerun-of", metavar="RUN", help=argparse.SUPPRESS)
    run.add_argument("--rerun-agent", action="append", default=[], help=argparse.SUPPRESS)

    rerun = sub.add_parser(
        "rerun",
        help="re-run agents a run left out at merge-back, on its integration branch (a new run)",
    )
    rerun.add_argument("run")
    rerun.add_argument("agents", nargs="+", metavar="AGENT")

    validate = sub.add_parser("validate", help="check a plan without running it")
    validate.add_argument("plan", type=path_arg)

    status = sub.add_parser("status", help="the state of a run (default: the latest)")
    status.add_argument("run", nargs="?")
    status.add_argument("--json", action="store_true", help="print the published RunState JSON")

    runs = sub.add_parser("runs", help="list the runs of the repository")
    runs.add_argument("--json", action="store_true")

    add_presets_parser(sub)
    add_hosts_parser(sub)

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

    stop = sub.add_parser(
        "stop", help="stop a whole run: every agent's tree; `run --resume` carries it on"
    )
    stop.add_argument("run")
    stop.add_argument("--reason", default="")

    pause = sub.add_parser(
        "pause", help="freeze a running agent's process tree (SIGSTOP); its timeouts stand still"
    )
    pause.add_argument("run")
    pause.add_argument("agent")
    unpause = sub.add_parser("unpause", help="let a paused agent go on (SIGCONT)")
    unpause.add_argument("run")
    unpause.add_argument("agent")

    retry = sub.add_parser("retry", help="give an ended agent another attempt")
    retry.add_argument("run")
    retry.add_argument("agent")

    send = sub.add_parser(
        "send",
        help="send a message to a running agent that takes input (its input_format; on a "
        "tty it is typed, then Enter)",
    )
    send.add_argument("run")
    send.add_argument("agent")
    send.add_argument("message", nargs="+", help="the message (words are joined by spaces)")
    answer = sub.add_parser("answer", help="answer the question an agent waits on")
    answer.add_argument("run")
    answer.add_argument("agent")
    answer.add_argument("text", help="the answer (one of its choices, if it gave any)")
    answer.add_argument(
        "--question", default=None, help="answer only this question id (as `corral status` shows)"
    )

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
        type=path_arg,
        default=argparse.SUPPRESS,  # so `corral --repo PATH demo` keeps its value
        help="run on this repository instead of a fresh copy of the sample",
    )
    demo.add_argument(
        "--quiet", action="store_true", help="no console and no live progress, only the summary"
    )
    demo.add_argument(
        "--agents",
        action="store_true",
        help="the AI demo: Claude Code, Codex and Gemini CLI against corral's scripted model "
        "(examples/agents.toml; needs the CLIs: tests/agents/install_clis.sh)",
    )

    tui = sub.add_parser("tui", help="open the console")
    tui.add_argument("run", nargs="?")
    tui.add_argument(
        "--read-only", action="store_true", help="watch only: no kill, retry or decision"
    )
    # who acts, from the server that started this console (`corral serve --ssh`), not from the
    # environment: the key's name, fingerprint and roles, and the file that grants them
    tui.add_argument("--as", dest="as_name", help=argparse.SUPPRESS)
    tui.add_argument("--fingerprint", help=argparse.SUPPRESS)
    tui.add_argument("--roles", help=argparse.SUPPRESS)
    tui.add_argument("--keys-file", help=argparse.SUPPRESS)

    attach = sub.add_parser(
        "attach", help="a tty agent's terminal, full screen: watch it and type into it"
    )
    attach.add_argument("run")
    attach.add_argument("agent")
    attach.add_argument("--read-only", action="store_true", help="watch only: typing is off")

    add_review_parser(sub)
    add_mcp_parser(sub)
    add_serve_parser(sub)
    return parser
