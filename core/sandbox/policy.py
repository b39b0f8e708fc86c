"""The plan's sandbox policy (`[agent.sandbox]` or `[defaults.sandbox]`): checked and explained.

The model keeps what the person wrote (`~` and all); `resolve` expands it against the home the
agent will have, `contradictions` names every policy that cannot mean what it says (with the
fix), `explain` is what `corral validate` prints: what is writable, read-only, hidden and
reachable (docs/reliability.md T6), and `summary` its short form, for the console's agent
detail and `corral status`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from corral.core.sandbox.paths import AttemptPaths

DEFAULT_HIDE = (
    "~/.ssh",
    "~/.gnupg",
    "~/.aws",
    "~/.azure",
    "~/.config/gcloud",
    "~/.config/gh",
    "~/.config/hub",
    "~/.kube",
    "~/.docker",
    "~/.netrc",
    "~/.git-credentials",
    "~/.config/git/credentials",
    "~/.npmrc",
    "~/.yarnrc",
    "~/.pypirc",
    "~/.cargo/credentials",
    "~/.cargo/credentials.toml",
    "~/.gem/credentials",
    "~/.m2/settings.xml",
    "~/.terraform.d",
    "~/.vault-token",
    "~/.password-store",
    "~/.local/share/keyrings",
    "~/.mozilla",
    "~/.config/google-chrome",
    "~/.config/chromium",
)
"""The usual stores of credentials and keys, always hidden (a plan's `hide` adds to these)."""

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def parse_destination(text: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) as (lower-case host, port); ValueError with the fix if not."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r} is not host:port; write e.g. 'api.example.com:443'")
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{text!r}: {host} is not an IPv6 address") from None
        return host[1:-1], int(port_text)
    if ":" in host or not (_HOSTNAME.match(host) or _is_ipv4(host)):
        raise ValueError(f"{text!r}: {host!r} is not a host name or address (no wildcards)")
    return host, int(port_text)


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


