"""The pool of a run: the plan's `[[host]]` tables and the user's `~/.config/corral/hosts.toml`.

The user's file holds the same `[[host]]` tables, for hosts every plan may use; a plan's table
of the same name wins. `CORRAL_HOSTS_FILE` names another file (tests; several pools).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from corral.core.plan.hosts import HostSpec
from corral.core.plan.problems import PlanError, PlanProblem, describe_validation_error

HOSTS_FILE_VARIABLE = "CORRAL_HOSTS_FILE"


class _HostsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    hosts: list[HostSpec] = Field(default_factory=list, alias="host")


def user_hosts_file() -> Path:
    named = os.environ.get(HOSTS_FILE_VARIABLE)
    if named:
        return Path(named)
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "corral" / "hosts.toml"


def load_user_hosts(path: Path | None = None) -> list[HostSpec]:
    """The user's hosts (none when the file does not exist); PlanError naming field and fix."""
    path = path or user_hosts_file()
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PlanError(
            source, [PlanProblem(where=source, message=f"cannot be read ({exc}); fix or remove it")]
        ) from None
    try:
        return _HostsFile.model_validate(data).hosts
    except ValidationError as exc:
        raise PlanError(source, describe_validation_error(exc, data)) from None


def pool(plan_hosts: list[HostSpec], path: Path | None = None) -> list[HostSpec]:
    """The run's hosts: the user's, each replaced by the plan's table of the same name."""
    by_name = {host.name: host for host in load_user_hosts(path)}
    by_name.update({host.name: host for host in plan_hosts})
    return list(by_name.values())
