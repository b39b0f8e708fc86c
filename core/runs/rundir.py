"""Where a run keeps its files: `<git-common-dir>/corral/runs/<run-id>/`.

Inside the git dir, so nothing is ever committed and every worktree sees the same runs. This
module imports only the standard library: thin agent-side commands import it.

None of `corral/`, `corral/runs/` and a run's own directory may be a symbolic link (L8): a
planted link would redirect what the engine records and what every command reads, so a run
behind one is refused (UnsafeRunDir) wherever it would have been used, old or new.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from corral.core.errors import InputError

SOCKET_PATH_LIMIT = 100
"""sun_path holds 108 bytes; deeper run dirs get their socket in a private /tmp directory."""


class RunNotFound(InputError):
    """No run matches what the user named."""


class NotInRepository(InputError):
    """The command needs a repository and none was found."""


class UnsafeRunDir(RunNotFound):
    """A run's directory, or one above it up to the git dir, is a symbolic link: corral will not
    use it. (A RunNotFound, so that each command refuses it as it refuses an unknown run.)"""


def refuse_link(path: Path, what: str) -> None:
    """Raise UnsafeRunDir if `path` is a symbolic link (a missing path is fine)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeRunDir(
            f"{path} ({what}) is a symbolic link; corral does not follow links for its run "
            "directories, since a planted link could redirect what it records and reads. "
            "Remove the link (put the real directory in its place to keep that run) and try again"
        )


def checked_runs_root(common_dir: Path) -> Path:
    """`runs_root(common_dir)`, refused if it or `corral/` above it is a symbolic link."""
    refuse_link(common_dir / "corral", "corral's directory in the git dir")
    root = runs_root(common_dir)
    refuse_link(root, "the directory of corral's runs")
    return root


def git_common_dir(start: Path) -> Path:
    """The shared `.git` directory of the repository containing `start` (cheap: one git call).

    Asked through worktrees/git.py, the one runner of git (imported here, when needed, so the
    thin agent-side commands that import this module do not load it).
    """
    from corral.worktrees.git import GitError, NotARepository
    from corral.worktrees.git import git_common_dir as common_dir_of

    try:
        return common_dir_of(start)
    except NotARepository:
        raise NotInRepository(
            f"{start} is not inside a git repository; run corral there or pass --repo PATH"
        ) from None
    except GitError as exc:  # git missing or too old: its message names the fix
        raise NotInRepository(str(exc)) from None


def runs_root(common_dir: Path) -> Path:
    return common_dir / "corral" / "runs"


def new_run_id() -> str:
    """Sortable by start time, unique without coordination."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) 0700; refuse a symlink or a directory someone else owns."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise PermissionError(f"{path} is not a plain directory; remove it and try again")
    if info.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to another user; corral will not use it")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


@dataclass(frozen=True)
class RunDir:
    """The files of one run."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def plan(self) -> Path:
        return self.path / "plan.toml"

    @property
    def presets(self) -> Path:
        """The preset agents as the run started them, expanded (core/presets/frozen.py)."""
        return self.path / "presets.json"

    @property
    def environment(self) -> Path:
        """The agents' environment as the run started, secrets by name (core/runs/environment.py)."""
        return self.path / "environment.json"

    @property
    def engine_lock(self) -> Path:
        return self.path / "engine.lock"

    @property
    def engine_log(self) -> Path:
        return self.path / "engine.log"

    @property
    def socket(self) -> Path:
        direct = self.path / "control.sock"
        if len(os.fsencode(direct)) <= SOCKET_PATH_LIMIT:
            return direct
        digest = hashlib.sha256(os.fsencode(self.path)).hexdigest()[:24]
        return Path(tempfile.gettempdir()) / f"corral-{os.getuid()}" / f"{digest}.sock"

    def attempt_dir(self, agent: str, attempt: int) -> Path:
        return self.path / "agents" / agent / str(attempt)

    def output_log(self, agent: str, attempt: int) -> Path:
        return self.attempt_dir(agent, attempt) / "output.log"

    def output_dir(self, agent: str, attempt: int) -> Path:
        return self.attempt_dir(agent, attempt) / "out"

    def check(self) -> RunDir:
        """This run, refused if its directory or one above it is a symbolic link."""
        checked_runs_root(self.path.parent.parent.parent)
        refuse_link(self.path, f"the directory of run {self.run_id}")
        return self

    def create(self) -> None:
        self.check()
        ensure_private_dir(self.path)
        ensure_private_dir(self.socket.parent)


def _entries(common_dir: Path) -> tuple[list[RunDir], list[RunDir]]:
    """The runs of the repository, oldest first, and the entries that are symbolic links."""
    root = checked_runs_root(common_dir)
    if not root.is_dir():
        return [], []
    runs: list[RunDir] = []
    links: list[RunDir] = []
    for entry in root.iterdir():
        if entry.is_symlink():
            links.append(RunDir(entry))
        elif (entry / "events.jsonl").is_file():
            runs.append(RunDir(entry))
    return sorted(runs, key=lambda run: run.run_id), links


def list_runs(common_dir: Path) -> list[RunDir]:
    """Runs of the repository, oldest first; a symbolic link among them is never followed.

    Raises UnsafeRunDir if the directory of the runs (or `corral/`) is a link."""
    return _entries(common_dir)[0]


def find_run(common_dir: Path, name: str | None) -> RunDir:
    """The run named by id or unique id prefix; the latest run when `name` is None.

    Raises UnsafeRunDir when the run that would be chosen (the named one, one the prefix matches,
    or one newer than the latest real run) is a symbolic link."""
    runs, links = _entries(common_dir)
    if name == "latest":
        name = None
    latest = runs[-1].run_id if runs else ""
    for link in links:
        named = name is not None and (
            link.run_id == name
            or (link.run_id.startswith(name) and all(run.run_id != name for run in runs))
        )
        if named or (name is None and link.run_id > latest):
            link.check()
    if not runs:
        raise RunNotFound(
            f"no corral runs in {common_dir.parent}; start one with `corral run PLAN`"
        )
    if name is None:
        return runs[-1]
    matches = [run for run in runs if run.run_id == name] or [
        run for run in runs if run.run_id.startswith(name)
    ]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(run.run_id for run in runs[-5:])
    if not matches:
        raise RunNotFound(f"no run {name!r}; recent runs: {known} (`corral runs` lists all)")
    raise RunNotFound(f"{name!r} matches {len(matches)} runs; give more of the id")
