"""`[[host]]`: the remote hosts the `ssh` runtime runs agents on (core/remote/, issue 16).

A host is named in the plan or in the user's `~/.config/corral/hosts.toml` (the same tables; the
plan's wins by name). Host keys are always checked: `known_hosts` must hold the host's key, and a
missing or different key is an error naming the `ssh-keyscan` line that fixes it.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from corral.core.plan.durations import positive_duration

HOST_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
HostName = Annotated[str, StringConstraints(pattern=HOST_NAME_PATTERN)]
_ADDRESS = re.compile(
    r"^(?P<user>[A-Za-z_][A-Za-z0-9_.-]{0,31})@(?P<host>[A-Za-z0-9_.:\[\]-]+?)(?::(?P<port>\d{1,5}))?$"
)
DEFAULT_WORKDIR = "~/.cache/corral"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


class HostSpec(BaseModel):
    """One host of the pool: where it is, how corral logs in, how many agents it takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: HostName
    """The pool's name for it, shown beside each agent that runs there."""
    address: str
    """`user@host:port` (port 22 when left out)."""
    identity: str
    """The private key file corral logs in with (no agent, no password)."""
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    """The known_hosts file holding the host's key; checking is always on."""
    slots: int = Field(default=4, ge=1, le=64)
    """Agents it runs at once (without `python3` on the host each holds an SSH channel: then
    keep it under sshd's MaxSessions, 10 by default)."""
    workdir: str = DEFAULT_WORKDIR
    """Where corral keeps its files on the host: the cached repositories, attempts, its tools."""
    lost_after: Annotated[float, BeforeValidator(positive_duration)] = 30.0
    """How long a dropped connection may stay down before the host's attempts are `lost`."""

    @field_validator("address")
    @classmethod
    def _address_form(cls, value: str) -> str:
        match = _ADDRESS.match(value)
        port = match.group("port") if match else None
        if match is None or (port is not None and not 0 < int(port) < 65536):
            raise ValueError(
                f'{value!r} is not an address; write it as "user@host:port", e.g. "corral@build1.example:22"'
            )
        return value

    @field_validator("workdir")
    @classmethod
    def _workdir_form(cls, value: str) -> str:
        if not (value.startswith(("/", "~/")) or value == "~") or "'" in value:
            raise ValueError(f"{value!r} must be an absolute path or start with ~/ (no quotes)")
        return value.rstrip("/") or "/"

    @property
    def user(self) -> str:
        return self._parts()[0]

    @property
    def hostname(self) -> str:
        return self._parts()[1]

    @property
    def port(self) -> int:
        return self._parts()[2]

    def _parts(self) -> tuple[str, str, int]:
        match = _ADDRESS.match(self.address)
        assert match is not None  # validated
        host = match.group("host").strip("[]")
        return match.group("user"), host, int(match.group("port") or 22)
