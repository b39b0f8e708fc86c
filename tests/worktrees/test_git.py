"""Running git safely, and the read-only queries: real repositories, no mocks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from corral.worktrees import safety
from corral.worktrees.errors import UnsafeRepositoryConfig
from corral.worktrees.git import (
    GitCommandFailed,
    NotARepository,
    UnknownRevision,
    current_branch,
    git_common_dir,
    list_worktrees,
    open_repo,
    repo_toplevel,
    resolve_commit,
    run_git,
    run_git_result,
    safe_git_env,
    safe_git_options,
)
from tests.conftest import git, make_repo


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def test_not_a_repository_names_the_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(NotARepository) as caught:
        git_common_dir(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path} is not a git repository; run corral inside one or set run.repo in the plan"
    )
    with pytest.raises(NotARepository, match="does not exist"):
        repo_toplevel(tmp_path / "missing")
    with pytest.raises(NotARepository), open_repo(tmp_path):
        pass


def test_unknown_revision_names_the_base_and_the_fix(repo: Path) -> None:
    with pytest.raises(UnknownRevision) as caught:
        resolve_commit(repo, "foo")
    assert str(caught.value) == (
        f"base 'foo' does not exist in {repo}; name a branch, tag or commit that does "
        "(git branch -a lists them)"
    )
    with pytest.raises(UnknownRevision):
        resolve_commit(repo, "--all")  # an option is never taken for a revision
    tree = git(repo, "rev-parse", "HEAD^{tree}")
    with pytest.raises(UnknownRevision):
        resolve_commit(repo, tree)  # a tree is not a commit


def test_queries_answer_from_a_linked_worktree(repo: Path, tmp_path: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    assert resolve_commit(repo, "main") == head
    assert resolve_commit(repo, head[:8]) == head
    assert current_branch(repo) == "main"
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "--detach", str(linked))
    assert current_branch(linked) is None
    assert git_common_dir(linked) == repo / ".git"
    assert git_common_dir(repo / "src") == repo / ".git"
    assert repo_toplevel(linked / "src") == linked
    with open_repo(repo / "src") as opened:
        assert Path(str(opened.working_tree_dir)) == repo


def test_worktree_listing_parses_locks_with_newlines(repo: Path, tmp_path: Path) -> None:
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "--lock", "--reason", "two\nlines", "-b", "x", str(linked))
    main, other = list_worktrees(repo)
    assert main.path == repo
    assert main.branch == "main"
    assert not main.locked
    assert other.path == linked
    assert other.branch == "x"
    assert other.lock_reason == "two\nlines"


def test_failures_keep_status_and_stderr(repo: Path) -> None:
    with pytest.raises(GitCommandFailed) as caught:
        run_git(repo, "switch", "no-such-branch")
    assert caught.value.status != 0
    assert "no-such-branch" in caught.value.stderr
    result = run_git_result(repo, "rev-parse", "--verify", "--quiet", "nope")
    assert result.status == 1


def test_inherited_git_dir_does_not_redirect_commands(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_repo(tmp_path / "other", branch="elsewhere")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    assert current_branch(repo) == "main"
    assert "GIT_DIR" not in safe_git_env()
    assert safe_git_env()["GIT_TERMINAL_PROMPT"] == "0"


def test_options_disable_hooks_fsmonitor_and_pager() -> None:
    options = safe_git_options()
    pairs = dict(value.split("=", 1) for value in options[1::2])
    assert options[0::2] == ["-c"] * len(pairs)
    assert pairs["core.fsmonitor"] == "false"
    assert pairs["core.pager"] == "cat"
    assert pairs["gc.auto"] == "0"
    hooks = Path(pairs["core.hooksPath"])
    info = os.lstat(hooks)
    assert stat.S_ISDIR(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == os.getuid()
    assert os.listdir(hooks) == []


def test_a_planted_hooks_dir_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(safety, "_fallback_dir", None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / f"corral-{os.getuid()}-nohooks").symlink_to(elsewhere)
    chosen = safety.nohooks_dir()
    assert chosen.parent == tmp_path
    assert not chosen.is_symlink()
    assert stat.S_IMODE(os.lstat(chosen).st_mode) == 0o700
    write_script(chosen / "post-checkout", "true")  # someone fills our dir: it is replaced
    assert safety.nohooks_dir() != chosen


def test_repository_filter_is_switched_off(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "filtered"
    script = write_script(tmp_path / "filter.sh", f"touch {marker}; cat")
    git(repo, "config", "filter.evil.smudge", str(script))
    git(repo, "config", "filter.evil.clean", str(script))
    git(repo, "config", "filter.evil.required", "true")
    (repo / ".git" / "info" / "attributes").write_text("* filter=evil\n")
    (repo / "README.md").unlink()
    run_git(repo, "checkout", "--", "README.md")
    (repo / "README.md").write_text("changed\n")
    run_git(repo, "add", "README.md")
    assert not marker.exists()
    git(repo, "checkout", "--", "src/app.py")  # plain git runs it: the trap is real
    git(repo, "status")
    assert marker.exists()


def test_repository_merge_driver_is_switched_off(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "merged"
    script = write_script(tmp_path / "driver.sh", f"touch {marker}; exit 0")
    git(repo, "config", "merge.evil.driver", str(script))
    (repo / ".git" / "info" / "attributes").write_text("* merge=evil\n")
    for branch, line in (("left", "L"), ("right", "R")):
        git(repo, "switch", "-q", "-c", branch, "main")
        (repo / "README.md").write_text(f"# sample {line}\n")
        git(repo, "commit", "-q", "-am", branch)
    result = run_git_result(repo, "merge-tree", "--write-tree", "left", "right")
    assert result.status == 1  # the neutralised driver reports a conflict for review
    assert not marker.exists()
    assert any(o.startswith("merge.evil.driver=") for o in safe_git_options(repo))
    git(repo, "merge-tree", "--write-tree", "left", "right")
    assert marker.exists()


def test_lfs_filters_the_repository_installed_stay(repo: Path) -> None:
    git(repo, "config", "filter.lfs.smudge", "git-lfs smudge -- %f")
    git(repo, "config", "filter.lfs.process", "git-lfs filter-process")
    assert not any("filter.lfs" in option for option in safe_git_options(repo))


def test_driver_names_that_cannot_be_overridden_are_refused(repo: Path) -> None:
    config = repo / ".git" / "config"
    config.write_text(config.read_text() + '[filter "a=b"]\n\tsmudge = evil\n')
    with pytest.raises(UnsafeRepositoryConfig, match=r"remove the \[filter 'a=b'\] section"):
        run_git(repo, "status")


def test_the_package_runs_without_engine_console_or_gitpython() -> None:
    code = (
        "import sys, corral.worktrees.workspace, corral.worktrees.gc\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'git')"
        " or m.startswith('corral.core') or m.startswith('corral.tui')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_a_driver_added_later_is_still_switched_off(repo: Path, tmp_path: Path) -> None:
    """The driver scan is reused only while the config files are unchanged, and never with includes."""
    run_git(repo, "status")  # scanned and remembered: no drivers yet
    marker = tmp_path / "late"
    script = write_script(tmp_path / "late.sh", f"touch {marker}; cat")
    git(repo, "config", "filter.late.smudge", str(script))
    (repo / ".git" / "info" / "attributes").write_text("* filter=late\n")
    (repo / "README.md").unlink()
    run_git(repo, "checkout", "--", "README.md")
    assert not marker.exists()
    included = tmp_path / "included.cfg"
    included.write_text("")
    git(repo, "config", "include.path", str(included))
    run_git(repo, "status")
    included.write_text(
        f'[filter "sneaky"]\n\tsmudge = {script}\n'
    )  # the repo config itself is untouched
    (repo / ".git" / "info" / "attributes").write_text("* filter=sneaky\n")
    (repo / "README.md").unlink()
    run_git(repo, "checkout", "--", "README.md")
    assert not marker.exists()
