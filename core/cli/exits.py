"""How a command ends: quietly when the reader of its output leaves (`| head`), and without
the interpreter's slow teardown once it is done."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # as in core/entry.py: nothing here needs typing at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

PIPE_CLOSED = 141
"""128 + SIGPIPE: the status a shell shows for a command whose reader left (`yes | head -1`)."""


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
