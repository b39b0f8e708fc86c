"""`corral heartbeat`: parsed by hand and sent with the standard library only, because agents
call it often (core/entry.py runs it without loading the full command line)."""

from __future__ import annotations

import sys

HEARTBEAT_USAGE = """usage: corral heartbeat [--progress F] [MESSAGE]

Say the agent is alive (inside an agent started by corral).
  --progress F  how far along: 0.0 to 1.0, or a percentage such as 40%
  MESSAGE       what the agent is doing now"""


def _heartbeat_args(argv: list[str]) -> tuple[str | None, str | None]:
    """(progress text, message). Parsed by hand: argparse alone would double the command's
    start-up, and this grammar has two optional parts."""
    progress: str | None = None
    message: str | None = None
    rest = list(argv)
    while rest:
        word = rest.pop(0)
        if word in ("-h", "--help"):
            print(HEARTBEAT_USAGE)
            raise SystemExit(0)
        if word == "--progress" and rest:
            progress = rest.pop(0)
        elif word.startswith("--progress="):
            progress = word.split("=", 1)[1]
        elif word == "--":
            message = " ".join(rest) or None
            break
        elif word.startswith("-") or message is not None:
            print(f"{HEARTBEAT_USAGE}\ncorral heartbeat: unexpected {word!r}", file=sys.stderr)
            raise SystemExit(2)
        else:
            message = word
    return progress, message


def heartbeat_command(argv: list[str]) -> int:
    from corral.core.agent.client import ControlError, heartbeat

    text, message = _heartbeat_args(argv)
    progress = None
    if text is not None:
        try:
            progress = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            progress = -1.0
        if not 0 <= progress <= 1:
            print(
                f"corral: --progress {text!r}: give 0.0 to 1.0 or a percentage such as 40%",
                file=sys.stderr,
            )
            return 2
    try:
        heartbeat(progress, message)
    except ControlError as exc:
        print(f"corral: {exc}", file=sys.stderr)
        return 1
    return 0
