"""Registering many worktrees at once: git must see exactly what `git worktree add` would leave."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from corral.core.runtime.workspaces import WorkspaceFactory
from corral.worktrees import batch, workspace
from corral.worktrees.git import list_worktrees, run_git_result
from corral.worktrees.workspace import (
    Workspace,
    default_root,
    populate_workspace,
    register_workspaces,
    remove_workspace,
    unlock_workspace,
)
from tests.conftest import git, make_repo
from tests.worktrees.checks import assert_all_present


def no_careful_path(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Fail if `git worktree add` is used; return the git commands the batch runs."""

    def refuse(*args: object) -> None:
        raise AssertionError(f"the careful path ran for {args[2]}")

    monkeypatch.setattr(workspace, "_register", refuse)
    commands: list[tuple[str, ...]] = []
    real = run_git_result

    def record(path: Path, *args: str, **kwargs: Any) -> Any:
        commands.append(args)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(batch, "run_git_result", record)
    return commands


def register(repo: Path, run_id: str, pairs: list[tuple[str, int]]) -> list[Workspace]:
    commit = git(repo, "rev-parse", "HEAD")
    made = []
    for registration in register_workspaces(repo, default_root(repo), run_id, commit, pairs):
        assert registration.workspace is not None, registration.error
        populate_workspace(registration.workspace)
        made.append(registration.workspace)
    return made


