"""Who acts: read once by a front end when it starts, then passed as a value to every action,
so no screen or command reads the environment on its own."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from corral.core.trust.identity import reviewer_identity


@dataclass(frozen=True)
class Operator:
    """The person behind a front end.

    `user` is recorded with kills, retries and broken locks (the OS user); `reviewer` with
    decisions: the user with the SSH key fingerprint or client address when reached over SSH,
    since an approval must say who approved."""

    user: str
    reviewer: str

    @classmethod
    def current(cls) -> Operator:
        """The person running this process."""
        return cls(user=getpass.getuser(), reviewer=reviewer_identity())
