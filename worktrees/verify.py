"""The plan's verification command (the project's tests) on the integration result: its result
and its environment. It runs through the run's runtime (core/engine/verification.py), with the
kill guarantees of an agent."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from corral.worktrees.safety import LOCATING_VARIABLES


class Verification(NamedTuple):
    passed: bool
    exit_code: int | None
    """None when it was killed (timed out, or died of a signal)."""


def verification_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """corral's environment without the variables that would point git elsewhere."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if k not in LOCATING_VARIABLES}
