"""The shared repository's integrity (docs/reliability.md T3): what was recorded, what
changed behind corral's back, and who acknowledged it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from corral.core.log.event_types.base import EventBase


class IntegrityRecorded(EventBase):
    """What agents must not touch in the shared repository, as corral saw it.

    At run start: everything (`files` set). After an attempt ended: only `refs`, its branch,
    which its siblings must leave alone from then on."""

    type: Literal["integrity_recorded"] = "integrity_recorded"
    refs: dict[str, str] = Field(default_factory=dict)
    """Ref (or `HEAD`) -> what it held; added to what was recorded before."""
    files: dict[str, str] | None = None
    """Watched file of the shared git dir (`config`, `hooks/<name>`, `info/attributes`) ->
    its stamp (sha256 and mode); None: unchanged since the last record."""
    git_dir: str = ""
    """The shared git dir the names are relative to."""
    copies: str = ""
    """Where the run keeps the files as they were, to restore them from."""


RepoChangeKind = Literal["ref", "config", "hook", "attributes"]
TamperingSeen = Literal["attempt_end", "resume", "approve"]
"""When a change was found: as an attempt ended, when a resumed engine looked, before approval."""


class RepoChange(BaseModel):
    """One thing in the shared repository that changed although no agent may change it."""

    kind: RepoChangeKind
    name: str
    """The ref (`refs/heads/main`, `HEAD`) or the file, relative to the git dir."""
    old: str | None
    """What was recorded (commit, or file stamp); None: it did not exist."""
    new: str | None
    """What was found; None: it is gone."""
    restored: bool = False
    """Put back as recorded (files only: refs are reported, never moved back)."""
    kept: str | None = None
    """Where the changed file was kept, in the run dir, before it was restored."""
    detail: list[str] = Field(default_factory=list)
    """What changed inside a file (lines added `+` and removed `-`), made printable."""


class RepoTampered(EventBase):
    type: Literal["repo_tampered"] = "repo_tampered"
    live: list[str]
    """Every attempt (`agent#n`) live since the previous check: one of them made the change.
    Empty when none was (found before an approval, after the run)."""
    seen: TamperingSeen
    changes: list[RepoChange]
    problem: str = ""
    """What could not be checked or restored, and what to do about it."""


class TamperingAcknowledged(EventBase):
    type: Literal["tampering_acknowledged"] = "tampering_acknowledged"
    by: str
    through_seq: int
    """Every `repo_tampered` up to this seq was shown to `by`; later ones still block approve."""