class SandboxPolicy(BaseModel):
    """What a sandboxed agent may reach beyond its worktree and its output directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    network: Literal["none", "allow"] = "none"
    allow: tuple[str, ...] = ()
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    hide: tuple[str, ...] = ()
    """Hidden besides `DEFAULT_HIDE`."""

    @field_validator("allow")
    @classmethod
    def _destinations(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            parse_destination(item)
        return value

    def destinations(self) -> frozenset[tuple[str, int]]:
        return frozenset(parse_destination(item) for item in self.allow)

    def resolve(self, home: Path) -> ResolvedPolicy:
        return ResolvedPolicy(
            network=self.network,
            allow=self.destinations(),
            read=tuple(_expand(p, home) for p in self.read),
            write=tuple(_expand(p, home) for p in self.write),
            hide=tuple(dict.fromkeys(_expand(p, home) for p in (*DEFAULT_HIDE, *self.hide))),
            explicit_hide=tuple(_expand(p, home) for p in self.hide),
        )


@dataclass(frozen=True)
class ResolvedPolicy:
    """A policy with `~` expanded: what the bubblewrap command line is built from."""

    network: Literal["none", "allow"]
    allow: frozenset[tuple[str, int]]
    read: tuple[Path, ...]
    write: tuple[Path, ...]
    hide: tuple[Path, ...]
    explicit_hide: tuple[Path, ...]


def _expand(text: str, home: Path) -> Path:
    if text == "~" or text.startswith("~/"):
        return Path(str(home) + text[1:])
    return Path(text)


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def contradictions(
    policy: SandboxPolicy, home: Path, paths: AttemptPaths | None = None
) -> list[str]:
    """Every way the policy contradicts itself or the boundary, each with its fix (empty: fine)."""
    problems: list[str] = []
    if policy.network == "none" and policy.allow:
        problems.append(
            'allow lists destinations but network = "none" reaches none; '
            'set network = "allow" or remove allow'
        )
    if policy.network == "allow" and not policy.allow:
        problems.append(
            'network = "allow" with an empty allow list reaches nothing; list '
            'host:port destinations or set network = "none"'
        )
    for field, raw in (("read", policy.read), ("write", policy.write), ("hide", policy.hide)):
        for text in raw:
            expanded = _expand(text, home)
            if not expanded.is_absolute():
                problems.append(f"{field}: {text!r} is not absolute; write /... or ~/...")
            elif ".." in expanded.parts:
                problems.append(f"{field}: {text!r} has '..'; write the path it means")
    resolved = policy.resolve(home)
    for path in resolved.write:
        real = Path(os.path.realpath(path))
        for hidden in resolved.hide:
            if _within(path, hidden) or _within(real, Path(os.path.realpath(hidden))):
                problems.append(
                    f"write: {path} is hidden ({hidden}); remove it from write, or, if the "
                    "agent really needs it, give it a path outside the secret stores"
                )
        if path in resolved.read:
            problems.append(f"{path} is in both read and write; keep it in one")
    for path in resolved.read:
        if path in resolved.explicit_hide:
            problems.append(f"{path} is in both read and hide; keep it in one")
    if paths is not None:
        for path in (*resolved.write, *resolved.read):
            if _within(paths.common_dir, path) or _within(path, paths.common_dir):
                problems.append(
                    f"{path} opens the repository's git directory ({paths.common_dir}), which "
                    "the sandbox keeps read-only and private per attempt; remove it"
                )
        for path in resolved.write:
            if _within(paths.home, path):
                problems.append(f"write: {path} holds the whole home; name the directories needed")
    return list(dict.fromkeys(problems))


def explain(policy: SandboxPolicy, paths: AttemptPaths) -> list[str]:
    """What the agent can write, read, not see and reach, one fact a line, for `corral validate`."""
    resolved = policy.resolve(paths.home)
    container = paths.image is not None
    lines = [
        f"writable: the worktree {paths.worktree}"
        + (f" (as {paths.worktree_inside})" if container else ""),
        f"writable: the output directory {paths.output_dir}"
        + (f" (as {paths.output_inside})" if container else ""),
    ]
    lines += [f"writable: {path}" for path in resolved.write]
    lines.append("writable: a private /tmp (empty at start, gone at the end)")
    lines.append(
        f"git: commits go to a private git directory ({paths.private_gitdir}); only the "
        "attempt's own branch is brought back; the repository's refs, config, hooks and info "
        "are read-only"
    )
    if container:
        lines.append(f"read-only: the image {paths.image} as /")
    else:
        lines.append("read-only: the rest of the host's files")
    lines += [f"read-only: {path}" for path in resolved.read]
    lines.append(
        f"hidden: corral's runs and other worktrees ({paths.run_root}); its own "
        f"control socket only, as {paths.socket_inside}"
    )
    lines.append("hidden: /run (sockets of agents, the desktop, docker)")
    if not container:
        lines += [f"hidden: {path}" for path in resolved.hide]
    lines.append("environment: only the plan's env and corral's variables")
    lines.append("processes: a new pid, ipc and uts namespace; nothing outlives the agent")
    if policy.network == "none":
        lines.append("network: none (a new network namespace with loopback only)")
    else:
        lines += [
            f"network: {host}:{port} through corral's proxy"
            for host, port in sorted(resolved.allow)
        ]
        lines.append("network: everything else refused, each refusal an event")
    return lines


def summary(policy: SandboxPolicy, image: str | None = None) -> list[str]:
    """The policy in a few short facts as the plan wrote it (`explain` is the long form, with
    the paths resolved): the image (a container's root), the network, the paths added to
    `read` and `write`, and what is hidden."""
    facts = [f"image: {image}"] if image is not None else []
    if policy.network == "none":
        facts.append("network: none")
    elif policy.allow:
        facts.append(f"network: only {', '.join(policy.allow)} (through corral's proxy)")
    else:
        facts.append("network: through corral's proxy, no destination allowed")
    if policy.read:
        facts.append(f"read: {', '.join(policy.read)}")
    if policy.write:
        facts.append(f"write: {', '.join(policy.write)}")
    if image is not None:
        facts.append("none of the host's files but these")
        return facts
    hidden = f"{len(DEFAULT_HIDE)} credential stores hidden"
    facts.append(hidden + (f", and {', '.join(policy.hide)}" if policy.hide else ""))
    return facts
