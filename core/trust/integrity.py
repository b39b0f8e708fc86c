"""What agents must not touch in the shared repository: recorded at run start, checked after
each attempt and before an approval, restored where that is safe (docs/reliability.md T3).

Watched: every ref outside corral's own `refs/heads/corral/` namespace, and `HEAD`; the branch
of each ended attempt of this run (its siblings must leave it alone); and the files of the shared
git dir that make git run programs or rewrite content: `config`, `config.worktree`, everything
under `hooks/`, `info/attributes`.

Invariants:
- The baseline is in the log (`integrity_recorded`), so a resumed engine compares with what the
  run started from. The copies it restores from live in the run dir (`integrity/`) and are used
  only while their stamp still matches the logged one.
- Files are read as plain files (lstat, no link followed), never through git: a planted config
  can make every git command fail. Refs are read with the safe runner, after the files are back.
- Config, hooks and attributes are put back as recorded; the changed version is kept first, in
  `tampering/<n>/` of the run dir. Refs are reported with their old and new value and never moved
  back: a moved branch may hold a person's own commit made meanwhile.
- A change is blamed on every attempt live since the previous check (started, running or ending
  in that window); before an approval none is live, and the change is reported as found after
  the run. The engine's own branch moves (an attempt's leftovers, the merge) are in its namespace.
- Other corral runs' branches are theirs: their engines check them.

How a change reads to a person is core/trust/tampering_text.py (its names re-exported here).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import stat
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path

from corral.core.log import events as ev
from corral.core.log.state import (
    ACTIVE_STATES,
    IntegrityBaseline,
    RunState,
    apply,
)
from corral.core.runs.rundir import RunDir, ensure_private_dir
from corral.core.trust.tampering_text import change_detail, change_kind
from corral.core.trust.tampering_text import describe_change as describe_change
from corral.core.trust.tampering_text import describe_tampering as describe_tampering
from corral.core.trust.tampering_text import describe_when as describe_when
from corral.core.trust.tampering_text import printable as printable
from corral.worktrees.refs import repository_refs

WATCHED_FILES = ("config", "config.worktree", "info/attributes")
HOOKS = "hooks"
CORRAL_BRANCHES = "refs/heads/corral/"
BASELINE_DIR = "integrity"
KEPT_DIR = "tampering"

EmitMany = Callable[[Sequence[ev.EventBase]], Awaitable[None]]
Append = Callable[[ev.EventBase], Awaitable[ev.Event]]


# -- stamps and listings -------------------------------------------------------------------------


def stamp(path: Path) -> str | None:
    """`<sha256> <mode>` of a regular file, `symlink <target>` of a link, else its type; None
    when nothing is there. Links are never followed."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if stat.S_ISLNK(info.st_mode):
        return f"symlink {os.readlink(path)}"
    if stat.S_ISDIR(info.st_mode):
        return "directory"
    if not stat.S_ISREG(info.st_mode):
        return "special file"
    digest = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    with os.fdopen(fd, "rb") as file:
        for block in iter(lambda: file.read(1 << 16), b""):
            digest.update(block)
    return f"{digest.hexdigest()} {stat.S_IMODE(info.st_mode):o}"


def _walk_hooks(directory: Path, prefix: str, found: dict[str, str]) -> None:
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError as exc:
        found[prefix] = f"unreadable ({exc.strerror})"
        return
    for entry in entries:
        name = f"{prefix}/{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            _walk_hooks(Path(entry.path), name, found)
        else:
            found[name] = stamp(Path(entry.path)) or "gone"


def watched_files(git_dir: Path) -> dict[str, str]:
    """Stamp of every watched file that exists, by its name relative to the git dir."""
    found: dict[str, str] = {}
    for name in WATCHED_FILES:
        if (found_stamp := stamp(git_dir / name)) is not None:
            found[name] = found_stamp
    hooks = stamp(git_dir / HOOKS)
    if hooks == "directory":
        _walk_hooks(git_dir / HOOKS, HOOKS, found)
    elif hooks is not None:
        found[HOOKS] = hooks  # a link or a file where the hooks directory belongs
    return found


def read_refs(repo: Path, git_dir: Path, own: Iterable[str] = ()) -> dict[str, str]:
    """The refs outside corral's namespace, the `own` ones inside it, and `HEAD`."""
    return repository_refs(repo, git_dir, skip=CORRAL_BRANCHES, also=own)


