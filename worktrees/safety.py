"""Options and environment that stop a repository's config from running programs (RELIABILITY S6).

An agent that can write to `.git/config` or `.git/info/attributes` (every worktree shares them)
could otherwise make the engine run anything through a hook, an fsmonitor, a pager, an editor, a
credential helper or a filter/merge driver. Every git command corral runs uses these settings.
The user's own global and system config stay trusted; only what the repository says is overridden.
This module starts no process: worktrees/git.py is the one place that runs git, with these.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
from pathlib import Path

from corral.worktrees.errors import UnsafeRepositoryConfig

STATIC_OPTIONS: tuple[tuple[str, str], ...] = (
    ("core.fsmonitor", "false"),
    ("core.pager", "cat"),
    ("core.sshCommand", "ssh"),
    ("core.askPass", ""),
    # An empty value empties the list of helpers configured so far, which is all of them.
    ("credential.helper", ""),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("log.showSignature", "false"),
    ("protocol.ext.allow", "never"),
    ("submodule.recurse", "false"),
    # Auto-gc could run `git worktree prune` under live agents (RELIABILITY M2).
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
)
"""`-c` settings besides core.hooksPath; each beats any config file because `-c` is read last."""

LOCATING_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
"""Set when corral runs from inside a git hook or alias; they would redirect `git -C PATH`."""

FIXED_ENVIRONMENT = {
    "GIT_TERMINAL_PROMPT": "0",
    # Empty, it still wins over core.askPass, and git then runs no askpass program at all.
    "GIT_ASKPASS": "",
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    # ":" is git's own spelling of "no editor": it never starts a process for it.
    "GIT_EDITOR": ":",
    "GIT_SEQUENCE_EDITOR": ":",
    # Reads such as `git status` must not take index.lock under an agent's feet.
    "GIT_OPTIONAL_LOCKS": "0",
    "LC_ALL": "C",
    "LANGUAGE": "C",
}

DRIVER_KEYS = {
    "filter": {"clean": "", "smudge": "", "process": "", "required": "false"},
    # An empty merge driver is a fatal error; `false` makes every such file a conflict to review.
    "merge": {"driver": "false"},
}
"""Per-driver settings that neutralise a driver the repository's own config defines."""

TRUSTED_DRIVER_PREFIXES = ("git-lfs ",)
"""`git lfs install --local` writes these into the repository; they run git-lfs, nothing else."""

_lock = threading.Lock()
_fallback_dir: Path | None = None


