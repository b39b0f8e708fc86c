"""Trial merges with `git merge-tree --write-tree`: no worktree or index is touched.

One pair: the exit status decides (0 clean, 1 conflict, anything else an error; docs/reliability.md M1).
Many pairs: one `git merge-tree --stdin` process (4 ms a pair against 12 ms for a process each,
docs/performance.md); there each merge starts with its own status (1 clean, 0 conflict, negative: error) and
the process exits non-zero when a merge could not run at all. The merges it finished before that
keep their answer; the rest are asked one process each, so one bad pair cannot hide the others.

Conflict kinds come from the `-z` informational records (`<n> NUL <paths> <type> NUL <message>
NUL`), whose type strings git documents as stable; an add/add conflict is typed `CONFLICT
(contents)` and only its message says `add/add`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from corral.worktrees.git import run_git_result

ConflictKind = Literal["content", "add_add", "modify_delete", "rename", "binary", "other"]
"""The same names as `corral.core.log.events.ConflictKind`."""
PairStatus = Literal["clean", "conflict", "error"]

MERGE_TREE = ("merge-tree", "--write-tree", "-z", "--name-only", "--messages")

_PRIORITY: tuple[ConflictKind, ...] = (
    "modify_delete",
    "rename",
    "add_add",
    "binary",
    "content",
    "other",
)
"""When one path is in several conflicts, the first kind here names it (a binary file with
conflicting content is `binary`; an added-on-both-sides one `add_add`)."""


@dataclass(frozen=True)
class ConflictPath:
    path: str
    kind: ConflictKind


@dataclass(frozen=True)
class MergeOutcome:
    """One trial merge of `ours` and `theirs`."""

    ours: str
    theirs: str
    status: PairStatus
    tree: str | None = None
    """The merged tree (with conflict markers when conflicted); None on error."""
    files: tuple[ConflictPath, ...] = ()
    messages: tuple[str, ...] = ()
    """git's CONFLICT messages, for people."""
    error: str = ""

    @property
    def clean(self) -> bool:
        return self.status == "clean"


def classify(conflict_type: str, message: str) -> ConflictKind | None:
    """The kind of one informational record, or None when it is no conflict."""
    if not conflict_type.startswith("CONFLICT"):
        return None
    detail = conflict_type.removeprefix("CONFLICT").strip().strip("()")
    if detail == "contents":
        return "add_add" if message.startswith("CONFLICT (add/add)") else "content"
    if detail == "binary":
        return "binary"
    if detail == "modify/delete":
        return "modify_delete"
    if "rename" in detail or detail == "file location":
        return "rename"
    return "other"


def _files(conflicted: list[str], records: list[tuple[list[str], str, str]]) -> list[ConflictPath]:
    kinds: dict[str, set[ConflictKind]] = {path: set() for path in conflicted}
    for paths, conflict_type, message in records:
        kind = classify(conflict_type, message)
        if kind is None:
            continue
        for path in paths:
            kinds.setdefault(path, set()).add(kind)
    found = []
    for path in sorted(kinds):
        named = kinds[path] or {"other"}
        found.append(ConflictPath(path, next(kind for kind in _PRIORITY if kind in named)))
    return found


class _Tokens:
    def __init__(self, text: str) -> None:
        self._fields = text.split("\0")
        self._next = 0

    def more(self) -> bool:
        # split leaves one empty field after the final NUL
        return self._next < len(self._fields) - 1

    def take(self) -> str:
        if self._next >= len(self._fields):
            raise ValueError("merge-tree output ended early")
        value = self._fields[self._next]
        self._next += 1
        return value


Parsed = tuple[str, list[str], list[tuple[list[str], str, str]]]


def _parse_one(tokens: _Tokens) -> tuple[Parsed, bool]:
    """(tree, conflicted paths, informational records) and whether a `--stdin` end NUL closed it."""
    tree = tokens.take()
    conflicted: list[str] = []
    while (path := tokens.take()) != "":
        conflicted.append(path)
    records: list[tuple[list[str], str, str]] = []
    while tokens.more():
        count = tokens.take()
        if count == "":  # the NUL that ends one merge of a --stdin stream
            return (tree, conflicted, records), True
        paths = [tokens.take() for _ in range(int(count))]
        conflict_type = tokens.take()
        records.append((paths, conflict_type, tokens.take().rstrip("\n")))
    return (tree, conflicted, records), False