def record(repo: Path, git_dir: Path, rundir: RunDir) -> ev.IntegrityRecorded:
    """The baseline at run start: the watched files copied into the run dir, and the refs."""
    copies = ensure_private_dir(rundir.path / BASELINE_DIR)
    files: dict[str, str] = {}
    for name, found in watched_files(git_dir).items():
        copy = copies / name
        try:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(git_dir / name, copy, follow_symlinks=False)
        except OSError:
            files[name] = found  # no copy: a change to it is reported, not restored
            continue
        # the copy's own stamp: a file that changed while it was copied is recorded as copied
        files[name] = stamp(copy) or found
    return ev.IntegrityRecorded(
        refs=read_refs(repo, git_dir),
        files=files,
        git_dir=str(git_dir),
        copies=str(copies),
    )


# -- the check -----------------------------------------------------------------------------------


def _kept_dir(rundir: RunDir) -> Path:
    root = ensure_private_dir(rundir.path / KEPT_DIR)
    number = 1
    while True:
        try:
            (root / str(number)).mkdir(mode=0o700)
        except FileExistsError:
            number += 1
            continue
        return root / str(number)


def _keep(target: Path, kept: Path) -> None:
    """Keep the changed version: a copy of a file or link; a directory is moved away whole."""
    kept.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        shutil.move(target, kept)
    else:
        shutil.copy2(target, kept, follow_symlinks=False)


def _put_back(target: Path, copy: Path | None) -> None:
    """Make `target` what was recorded: the copy (atomically), or nothing when there was none."""
    if copy is None:
        if os.path.lexists(target):
            os.unlink(target)
        return
    parent = target.parent
    if os.path.islink(parent) or (os.path.lexists(parent) and not parent.is_dir()):
        raise OSError(f"{parent} is not a directory")
    parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.corral-restore")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)
    shutil.copy2(copy, temp, follow_symlinks=False)
    os.replace(temp, target)


def _restore_file(
    git_dir: Path, copies: Path, kept_dir: Path, name: str, old: str | None, new: str | None
) -> tuple[ev.RepoChange, str]:
    """Put one watched file back; the change, and a problem ('' when restored)."""
    target, copy = git_dir / name, copies / name
    detail = change_detail(name, copy if old else None, target if new else None, new)
    kept: Path | None = None
    problem = ""
    if old is not None and stamp(copy) != old:
        problem = (
            f"{name} was not restored: the copy corral made at run start ({copy}) is missing "
            "or changed; compare it by hand"
        )
    else:
        try:
            if new is not None:
                kept = kept_dir / name
                _keep(target, kept)
            _put_back(target, copy if old is not None else None)
        except OSError as exc:
            problem = f"{name} could not be restored ({exc}); restore it by hand from {copy}"
    change = ev.RepoChange(
        kind=change_kind(name),
        name=name,
        old=old,
        new=new,
        restored=not problem,
        kept=str(kept) if kept is not None else None,
        detail=detail,
    )
    return change, problem


def check(
    repo: Path,
    rundir: RunDir,
    state: RunState,
    live: list[str],
    seen: ev.TamperingSeen,
    protect: Sequence[str] = (),
) -> tuple[ev.RepoTampered | None, dict[str, str]]:
    """Compare the repository with the baseline in `state`, restoring the watched files.

    Returns the event to log (None: nothing changed) and the tips of the `protect` refs (the
    branches of attempts that just ended). Before an approval (`seen="approve"`) the run's own
    branches are not compared: the merge has used them, and what lands is the integration commit
    the log names. Never raises: a check that cannot run is reported as such, so it blocks
    approve as a change would."""
    if state.integrity is None:
        return None, {}
    try:
        return _check(repo, rundir, state.integrity, live, seen, protect)
    except Exception as exc:
        problem = f"corral could not check the repository: {exc!r}"
        return ev.RepoTampered(live=live, seen=seen, changes=[], problem=problem), {}