def _private_empty_dir(path: Path) -> bool:
    """True when `path` is a real directory we own, closed to group and others, and empty."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and stat.S_IMODE(info.st_mode) & 0o077 == 0  # created 0700; a strict umask may narrow it
        and not os.listdir(path)
    )


def nohooks_dir() -> Path:
    """An empty 0700 directory for `core.hooksPath`, shared by this user's corral processes.

    Checked on every call: a temp cleaner may delete it, and another user may have planted
    a look-alike. When the shared one is unusable, a private one for this process is used.
    """
    global _fallback_dir
    shared = Path(tempfile.gettempdir()) / f"corral-{os.getuid()}-nohooks"
    # mkdir never follows a symlink at its target; if it fails, the checks below decide.
    with contextlib.suppress(OSError):
        os.mkdir(shared, 0o700)
    if _private_empty_dir(shared):
        return shared
    with _lock:
        if _fallback_dir is None or not _private_empty_dir(_fallback_dir):
            _fallback_dir = Path(tempfile.mkdtemp(prefix=f"corral-{os.getuid()}-nohooks-"))
        return _fallback_dir


def _as_options(pairs: list[tuple[str, str]]) -> list[str]:
    options: list[str] = []
    for key, value in pairs:
        options += ["-c", f"{key}={value}"]
    return options


DRIVER_SCAN = (
    "config",
    "--show-scope",
    "-z",
    "--get-regexp",
    r"^((filter|merge)\..*\.|include\.path$|includeif\..*\.path$)",
)
"""The git command (run by `git.repository_driver_overrides`) that lists the drivers to parse."""


Stamp = tuple[tuple[str, int, int, int], ...]


def cached_driver_overrides(repo: Path) -> tuple[Stamp | None, list[tuple[str, str]] | None]:
    """`repo`'s config stamp, taken now, and the overrides found for it if it was scanned already.

    The stamp is taken before the scan and the scan's answer filed under it: a config changed
    after that has another stamp, so it is scanned again, never answered from the cache.
    """
    stamp = config_stamp(repo)
    cached = _driver_cache.get(stamp) if stamp is not None else None
    return stamp, (list(cached) if cached is not None else None)


def driver_overrides(
    repo: Path, stamp: Stamp | None, status: int, scan: str
) -> list[tuple[str, str]]:
    """Settings that disable the filter and merge drivers defined by `repo`'s own config.

    `scan` is what DRIVER_SCAN printed (exit `status`) after `stamp` was taken. Drivers from the
    user's global or system config are left alone. A driver whose name git could not parse back
    from `-c` is refused rather than silently left active.
    """
    if status not in (0, 1):  # 1: no such keys; other failures surface in the real command
        return []
    seen: set[tuple[str, str]] = set()
    includes = False
    fields = scan.split("\0")
    # -z with --show-scope prints: scope NUL key LF value NUL (or: scope NUL key NUL when valueless)
    index = 0
    while index + 1 < len(fields):
        scope, entry = fields[index], fields[index + 1]
        index += 2
        key, _, value = entry.partition("\n")
        if scope not in ("local", "worktree"):
            continue
        if key.startswith("include"):
            includes = True
            continue
        section, _, rest = key.partition(".")
        name, _, variable = rest.rpartition(".")
        if section not in DRIVER_KEYS or not name:
            continue
        if value.startswith(TRUSTED_DRIVER_PREFIXES) and variable in DRIVER_KEYS[section]:
            continue
        if "=" in name or "\n" in name:
            raise UnsafeRepositoryConfig(
                f"{repo}: the repository config defines a {section} driver named {name!r}, which "
                f"corral cannot switch off; remove the [{section} {name!r}] section from the "
                "repository's .git/config"
            )
        seen.add((section, name))
    overrides = [
        (f"{section}.{name}.{variable}", neutral)
        for section, name in sorted(seen)
        for variable, neutral in DRIVER_KEYS[section].items()
    ]
    if stamp is not None and not includes:  # an included file can change without a stamp change
        _driver_cache[stamp] = overrides
    return overrides


_driver_cache: dict[Stamp, list[tuple[str, str]]] = {}
"""Scan results by config stamp: every new worktree without its own config shares one entry."""


def config_stamp(repo: Path) -> Stamp | None:
    """Identity of the repository's own config files (config, config.worktree), or None.

    The scan above costs a git process; the engine runs git in every new workspace, so the
    answer is reused while these files are unchanged. None (no reuse) when `repo` is not the
    top of a repository or worktree, where finding the files would mean guessing.
    """
    dotgit = repo / ".git"
    try:
        if dotgit.is_dir():
            own = common = dotgit
        elif dotgit.is_file():
            own = (repo / dotgit.read_text().removeprefix("gitdir:").strip()).resolve()
            common = (own / (own / "commondir").read_text().strip()).resolve()
        else:
            return None
    except (OSError, ValueError):
        return None
    stamp = []
    for path in (common / "config", own / "config.worktree"):
        try:
            info = os.stat(path)
        except FileNotFoundError:
            # unnamed: a worktree without its own config reads exactly what the others read
            stamp.append(("", -1, -1, -1))
            continue
        except OSError:
            return None
        stamp.append((str(path), info.st_mtime_ns, info.st_size, info.st_ino))
    return tuple(stamp)


def static_options() -> list[str]:
    """The `-c` options that do not depend on a repository: hooks off and the STATIC_OPTIONS."""
    return _as_options([("core.hooksPath", str(nohooks_dir())), *STATIC_OPTIONS])


def safe_git_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The complete environment for a git process: `base` (default os.environ) made safe."""
    env = dict(os.environ if base is None else base)
    for name in LOCATING_VARIABLES:
        env.pop(name, None)
    env.update(FIXED_ENVIRONMENT)
    return env
