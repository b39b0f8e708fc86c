"""The one root of corral's errors, and the exit status each kind means.

Every error that `core/` raises on purpose is a `CorralError`, so the command line catches one
type, prints `corral: <message>` and exits with the error's `exit_code`
(core/cli/main.py `main`). tests/core/test_errors.py fails if a new error root appears outside
this tree.

Exit statuses of `corral` (unchanged since before this module; core/engine/runner.py uses the
same numbers for a run's outcome):

- 0: done; for `corral run`, the run passed.
- 1 `EXIT_FAILED`: the run failed, or the command was refused or could not be carried out
  (engine busy or unreachable, a corrupted log, a refused review, an operator action asked
  from inside an agent). `CorralError` itself.
- 2 `EXIT_INVALID`: the input is wrong (usage, an invalid plan, no such run, not in a
  repository, an unreadable environment record). `InputError`.
- 3 `EXIT_ENGINE_FAULT`: the engine could not go on (the run directory or its log cannot be
  written). `EngineFault`.
- 75/76/127: `corral lock run` (core/agent/lock_command.py); 130: interrupted (Ctrl-C);
  141: standard output closed by its reader (core/entry.py).

Standard library only and importing nothing: the agent side (core/agent/) imports this module
and nothing else of corral, so `corral heartbeat` pays one small file for it.
"""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_ENGINE_FAULT = 3


class CorralError(Exception):
    """An error corral raises on purpose; its message says what happened and what to do."""

    exit_code: int = EXIT_FAILED


class InputError(CorralError):
    """What the user gave cannot be used: a plan, a run's name, a flag, the current directory."""

    exit_code = EXIT_INVALID


class EngineFault(CorralError):
    """The engine cannot go on safely (its run directory or log cannot be written)."""

    exit_code = EXIT_ENGINE_FAULT