def test_twenty_attempts_take_one_branch_transaction(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = no_careful_path(monkeypatch)
    made = register(repo, "run1", [(f"a{i}", 1) for i in range(20)])
    assert [args[0] for args in commands] == ["config", "update-ref"]
    assert_all_present(repo, made, git(repo, "rev-parse", "HEAD"))
    entry = list_worktrees(repo)[1]
    assert entry.lock_reason == "corral run run1 agent a0 attempt 1"
    git(repo, "worktree", "prune")  # git finds nothing to prune in what the batch wrote
    assert len(list_worktrees(repo)) == 21
    reflog = git(repo, "reflog", "show", "--format=%gs", "refs/heads/corral/run1/a0/1")
    assert reflog == f"branch: Created from {made[0].commit}"


def test_what_git_manages_afterwards(repo: Path) -> None:
    (ws,) = register(repo, "run1", [("coder", 1)])
    (ws.path / "new.txt").write_text("work\n")
    git(ws.path, "add", "new.txt")
    git(ws.path, "commit", "-q", "-m", "work")
    assert git(repo, "log", "-1", "--format=%s", ws.branch) == "work"
    unlock_workspace(ws.path)
    git(repo, "worktree", "move", str(ws.path), str(ws.path.with_name("moved")))
    moved = ws.path.with_name("moved")
    assert git(moved, "status", "--porcelain") == ""
    remove_workspace(repo, moved, force=False)
    assert len(list_worktrees(repo)) == 1


def test_same_agent_ids_in_two_runs_get_distinct_metadata(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_careful_path(monkeypatch)
    first = register(repo, "run1", [("coder", 1)])
    second = register(repo, "run2", [("coder", 1)])
    admins = sorted(p.name for p in (repo / ".git" / "worktrees").iterdir())
    assert admins == ["coder-1", "coder-11"]  # numbered the way git numbers them
    for ws in first + second:
        assert git(ws.path, "symbolic-ref", "HEAD") == f"refs/heads/{ws.branch}"
        assert git(ws.path, "status", "--porcelain") == ""


def test_debris_of_one_attempt_does_not_hold_up_the_others(repo: Path) -> None:
    commit = git(repo, "rev-parse", "HEAD")
    git(repo, "branch", "corral/run1/a1/1", commit)  # a crash after creating the branch
    root = default_root(repo)
    stray = root / "run1" / "a2-1"
    stray.mkdir(parents=True)
    (stray / ".git").write_text("gitdir: /nowhere\n")  # a crash after the first file
    made = register(repo, "run1", [(f"a{i}", 1) for i in range(4)])
    assert_all_present(repo, made, commit)


def test_a_bad_attempt_fails_alone(repo: Path) -> None:
    commit = git(repo, "rev-parse", "HEAD")
    pairs = [("good", 1), ("../bad", 1), ("fine", 2)]
    results = register_workspaces(repo, default_root(repo), "run1", commit, pairs)
    assert [r.workspace is not None for r in results] == [True, False, True]
    assert "cannot name a branch" in str(results[1].error)


def test_sparse_checkout_goes_through_git_worktree_add(tmp_path: Path) -> None:
    """`worktree add` copies the sparse patterns; the batch must not silently drop them."""
    repo = make_repo(tmp_path / "repo", {"src/app.py": "app\n", "docs/guide.md": "guide\n"})
    git(repo, "config", "extensions.worktreeConfig", "true")
    git(repo, "sparse-checkout", "set", "src")
    (ws,) = register(repo, "run1", [("coder", 1)])
    assert (ws.path / "src" / "app.py").is_file()
    assert not (ws.path / "docs").exists()


def test_concurrent_requests_share_registrations(repo: Path) -> None:
    """Thirteen requests at once: two batches (BATCH_LIMIT is 8), and the bad one fails alone."""
    commit = git(repo, "rev-parse", "HEAD")

    async def main() -> tuple[list[Workspace | BaseException], int]:
        factory = WorkspaceFactory(repo, default_root(repo), "run1", commit, slots=2)
        agents = [f"a{i}" for i in range(12)] + ["../bad"]
        made = await asyncio.gather(
            *(factory.create(agent, 1) for agent in agents), return_exceptions=True
        )
        factory.close()
        return made, factory.batches

    made, batches = asyncio.run(main())
    assert batches == 2
    assert "cannot name a branch" in str(made[-1])
    good = [ws for ws in made if isinstance(ws, Workspace)]
    assert len(good) == 12
    assert_all_present(repo, good, commit)


def test_a_record_left_for_the_same_path_is_never_doubled(repo: Path) -> None:
    """The directory and the branch went, git's record of the worktree stayed."""
    (ws,) = register(repo, "run1", [("coder", 1)])
    shutil.rmtree(ws.path)
    git(repo, "update-ref", "-d", f"refs/heads/{ws.branch}")
    (again,) = register(repo, "run1", [("coder", 1)])
    records = [e for e in list_worktrees(repo)[1:] if e.path == again.path]
    assert len(records) == 1
    assert records[0].branch == again.branch
    assert git(again.path, "status", "--porcelain") == ""


# --- The fast path only where it is known to match `git worktree add` ----------------------


def _repo_in_format(path: Path, settings: dict[str, str], object_format: str = "sha1") -> Path:
    """A real repository with one commit, created in `object_format` and with `settings` set."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main", f"--object-format={object_format}")
    for key, value in settings.items():
        git(path, "config", key, value)
    (path / "README.md").write_text("# sample\n")
    (path / "src").mkdir()
    (path / "src" / "app.py").write_text("print('hi')\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def _admin_files(common_dir: Path, worktree: Path) -> dict[str, tuple[int, bytes]]:
    """(mode, bytes) of every file git keeps for `worktree`: its record under
    `worktrees/<id>/`, its `.git` file, and its branch's ref and reflog."""
    (admin,) = [
        d
        for d in (common_dir / "worktrees").iterdir()
        if (d / "gitdir").read_text().strip() == f"{worktree.resolve()}/.git"
    ]
    files = {f"admin/{p.relative_to(admin)}": p for p in sorted(admin.rglob("*")) if p.is_file()}
    files["worktree/.git"] = worktree / ".git"
    branch = (admin / "HEAD").read_text().removeprefix("ref: ").strip()
    files["ref"] = common_dir / branch
    if (common_dir / "logs" / branch).exists():
        files["reflog"] = common_dir / "logs" / branch
    return {name: (p.stat().st_mode, p.read_bytes()) for name, p in files.items()}


def _normalised(
    files: dict[str, tuple[int, bytes]], worktree: Path, admin_id: str, branch: str
) -> dict[str, tuple[int, bytes]]:
    """Replace what must differ between two worktrees (path, record id, branch, reason, the
    reflog's time) by placeholders; everything else must be the same bytes."""
    out = {}
    for name, (mode, data) in files.items():
        data = data.replace(str(worktree.resolve()).encode(), b"<path>")
        data = data.replace(f"/worktrees/{admin_id}".encode(), b"/worktrees/<id>")
        data = data.replace(branch.encode(), b"<branch>")
        if name == "reflog":  # "<old> <new> <who> <epoch> <zone>\t<message>"
            who, tab, message = data.partition(b"\t")
            data = b" ".join(who.split(b" ")[:-2]) + b" <time>" + tab + message
        out[name] = (mode, data)
    return out


GOLDEN_FORMATS = {
    "default": ({}, "sha1"),
    "no reflogs": ({"core.logAllRefUpdates": "false"}, "sha1"),
    "format 1, sha256": ({}, "sha256"),
    "precious objects": (
        {"core.repositoryFormatVersion": "1", "extensions.preciousObjects": "true"},
        "sha1",
    ),
    "settings off": (
        {
            "core.repositoryFormatVersion": "1",
            "extensions.worktreeConfig": "false",
            "core.sparseCheckout": "false",
            "worktree.useRelativePaths": "false",
        },
        "sha1",
    ),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_FORMATS))
def test_the_batch_writes_what_git_worktree_add_writes(tmp_path: Path, name: str) -> None:
    """Byte for byte, in every repository format the fast path is allowed in: a worktree
    registered by the batch and one by `git worktree add --no-checkout --lock -b`."""
    settings, object_format = GOLDEN_FORMATS[name]
    repo = _repo_in_format(tmp_path / "repo", settings, object_format)
    common_dir = repo / ".git"
    commit = git(repo, "rev-parse", "HEAD")
    reason = "corral run run1 agent a attempt 1"
    fast, careful = tmp_path / "wt" / "fast", tmp_path / "wt" / "careful"
    fast.parent.mkdir()
    assert batch.register_batch(
        repo, common_dir, [batch.NewWorktree(fast, "corral/run1/fast/1", reason)], commit
    ) == [None]
    add = ("worktree", "add", "--no-checkout", "--lock", "--reason", reason)
    result = run_git_result(repo, *add, "-b", "corral/run1/careful/1", str(careful), commit)
    assert result.status == 0, result.stderr
    ours = _normalised(_admin_files(common_dir, fast), fast, "fast", "corral/run1/fast/1")
    theirs = _normalised(
        _admin_files(common_dir, careful), careful, "careful", "corral/run1/careful/1"
    )
    assert sorted(ours) == sorted(theirs)  # the same files, no more and no fewer
    for file in theirs:
        assert ours[file] == theirs[file], file


@pytest.mark.parametrize(
    "settings",
    [
        {"core.repositoryFormatVersion": "1", "extensions.worktreeConfig": "true"},
        {"core.repositoryFormatVersion": "1", "extensions.noop": "true"},
        {"worktree.useRelativePaths": "true"},
        {"core.sparseCheckout": "true"},
    ],
    ids=["worktree config", "an extension not on the list", "relative paths", "sparse"],
)
def test_other_formats_go_through_git_worktree_add_and_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: dict[str, str]
) -> None:
    repo = _repo_in_format(tmp_path / "repo", settings)
    careful: list[Path] = []
    real = workspace._register

    def count(repo_path: Path, common_dir: Path, path: Path, *rest: Any) -> None:
        careful.append(path)
        real(repo_path, common_dir, path, *rest)

    monkeypatch.setattr(workspace, "_register", count)
    made = register(repo, "run1", [("a", 1), ("b", 1)])
    assert sorted(careful) == sorted(ws.path for ws in made)
    assert_all_present(repo, made, git(repo, "rev-parse", "HEAD"))


