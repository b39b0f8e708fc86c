"""The plan's `verify` command on the integration worktree, run through the run's runtime.

Like an agent's command it runs in its own session with marks, its output in `verify.log`; on
its timeout its whole tree is stopped (polite, then forced after `kill_grace`), and whatever it
left running, in its tree or not, is stopped and confirmed gone when it ends (T2), by the same
`stop_attempt` that ends every attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

from corral.core.runtime.base import AttemptRef, Runtime, RuntimeFailure
from corral.worktrees.verify import Verification, verification_environment

VERIFY_AGENT = "integration"
"""The marks' agent name of the verification (a reserved agent id: no agent is called so)."""


def _note(log_path: Path, text: str) -> None:
    with log_path.open("a") as log:
        log.write(text)


async def run_verification(
    runtime: Runtime,
    run_id: str,
    worktree: Path,
    command: Sequence[str],
    log_path: Path,
    timeout: float,  # noqa: ASYNC109 - a timeout here is an answer (failed), not an error
    grace: float,
) -> Verification:
    """Run `command` (no shell) in `worktree` within `timeout` seconds; passed means status 0."""
    if not command:
        raise ValueError("the verification command is empty; give the program and its arguments")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(_note, log_path, f"$ {' '.join(command)}  (in {worktree})\n")
    ref = AttemptRef(run_id=run_id, agent=VERIFY_AGENT, attempt=1)
    placement = runtime.place_command(ref, worktree, log_path, verification_environment())
    started = time.monotonic()
    try:
        execution = await runtime.start(placement, list(command))
    except RuntimeFailure as exc:
        await asyncio.to_thread(
            _note, log_path, f"corral: could not start the verification command: {exc}\n"
        )
        return Verification(False, None)
    try:
        ended = await execution.wait(timeout)
        if ended is None:
            await execution.terminate(grace)
            await asyncio.to_thread(
                _note,
                log_path,
                f"\ncorral: verification timed out after {timeout:g}s and was killed\n",
            )
            return Verification(False, None)
    finally:
        await runtime.stop_attempt(ref, execution, grace)  # leftovers, wherever they went
    elapsed = time.monotonic() - started
    if ended.how != "exited" or ended.code is None or ended.code < 0:
        await asyncio.to_thread(_note, log_path, f"\ncorral: verification ended: {ended}\n")
        return Verification(False, None)
    await asyncio.to_thread(
        _note, log_path, f"\ncorral: verification exited {ended.code} after {elapsed:.1f}s\n"
    )
    return Verification(ended.code == 0, ended.code)
