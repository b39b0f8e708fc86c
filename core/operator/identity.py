"""Who acts, and what they may do: read once by a front end when it starts, then passed as a
value to every action, so no screen or command reads the environment on its own.

Roles are core's, held here and checked by the operator API (actions.py, decisions.py) before
anything is sent: `viewer` watches, `operator` kills, retries, pauses, types, answers and breaks
locks, `reviewer` approves, rejects, suppresses and acknowledges tampering. A person at their own
terminal holds every role; `--read-only` and a viewer's SSH key hold `viewer` only."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Literal, get_args

from corral.core.operator.errors import RoleRefused
from corral.core.trust.identity import reviewer_identity

Role = Literal["viewer", "operator", "reviewer"]
ROLES: tuple[Role, ...] = get_args(Role)
EVERY_ROLE: frozenset[Role] = frozenset(ROLES)


def parse_roles(text: str) -> frozenset[Role]:
    """`viewer`, `operator,reviewer`, ...; ValueError naming the bad word and the choices."""
    words = [word.strip() for word in text.split(",")]
    roles: set[Role] = set()
    for word in words:
        if word not in ROLES:
            choices = ", ".join(ROLES)
            raise ValueError(
                f"{word!r} is not a role: say one or more of {choices}, comma-separated"
            )
        roles.add(word)
    return frozenset(roles)


def roles_text(roles: frozenset[Role]) -> str:
    """The roles in a fixed order, comma-separated (`viewer,reviewer`)."""
    return ",".join(role for role in ROLES if role in roles)


@dataclass(frozen=True, kw_only=True)
class Operator:
    """The person behind a front end.

    `user` is recorded with kills, retries and broken locks (the OS user, or the SSH key's
    name); `reviewer` with decisions: the user with the SSH key fingerprint or client address
    when reached over SSH, since an approval must say who approved."""

    user: str
    reviewer: str
    roles: frozenset[Role] = EVERY_ROLE
    """What this person may do; every role unless the front end was told otherwise."""
    who: str = ""
    """How a refusal names the person (`ssh key alice`); the user when empty."""
    granted_by: str = ""
    """Where the roles come from, named in a refusal so the person knows what to change."""

    @classmethod
    def current(cls, roles: frozenset[Role] = EVERY_ROLE, granted_by: str = "") -> Operator:
        """The person running this process."""
        return cls(
            user=getpass.getuser(), reviewer=reviewer_identity(), roles=roles, granted_by=granted_by
        )

    @classmethod
    def ssh_key(
        cls, name: str, fingerprint: str, roles: frozenset[Role], keys_file: str = ""
    ) -> Operator:
        """The holder of a key in corral's authorized keys file (`corral serve --ssh`)."""
        return cls(
            user=name,
            reviewer=f"{name} (ssh key {fingerprint})",
            roles=roles,
            who=f"ssh key {name}",
            granted_by=f"corral's authorized keys file, {keys_file}"
            if keys_file
            else "the keys file of the server that opened this console",
        )

    def viewer(self, granted_by: str) -> Operator:
        """The same person, watching only (`--read-only`)."""
        return Operator(
            user=self.user,
            reviewer=self.reviewer,
            roles=frozenset({"viewer"}),
            who=self.who,
            granted_by=granted_by,
        )

    def may(self, role: Role) -> bool:
        return role in self.roles

    @property
    def label(self) -> str:
        """How a front end shows who acts when it is not simply the local user with every
        role (`ssh key alice: viewer,reviewer`); '' otherwise."""
        if self.every_role and not self.who:
            return ""
        return f"{self.who or self.user}: {roles_text(self.roles)}"

    @property
    def every_role(self) -> bool:
        return self.roles >= EVERY_ROLE

    def require(self, role: Role, doing: str) -> None:
        """Return when this person holds `role`; RoleRefused naming who, what and where the
        roles are set otherwise (`approving needs the reviewer role`)."""
        if role in self.roles:
            return
        held = " and ".join(r for r in ROLES if r in self.roles) or "no role"
        article = "" if held == "no role" else ("an " if held[0] in "aeiou" else "a ")
        where = f" ({self.granted_by})" if self.granted_by else ""
        raise RoleRefused(
            f"{self.who or self.user} is {article}{held}: {doing} needs the {role} role{where}"
        )
