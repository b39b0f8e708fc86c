"""Running the plan's verification command (the project's tests) on the integration result."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from corral.worktrees.safety import LOCATING_VARIABLES

KILL_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL for a verification that ran out of time."""


class Verification(NamedTuple):
    passed: bool
    exit_code: int | None
    """None when it was killed (timed out, or died of a signal)."""


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_verification(
    worktree: Path, command: Sequence[str], log_path: Path, timeout: float
) -> Verification:
    """Run `command` (no shell) in `worktree`, output to `log_path`, within `timeout` seconds.

    It runs in its own session; on timeout the whole process group gets SIGTERM, then SIGKILL
    after KILL_GRACE, and whatever it left running in its group is killed when it exits.
    Passed means exit status 0.
    """
    if not command:
        raise ValueError("the verification command is empty; give the program and its arguments")
    env = {k: v for k, v in os.environ.items() if k not in LOCATING_VARIABLES}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(command)}  (in {worktree})\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                list(command),
                cwd=worktree,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            log.write(f"corral: could not start the verification command: {exc}\n".encode())
            return Verification(False, None)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
            log.write(
                f"\ncorral: verification timed out after {timeout:g}s and was killed\n".encode()
            )
            return Verification(False, None)
        finally:
            _kill_group(proc.pid, signal.SIGKILL)  # leftovers of the group
        elapsed = time.monotonic() - started
        log.write(f"\ncorral: verification exited {code} after {elapsed:.1f}s\n".encode())
    if code < 0:
        return Verification(False, None)
    return Verification(code == 0, code)