def _outcome(ours: str, theirs: str, clean: bool, parsed: Parsed) -> MergeOutcome:
    tree, conflicted, records = parsed
    messages = tuple(msg for _, kind, msg in records if kind.startswith("CONFLICT"))
    if clean:
        return MergeOutcome(ours, theirs, "clean", tree=tree)
    return MergeOutcome(
        ours,
        theirs,
        "conflict",
        tree=tree,
        files=tuple(_files(conflicted, records)),
        messages=messages,
    )


def merge_pair(repo: Path, ours: str, theirs: str, timeout: float | None = None) -> MergeOutcome:
    """One trial merge in its own process; the exit status decides."""
    result = run_git_result(repo, *MERGE_TREE, "--end-of-options", ours, theirs, timeout=timeout)
    if result.status not in (0, 1):
        error = result.stderr.strip() or f"git merge-tree exited {result.status}"
        return MergeOutcome(ours, theirs, "error", error=error)
    try:
        parsed, _ = _parse_one(_Tokens(result.stdout))
    except ValueError as exc:
        return MergeOutcome(ours, theirs, "error", error=f"unreadable merge-tree output: {exc}")
    return _outcome(ours, theirs, result.status == 0, parsed)


@dataclass
class BatchStats:
    """How the pairs of one `merge_pairs` call were answered."""

    batched: int = 0
    single: int = 0
    processes: int = 0
    notes: list[str] = field(default_factory=list)


def _valid_commit(name: str) -> bool:
    return (
        bool(name)
        and not any(ch.isspace() or ch == "\0" for ch in name)
        and not name.startswith("-")
    )


def merge_pairs(
    repo: Path,
    pairs: Sequence[tuple[str, str]],
    *,
    timeout: float | None = None,
    stats: BatchStats | None = None,
) -> list[MergeOutcome]:
    """Trial-merge every pair through one `merge-tree --stdin` process; results in input order."""
    stats = stats if stats is not None else BatchStats()
    results: list[MergeOutcome | None] = [None] * len(pairs)
    batch = [i for i, (a, b) in enumerate(pairs) if _valid_commit(a) and _valid_commit(b)]
    for i, (a, b) in enumerate(pairs):
        if results[i] is None and i not in batch:
            results[i] = MergeOutcome(a, b, "error", error=f"not a commit id: {a!r} / {b!r}")
    if batch:
        stats.processes += 1
        lines = "".join(f"{pairs[i][0]} {pairs[i][1]}\n" for i in batch)
        result = run_git_result(repo, *MERGE_TREE, "--stdin", input=lines, timeout=timeout)
        answered = _read_stream(result.stdout, [pairs[i] for i in batch])
        for i, outcome in zip(batch, answered, strict=False):
            results[i] = outcome
        stats.batched += len(answered)
        if result.status != 0:
            stats.notes.append(
                f"merge-tree --stdin stopped after {len(answered)} of {len(batch)} pairs "
                f"(exit {result.status}: {result.stderr.strip()}); asked the rest one by one"
            )
    for i, (a, b) in enumerate(pairs):
        if results[i] is None:
            stats.processes += 1
            stats.single += 1
            results[i] = merge_pair(repo, a, b, timeout=timeout)
    return [outcome for outcome in results if outcome is not None]


def _read_stream(text: str, pairs: Iterable[tuple[str, str]]) -> list[MergeOutcome]:
    """The merges a `--stdin` run finished, in order; a torn last one is left out."""
    tokens = _Tokens(text)
    done: list[MergeOutcome] = []
    for ours, theirs in pairs:
        if not tokens.more():
            break
        try:
            status = int(tokens.take())
            if status not in (0, 1):
                break  # git could not run this merge: the one-process retry gets its exit status
            parsed, closed = _parse_one(tokens)
        except ValueError:
            break
        if not closed:
            break  # torn by the process's death
        done.append(_outcome(ours, theirs, status == 1, parsed))
    return done