def _check(
    repo: Path,
    rundir: RunDir,
    baseline: IntegrityBaseline,
    live: list[str],
    seen: ev.TamperingSeen,
    protect: Sequence[str],
) -> tuple[ev.RepoTampered | None, dict[str, str]]:
    git_dir, copies = Path(baseline.git_dir), Path(baseline.copies)
    changes: list[ev.RepoChange] = []
    problems: list[str] = []
    current = watched_files(git_dir)
    kept_dir: Path | None = None
    for name in sorted(set(baseline.files) | set(current)):  # `hooks` before `hooks/...`
        old, new = baseline.files.get(name), current.get(name)
        if old == new:
            continue
        kept_dir = kept_dir or _kept_dir(rundir)
        change, problem = _restore_file(git_dir, copies, kept_dir, name, old, new)
        changes.append(change)
        if problem:
            problems.append(problem)
    expected = {
        name: sha
        for name, sha in baseline.refs.items()
        if seen != "approve" or not name.startswith(CORRAL_BRANCHES)
    }
    own = [name for name in expected if name.startswith(CORRAL_BRANCHES)]
    refs = read_refs(repo, git_dir, [*own, *protect])
    found = {name: sha for name, sha in refs.items() if name not in protect or name in expected}
    for name in sorted(set(expected) | set(found)):
        if expected.get(name) != found.get(name):
            old, new = expected.get(name), found.get(name)
            changes.append(ev.RepoChange(kind="ref", name=name, old=old, new=new))
    tips = {name: refs[name] for name in protect if name in refs}
    if not changes and not problems:
        return None, tips
    event = ev.RepoTampered(live=live, seen=seen, changes=changes, problem="; ".join(problems))
    return event, tips


# -- the engine's side ---------------------------------------------------------------------------


def attempt_name(agent: str, attempt: int) -> str:
    return f"{agent}#{attempt}"


def _active(state: RunState) -> set[str]:
    return {
        attempt_name(agent.id, agent.current.number)
        for agent in state.agents.values()
        if agent.state in ACTIVE_STATES and agent.current is not None
    }


class IntegrityWatch:
    """Which attempts were live since the last check; one check at a time.

    `observe` is an engine listener: an attempt counts as live from its `agent_starting` until
    the check made after it ended. A resumed engine starts with the attempts the log shows
    active: they were live while the dead engine could not look.

    Ends that queue up while a check runs share the next one (as a group commit does): a check
    that starts after an attempt's processes are gone covers that attempt, so 200 agents that
    end together cost a few checks, not 200 in a row."""

    def __init__(self, repo: Path, rundir: RunDir, emit_many: EmitMany, state: RunState) -> None:
        self.repo = repo
        self.rundir = rundir
        self.emit_many = emit_many
        self.live: set[str] = _active(state)
        self.ended: dict[str, str | None] = {}
        """Attempts that ended and wait for a check, with their branch."""
        self.lock = asyncio.Lock()

    def observe(self, event: ev.Event) -> None:
        if isinstance(event, ev.AgentStarting):
            self.live.add(attempt_name(event.agent, event.attempt))

    async def attempt_ended(self, state: RunState, agent: str, attempt: int) -> None:
        """Check once the attempt's processes are gone; then its siblings must leave its branch.

        Returns when a check that began after this call has been logged."""
        if state.integrity is None:
            return  # a run started before corral recorded a baseline
        name = attempt_name(agent, attempt)
        self.ended[name] = next(
            (a.branch for a in state.agents[agent].attempts if a.number == attempt and a.branch),
            None,
        )
        async with self.lock:
            if name in self.ended:  # else a check that began after the end covered it
                await self._check(state, "attempt_end")

    async def resumed(self, state: RunState) -> None:
        """After a resume, once what the dead engine left running is stopped."""
        if state.integrity is not None:
            async with self.lock:
                await self._check(state, "resume")

    async def _check(self, state: RunState, seen: ev.TamperingSeen) -> None:
        ended, self.ended = self.ended, {}
        live = sorted(self.live)
        protect = [f"refs/heads/{branch}" for branch in ended.values() if branch]
        found, tips = await asyncio.to_thread(
            check, self.repo, self.rundir, state, live, seen, protect
        )
        events: list[ev.EventBase] = [found] if found is not None else []
        if tips:
            events.append(ev.IntegrityRecorded(refs=tips))
        await self.emit_many(events)
        active = _active(state)
        self.live = {name for name in self.live if name in active and name not in ended}


# -- the review's side ---------------------------------------------------------------------------


async def recheck_before_approve(append: Append, state: RunState, rundir: RunDir) -> str | None:
    """Check once more (no attempt is live now) and log what changed; why approve must wait for
    a person's acknowledgement, or None."""
    if state.integrity is not None:
        found, _ = await asyncio.to_thread(check, Path(state.repo), rundir, state, [], "approve")
        if found is not None:
            apply(state, await append(found))
    pending = state.unacknowledged_tampering()
    if not pending:
        return None
    run = state.run_id
    return (
        f"the shared repository was tampered with ({describe_tampering(pending[-1])}"
        + (f"; {len(pending)} reports in all" if len(pending) > 1 else "")
        + f"); nothing was landed. Read it with `corral review show {run}`, then acknowledge it "
        f"with `corral review acknowledge {run}` (t in the console) and approve again"
    )


# -- words ---------------------------------------------------------------------------------------
