"""The `corral` console script: agent-side hot paths first, everything else through `cli`.

Agents call `corral heartbeat` often, so it gets a parser of its own and never loads the full
command line (every subcommand's parser) or anything heavier than json and socket.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: `corral heartbeat` must not import typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

PIPE_CLOSED = 141
"""128 + SIGPIPE: the status a shell shows for a command whose reader left (`yes | head -1`)."""

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


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["heartbeat"]:
        return heartbeat_command(argv[1:])
    from corral.core.cli.main import main as full

    return full(argv, exit_hard=True)


def quiet_when_output_closes(command: Callable[[], int]) -> int:
    """Run `command` and flush its output; if the reader of standard output leaves (`| head`),
    stop as Unix tools do: no message, PIPE_CLOSED. A broken pipe anywhere else (a socket, a
    child's stdin) is a real failure and goes on up.

    rich's Console handles a broken stdout itself (it points stdout at /dev/null and exits 1),
    so the original output is watched through a duplicate of its descriptor."""
    import os

    try:
        watched = os.dup(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # no standard output (closed, or captured)
        return command()
    try:
        code = command()
        sys.stdout.flush()  # a reader that left shows here, not in the exit's flush
        return code
    except BrokenPipeError:
        if not _reader_left(watched):
            raise
    except SystemExit as exc:
        if exc.code != 1 or not _reader_left(watched):
            raise
    finally:
        os.close(watched)
    # what is still buffered goes to /dev/null, so that the exit's flush cannot fail again
    # (Python docs, "Note on SIGPIPE")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return PIPE_CLOSED


def _reader_left(fd: int) -> bool:
    """Whether `fd` is a pipe or socket whose reader has gone: its write end reports an error
    or a hangup."""
    import select

    try:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def hard_exit(code: int) -> NoReturn:
    """End the process now, skipping the interpreter's teardown of every module and object.

    With the engine's modules loaded (pydantic models above all) that teardown takes ~0.1 s
    after the work is done, longer than many commands themselves; mypy exits this way for the
    same reason. Only for a command that has finished: its files are closed, its threads idle
    or daemons, and standard output is flushed here.
    """
    import contextlib
    import os

    for stream in (sys.stdout, sys.stderr):
        # a closed pipe, or no stream at all (started with `>&-`): nothing more to write
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
