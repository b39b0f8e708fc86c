"""What reading the log can fail with: corruption (E4) and a path that is not a plain file.

Their own module so that the reader and the format check (log_format.py) both raise them
without importing each other; import them from `corral.core.log`.
"""

from __future__ import annotations

from pathlib import Path

from corral.core.errors import CorralError

_VERIFY_HINT = (
    "`corral verify RUN` shows the first bad line; restore events.jsonl from a copy, or cut it "
    "before that line (losing what follows) to resume the run"
)


class LogCorrupted(CorralError):
    """A complete line does not parse, skips or repeats a seq, or breaks the hash chain (E4).

    `seq` is the first sequence number that cannot be trusted: the missing one for a lost line,
    the edited one when the next line's `prev` exposes an edit. `detected_at` is the seq of the
    line whose check failed (equal to `seq` except for edits).
    """

    def __init__(self, seq: int, reason: str, detected_at: int | None = None) -> None:
        super().__init__(seq, reason)
        self.seq = seq
        self.reason = reason
        self.detected_at = seq if detected_at is None else detected_at
        self.path: Path | None = None

    def __str__(self) -> str:
        name = self.path.name if self.path is not None else "events.jsonl"
        return f"{name} is corrupted at seq {self.seq}: {self.reason}; {_VERIFY_HINT}"


class LogPathError(CorralError):
    """The log path is not a plain file we may use: a symbolic link, a directory, a device."""
