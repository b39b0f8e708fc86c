"""Whether an engine holds a run: the run's engine lock, which the engine holds while it lives.

Here, under the engine, so that what asks (the operator checks of core/trust/authority.py, the
command line, the console) need not import the engine's runner (no import cycle).
"""

from __future__ import annotations

import filelock

from corral.core.runs.rundir import RunDir


def engine_is_live(rundir: RunDir) -> bool:
    """True while some engine holds the run's lock."""
    lock = filelock.FileLock(rundir.engine_lock, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        return True
    lock.release()
    return False
