"""`corral lock run` and `corral lock list`: standard library only (agents start them often)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from corral.core.agent.lock_client import HeldLease, LockBusy, LockClient

EXIT_BUSY = 75
"""`lock run`: the lock stayed held for the whole --wait (EX_TEMPFAIL: try again later)."""
EXIT_LOST = 76
"""`lock run`: the lease was lost while the command ran, so the command was stopped."""
EXIT_CANNOT_RUN = 127


class _Child:
    """The command under the lease, shared between the main thread and the renewing thread."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.proc: subprocess.Popen[bytes] | None = None
        self.own_group = False
        self.lost: str | None = None
        self.mutex = threading.Lock()

    def signal(self, signum: int) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            if self.own_group:
                os.killpg(proc.pid, signum)
            else:
                proc.send_signal(signum)
        except ProcessLookupError:
            pass

    def on_lost(self, reason: str) -> None:
        """Called by the renewing thread: stop the command, SIGKILL it after the grace."""
        with self.mutex:
            self.lost = reason
        self.signal(signal.SIGTERM)
        timer = threading.Timer(self.grace, self.signal, args=(signal.SIGKILL,))
        timer.daemon = True
        timer.start()


def run_locked(
    name: str, command: list[str], *, ttl: float, wait: float, reason: str, grace: float
) -> int:
    """Hold a lease on `name` while `command` runs; its exit status, or EXIT_BUSY/EXIT_LOST."""
    client = LockClient.from_env("lock run")
    try:
        lease = client.acquire(name, ttl=ttl, wait=wait, reason=reason or " ".join(command)[:200])
    except LockBusy as exc:
        print(f"corral: lock run: {exc}", file=sys.stderr)
        return EXIT_BUSY
    child = _Child(grace)
    held = HeldLease(client, lease, child.on_lost)
    env = {**os.environ, "CORRAL_LOCK_NAME": name, "CORRAL_LOCK_TOKEN": str(lease.token)}
    # Its own process group lets a lost lease stop the command's children too; not when a
    # terminal is attached, where a background group could not read from it.
    child.own_group = not sys.stdin.isatty()
    try:
        with child.mutex:
            if child.lost is None:
                child.proc = subprocess.Popen(
                    command, env=env, process_group=0 if child.own_group else None
                )
    except OSError as exc:
        held.stop()
        print(f"corral: lock run: cannot start {command[0]!r}: {exc.strerror}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {
        sig: signal.signal(sig, lambda signum, _: child.signal(signum)) for sig in forwarded
    }
    try:
        code = child.proc.wait() if child.proc is not None else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        held.stop()
    if child.lost is not None:
        print(
            f"corral: lock run: the lease on {name} (token {lease.token}) was lost "
            f"({child.lost}); {command[0]!r} was stopped",
            file=sys.stderr,
        )
        return EXIT_LOST
    return code if code >= 0 else 128 - code


def _ttl_cell(holder: dict[str, Any]) -> str:
    if holder.get("declared"):
        return "until it ends"
    left = holder.get("ttl_left")
    if not isinstance(left, int | float):
        return "-"
    if left < 0:
        return f"overdue {-left:.1f}s"
    return f"{left:.1f}s of {holder.get('ttl') or 0:g}s"


def lock_lines(locks: list[dict[str, Any]], now: float | None = None) -> list[str]:
    """`corral lock list` as aligned lines: who holds what, with which token, and who waits."""
    if not locks:
        return ["no lock is held or waited for"]
    now = time.time() if now is None else now
    rows = [("LOCK", "HOLDER", "PID", "TOKEN", "TTL LEFT", "WAITING")]
    for lock in locks:
        holder = lock.get("holder") or {}
        waiters = lock.get("waiters") or []
        waiting = ", ".join(
            f"{w.get('agent')}#{w.get('attempt')} ({now - float(w.get('since') or now):.0f}s)"
            for w in waiters
        )
        who = f"{holder['agent']}#{holder['attempt']}" if holder else "(free)"
        if holder.get("restored"):
            who += " (before restart)"
        rows.append(
            (
                str(lock.get("lock")),
                who,
                str(holder.get("pid") or "-"),
                str(holder.get("token") or "-"),
                _ttl_cell(holder) if holder else "-",
                waiting or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]])
        for row in rows
    ]
