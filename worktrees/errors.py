"""Errors of the workspace layer; each message names the problem and the fix."""

from __future__ import annotations

from pathlib import Path


class GitError(Exception):
    """A git operation corral needs could not be done."""


class NotARepository(GitError):
    """The path is not inside a git repository (or does not exist)."""

    def __init__(self, path: Path, detail: str = "is not a git repository") -> None:
        self.path = path
        super().__init__(f"{path} {detail}; run corral inside one or set run.repo in the plan")


class UnknownRevision(GitError):
    """A branch, tag or commit the user named does not exist."""

    def __init__(self, path: Path, rev: str) -> None:
        self.path = path
        self.rev = rev
        super().__init__(
            f"base {rev!r} does not exist in {path}; name a branch, tag or commit that does "
            "(git branch -a lists them)"
        )


class GitCommandFailed(GitError):
    """A git command exited non-zero; keeps status and stderr for callers that branch on them."""

    def __init__(self, path: Path, args: tuple[str, ...], status: int, stderr: str) -> None:
        self.path = path
        self.command = args
        self.status = status
        self.stderr = stderr
        shown = " ".join(args)
        detail = stderr.strip() or "no message"
        super().__init__(f"`git {shown}` failed in {path} (exit {status}): {detail}")


class UnsafeRepositoryConfig(GitError):
    """The repository's own config names a program-running driver corral cannot switch off."""


class WorkspaceError(GitError):
    """A workspace cannot be created, reused or removed as asked."""


class WorkspaceDirty(WorkspaceError):
    """The workspace holds uncommitted work; removing it would lose that work."""

    def __init__(self, path: Path, changes: list[str]) -> None:
        self.path = path
        self.changes = changes
        more = f" and {len(changes) - 5} more" if len(changes) > 5 else ""
        shown = ", ".join(changes[:5]) + more
        super().__init__(
            f"worktree {path} has uncommitted changes ({len(changes)}: {shown}); commit or discard "
            "them, or remove it with force"
        )


class UnsafePath(WorkspaceError):
    """A path given to corral would escape the repository or the workspace."""


class LandingRefused(GitError):
    """A branch cannot be moved to the approved commit as asked; nothing was changed."""


class LandingIncomplete(GitError):
    """A landing failed midway and could not be fully undone; the message says what is left."""
