"""Load what a run needs only later while its agents work, so no step waits on an import.

The merge, the report and attempt-end commits pull in ~50 ms of modules (pydantic report and
SARIF models, the merge machinery), and a resume its recovery code. Importing them up front
delays the first agent by that much; importing them when first needed delays the end of the
run. Instead the engine starts without them and loads them on a background thread once its
agents are launched. A module being loaded there and asked for meanwhile is simply waited for
(Python's import lock), and a failure here is left for the real import to report.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Sequence

LATER_MODULES = (
    "corral.worktrees.integrate",
    "corral.core.report.finalize",
    "corral.core.engine.finish",
    "corral.core.runtime.verification",
    "corral.core.cli.headless",
)
"""What the engine imports inside functions, in the order it first needs them, then the
summary that `corral run --quiet` prints at the end."""


def preload(modules: Sequence[str] = LATER_MODULES) -> threading.Thread:
    """Import `modules` on a daemon thread (it never delays the interpreter's exit)."""

    def load() -> None:
        for name in modules:
            with contextlib.suppress(Exception):
                importlib.import_module(name)

    thread = threading.Thread(target=load, name="corral-preload", daemon=True)
    thread.start()
    return thread
