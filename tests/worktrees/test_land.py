"""Landing on a branch that people have checked out, on real repositories and real checkouts.

Each test makes a commit on a side branch, then lands it on `main` with the main worktree (and
sometimes a second worktree) on `main`, and looks at what `git status` and the files say after.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from corral.worktrees.land import (
    LandingRefused,
    apply_landing,
    approval_merge,
    land,
    prepare_landing,
    undo_landing,
)
from tests.conftest import git, make_repo

MAIN = "refs/heads/main"


def change_on_side(repo: Path) -> tuple[str, str]:
    """A commit on `side` that edits src/app.py and adds NEW.md; returns (old main, new)."""
    old = git(repo, "rev-parse", "main")
    git(repo, "switch", "-q", "-c", "side")
    (repo / "src" / "app.py").write_text("print('landed')\n")
    (repo / "NEW.md").write_text("new file\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "side work")
    new = git(repo, "rev-parse", "HEAD")
    git(repo, "switch", "-q", "main")
    return old, new


def status(path: Path) -> str:
    """`git status --porcelain` as printed (the `git` helper would strip its leading blank)."""
    out = subprocess.run(
        ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=all"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.removesuffix("\n")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def test_a_clean_checkout_ends_clean_on_the_landed_tree(repo: Path) -> None:
    old, new = change_on_side(repo)
    landing = land(repo, MAIN, old, new, "test: land")
    assert git(repo, "rev-parse", "HEAD") == new
    assert status(repo) == "", "nothing staged in reverse, nothing left over"
    assert (repo / "src" / "app.py").read_text() == "print('landed')\n"
    assert (repo / "NEW.md").read_text() == "new file\n"
    assert [p.resolve() for p in landing.checkouts] == [repo.resolve()]


def test_a_change_to_a_landing_path_refuses_and_lands_nothing(repo: Path) -> None:
    old, new = change_on_side(repo)
    (repo / "src" / "app.py").write_text("my unsaved work\n")
    with pytest.raises(LandingRefused, match=r"src/app\.py") as refused:
        land(repo, MAIN, old, new, "test: land")
    assert "commit or stash" in str(refused.value)
    assert "nothing was landed" in str(refused.value)
    assert git(repo, "rev-parse", "main") == old
    assert (repo / "src" / "app.py").read_text() == "my unsaved work\n"
    assert not (repo / "NEW.md").exists()
    assert status(repo) == " M src/app.py"


def test_a_staged_change_to_a_landing_path_refuses(repo: Path) -> None:
    old, new = change_on_side(repo)
    (repo / "src" / "app.py").write_text("staged work\n")
    git(repo, "add", "src/app.py")
    (repo / "src" / "app.py").write_text("print('hi')\n")  # the file itself matches old again
    with pytest.raises(LandingRefused, match=r"src/app\.py"):
        land(repo, MAIN, old, new, "test: land")
    assert git(repo, "rev-parse", "main") == old
    assert status(repo) == "MM src/app.py"


def test_an_untracked_file_where_the_landing_adds_one_refuses(repo: Path) -> None:
    old, new = change_on_side(repo)
    (repo / "NEW.md").write_text("mine, not committed\n")
    with pytest.raises(LandingRefused, match=r"NEW\.md"):
        land(repo, MAIN, old, new, "test: land")
    assert git(repo, "rev-parse", "main") == old
    assert (repo / "NEW.md").read_text() == "mine, not committed\n"


def test_a_dirty_unrelated_path_is_kept_and_the_landing_succeeds(repo: Path) -> None:
    old, new = change_on_side(repo)
    (repo / "README.md").write_text("# my edit in progress\n")
    (repo / "scratch.txt").write_text("untracked notes\n")
    land(repo, MAIN, old, new, "test: land")
    assert git(repo, "rev-parse", "main") == new
    assert status(repo) == " M README.md\n?? scratch.txt"
    assert (repo / "README.md").read_text() == "# my edit in progress\n"
    assert (repo / "src" / "app.py").read_text() == "print('landed')\n"


def test_a_touched_but_unchanged_file_is_not_mistaken_for_a_change(repo: Path) -> None:
    """Stale stat data (an editor re-saved the same bytes) must not refuse: git merge refreshes."""
    old, new = change_on_side(repo)
    app = repo / "src" / "app.py"
    stat = app.stat()
    app.write_text(app.read_text())
    os.utime(app, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    land(repo, MAIN, old, new, "test: land")
    assert status(repo) == ""


def test_every_worktree_with_the_base_checked_out_is_updated(repo: Path, tmp_path: Path) -> None:
    old, new = change_on_side(repo)
    git(repo, "switch", "-q", "--detach")
    second = tmp_path / "second"
    git(repo, "worktree", "add", "-q", str(second), "main")
    git(repo, "switch", "-q", "--ignore-other-worktrees", "main")  # main checked out twice
    other = tmp_path / "elsewhere"
    git(repo, "worktree", "add", "-q", "-b", "elsewhere", str(other), old)
    land(repo, MAIN, old, new, "test: land")
    for checkout in (repo, second):
        assert git(checkout, "rev-parse", "HEAD") == new
        assert status(checkout) == "", checkout
        assert (checkout / "NEW.md").exists()
    assert git(other, "rev-parse", "HEAD") == old, "a worktree on another branch is left alone"
    assert not (other / "NEW.md").exists()
    assert status(other) == ""


def test_a_dirty_second_worktree_refuses_for_all(repo: Path, tmp_path: Path) -> None:
    old, new = change_on_side(repo)
    git(repo, "switch", "-q", "--detach")
    second = tmp_path / "second"
    git(repo, "worktree", "add", "-q", str(second), "main")
    git(repo, "switch", "-q", "--ignore-other-worktrees", "main")
    (second / "src" / "app.py").write_text("edited in the second checkout\n")
    with pytest.raises(LandingRefused, match=str(second)):
        land(repo, MAIN, old, new, "test: land")
    assert git(repo, "rev-parse", "main") == old
    assert status(repo) == ""
    assert not (repo / "NEW.md").exists()


def test_an_edit_between_check_and_update_rolls_everything_back(repo: Path, tmp_path: Path) -> None:
    """The user saves a file after the check: the update refuses and what was done is undone."""
    old, new = change_on_side(repo)
    git(repo, "switch", "-q", "--detach")
    second = tmp_path / "second"
    git(repo, "worktree", "add", "-q", str(second), "main")
    git(repo, "switch", "-q", "--ignore-other-worktrees", "main")
    landing = prepare_landing(repo, MAIN, old, new)
    assert len(landing.checkouts) == 2
    late = landing.checkouts[-1] / "src" / "app.py"
    late.write_text("saved after the check\n")
    with pytest.raises(LandingRefused, match="nothing was landed"):
        apply_landing(landing, "test: land")
    assert git(repo, "rev-parse", "main") == old
    assert late.read_text() == "saved after the check\n", "a local change is never overwritten"
    first = landing.checkouts[0]
    assert status(first) == "", "the checkout already updated was put back"
    assert not (first / "NEW.md").exists()
    assert (first / "src" / "app.py").read_text() == "print('hi')\n"


def test_a_base_that_moved_is_refused_before_any_checkout_changes(repo: Path) -> None:
    old, new = change_on_side(repo)
    landing = prepare_landing(repo, MAIN, old, new)
    (repo / "README.md").write_text("someone committed\n")
    git(repo, "commit", "-qam", "moved")
    moved = git(repo, "rev-parse", "main")
    with pytest.raises(LandingRefused, match="moved"):
        apply_landing(landing, "test: land")
    assert git(repo, "rev-parse", "main") == moved
    assert status(repo) == ""
    assert not (repo / "NEW.md").exists()


def test_a_rebase_of_the_base_in_progress_refuses(repo: Path) -> None:
    old, new = change_on_side(repo)
    (repo / "README.md").write_text("local commit\n")
    git(repo, "commit", "-qam", "local")
    local = git(repo, "rev-parse", "main")
    git(repo, "switch", "-q", "-c", "upstream", old)
    (repo / "README.md").write_text("upstream commit\n")
    git(repo, "commit", "-qam", "upstream")
    git(repo, "switch", "-q", "main")
    rebase = subprocess.run(
        ["git", "-C", str(repo), "rebase", "upstream"], capture_output=True, check=False
    )
    assert rebase.returncode != 0, "the rebase stops on its conflict"
    with pytest.raises(LandingRefused, match="rebase"):
        land(repo, MAIN, local, new, "test: land")
    assert git(repo, "rev-parse", "main") == local


def test_a_merge_in_progress_in_a_checkout_refuses(repo: Path) -> None:
    old, new = change_on_side(repo)
    git(repo, "switch", "-q", "-c", "other", old)
    (repo / "README.md").write_text("other work\n")
    git(repo, "commit", "-qam", "other")
    git(repo, "switch", "-q", "main")
    git(repo, "merge", "-q", "--no-commit", "--no-ff", "other")
    with pytest.raises(LandingRefused, match="a merge is under way"):
        land(repo, MAIN, old, new, "test: land")
    assert git(repo, "rev-parse", "main") == old
    assert status(repo) == "M  README.md", "the user's merge is left as it was"


def test_a_landing_cut_off_after_the_ref_moved_can_be_finished(repo: Path, tmp_path: Path) -> None:
    old, new = change_on_side(repo)
    git(repo, "switch", "-q", "--detach")
    second = tmp_path / "second"
    git(repo, "worktree", "add", "-q", str(second), "main")
    git(repo, "switch", "-q", "--ignore-other-worktrees", "main")
    git(repo, "update-ref", MAIN, new, old)  # moved; the first checkout is now staged in reverse
    git(second, "read-tree", "-m", "-u", old, new)  # the second was already updated
    assert status(repo) == "D  NEW.md\nM  src/app.py"
    with pytest.raises(LandingRefused, match="no longer at"):
        land(repo, MAIN, old, new, "test: land")
    landing = land(repo, MAIN, old, new, "test: finish", resume=True)
    assert len(landing.checkouts) == 2
    for checkout in (repo, second):
        assert status(checkout) == "", checkout
        assert (checkout / "NEW.md").exists()
    undo_landing(landing, "test: undo")
    assert git(repo, "rev-parse", "main") == old
    assert status(repo) == status(second) == ""


def test_finishing_a_cut_off_landing_over_local_work_takes_it_back(repo: Path) -> None:
    old, new = change_on_side(repo)
    git(repo, "update-ref", MAIN, new, old)
    (repo / "src" / "app.py").write_text("edited while it was half landed\n")
    with pytest.raises(LandingRefused, match=r"src/app\.py.*nothing was landed"):
        land(repo, MAIN, old, new, "test: finish", resume=True)
    assert git(repo, "rev-parse", "main") == old
    assert status(repo) == " M src/app.py", "only the user's own edit is left"
    assert (repo / "src" / "app.py").read_text() == "edited while it was half landed\n"


def test_undo_puts_ref_and_checkouts_back(repo: Path) -> None:
    old, new = change_on_side(repo)
    (repo / "README.md").write_text("# unrelated edit\n")
    landing = land(repo, MAIN, old, new, "test: land")
    undo_landing(landing, "test: undo")
    assert git(repo, "rev-parse", "main") == old
    assert status(repo) == " M README.md"
    assert not (repo / "NEW.md").exists()
    assert (repo / "src" / "app.py").read_text() == "print('hi')\n"


def test_the_base_not_checked_out_anywhere_just_moves(repo: Path) -> None:
    old, new = change_on_side(repo)
    git(repo, "switch", "-q", "side")
    landing = land(repo, MAIN, old, new, "test: land")
    assert landing.checkouts == ()
    assert git(repo, "rev-parse", "main") == new
    assert status(repo) == ""


def test_approval_merge_keeps_the_tree_and_both_histories(repo: Path) -> None:
    old, new = change_on_side(repo)
    message = "corral: land run r1\n\nApproved-by: bob\n"
    merge = approval_merge(repo, old, new, message)
    assert git(repo, "rev-parse", f"{merge}^{{tree}}") == git(repo, "rev-parse", f"{new}^{{tree}}")
    assert git(repo, "rev-parse", f"{merge}^1", f"{merge}^2").split() == [old, new]
    trailer = git(repo, "log", "-1", "--format=%(trailers:key=Approved-by,valueonly)", merge)
    assert trailer == "bob"
    assert git(repo, "rev-parse", "main") == old, "making the commit moves no ref"
