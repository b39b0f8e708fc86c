"""The first process of an attempt on a Ray node: it starts the agent and outlives it by nothing.

A node's actor is a Ray worker process; when the node is removed or the worker dies, nothing of
Ray stops the agent it started in its own session. This keeper is that session's leader: it
asks the kernel for SIGTERM when its parent (the actor's worker) dies (PR_SET_PDEATHSIG), starts
the agent as its child, passes SIGTERM/SIGINT/SIGHUP on to its whole process group, and exits
as the agent did (the same status, or the same signal). So a vanished actor takes its agent's
tree with it, and the actor's own stop (`terminate_attempt`, by tree and marks) is unchanged.

Run by path (`python3 -I keeper.py PARENT_PID -- COMMAND...`), standard library only.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def _on_parent_death(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: keeper.py PARENT_PID -- COMMAND...", file=sys.stderr)
        return 125
    parent, command = int(argv[0]), argv[2:]
    group = os.getpgid(0)

    def forward(number: int, _frame: object) -> None:
        signal.signal(number, signal.SIG_IGN)  # the group's signal reaches us too: once is enough
        os.killpg(group, number)

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, forward)
    _on_parent_death(parent)
    try:
        child = subprocess.Popen(command)
    except OSError as error:
        print(f"corral: cannot start {command[0]!r}: {error.strerror or error}", file=sys.stderr)
        return 127
    status = child.wait()
    if status < 0:
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