def test_a_repository_git_cannot_read_changes_nothing(tmp_path: Path) -> None:
    """A format newer than this git (reftable refs here): the batch refuses before any ref."""
    repo = _repo_in_format(tmp_path / "repo", {})
    git(repo, "config", "core.repositoryFormatVersion", "1")
    git(repo, "config", "extensions.refStorage", "reftable")
    commit = (repo / ".git" / "refs" / "heads" / "main").read_text().strip()
    item = batch.NewWorktree(tmp_path / "wt", "corral/run1/a/1", "reason")
    with pytest.raises(batch.FastPathUnavailable):
        batch.register_batch(repo, repo / ".git", [item], commit)
    assert not (repo / ".git" / "refs" / "heads" / "corral").exists()
    assert not (repo / ".git" / "worktrees").exists()


@pytest.mark.parametrize(
    ("entries", "refusal"),
    [
        ([], None),
        ([("core.repositoryformatversion", "1"), ("extensions.objectformat", "sha256")], None),
        ([("extensions.refstorage", "files")], None),
        ([("extensions.refstorage", "reftable")], "extensions.refstorage is reftable"),
        ([("extensions.relativeworktrees", "true")], "not a known extension"),
        ([("extensions.objectformat", "sha512")], "extensions.objectformat is sha512"),
        ([("extensions.worktreeconfig", None)], "extensions.worktreeconfig is None"),
        ([("core.repositoryformatversion", "2")], "core.repositoryformatversion is 2"),
        ([("worktree.userelativepaths", None)], "worktree.userelativepaths is None"),
        ([("worktree.userelativepaths", "yes")], "worktree.userelativepaths is yes"),
        ([("core.sparsecheckout", "true"), ("core.sparsecheckout", "false")], None),  # last wins
    ],
)
def test_the_allowlist(entries: list[tuple[str, str | None]], refusal: str | None) -> None:
    found = batch.fast_path_refusal(entries)
    assert found == refusal if refusal is None else refusal in (found or "")
