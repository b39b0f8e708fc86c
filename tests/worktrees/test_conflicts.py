"""The conflict matrix on real worktrees: kinds, agents, files, and only changed pairs re-checked."""

from __future__ import annotations

from pathlib import Path

from corral.worktrees.conflicts import BASE, ConflictMatrix, pair_key
from corral.worktrees.mergetree import ConflictPath, classify, merge_pair, merge_pairs
from corral.worktrees.snapshot import snapshot_commit
from tests.conftest import git
from tests.worktrees.merge_helpers import agent, base_repo, commit_all, edit_line


def test_same_lines_uncommitted_conflict_names_both_agents_and_the_file(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    a, b, c = agent(repo, "alice"), agent(repo, "bob"), agent(repo, "carol")
    edit_line(a.path / "src/app.py", 5, "alice was here")
    edit_line(b.path / "src/app.py", 5, "bob was here")
    (c.path / "docs/guide.md").write_text("carol rewrote the guide\n")  # touches nothing else
    matrix = ConflictMatrix(repo, a.commit)

    diff = matrix.update({ws.path.name: snapshot_commit(ws.path) for ws in (a, b, c)})

    assert [(p.key, p.agents) for p in diff.predicted] == [("alice-1+bob-1", ("alice-1", "bob-1"))]
    assert diff.predicted[0].files == (ConflictPath("src/app.py", "content"),)
    assert "Merge conflict in src/app.py" in diff.predicted[0].messages[0]
    assert diff.cleared == []
    assert diff.errors == {}
    assert diff.checked == 3
    assert diff.processes == 1


def test_kinds_add_add_modify_delete_rename_binary(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    a, b = agent(repo, "a"), agent(repo, "b")
    (a.path / "new.py").write_text("from a\n")
    (b.path / "new.py").write_text("from b\n")
    (a.path / "src/util.py").unlink()
    (b.path / "src/util.py").write_text("def helper():\n    return 2\n")
    git(a.path, "mv", "docs/guide.md", "docs/guide-a.md")
    git(b.path, "mv", "docs/guide.md", "docs/guide-b.md")
    (a.path / "assets/logo.bin").write_bytes(b"\0\1\2logo-a")
    (b.path / "assets/logo.bin").write_bytes(b"\0\1\2logo-b")

    outcome = merge_pair(repo, snapshot_commit(a.path), snapshot_commit(b.path))

    assert outcome.status == "conflict"
    assert set(outcome.files) == {
        ConflictPath("new.py", "add_add"),
        ConflictPath("src/util.py", "modify_delete"),
        ConflictPath("docs/guide.md", "rename"),
        ConflictPath("docs/guide-a.md", "rename"),
        ConflictPath("docs/guide-b.md", "rename"),
        ConflictPath("assets/logo.bin", "binary"),
    }


def test_rename_delete_and_non_overlapping_edits(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    a, b, c = agent(repo, "a"), agent(repo, "b"), agent(repo, "c")
    git(a.path, "mv", "src/util.py", "src/helpers.py")
    (b.path / "src/util.py").unlink()
    edit_line(c.path / "src/app.py", 1, "top")
    edit_line(a.path / "src/app.py", 20, "bottom")  # same file as c, far apart: merges cleanly
    snaps = [snapshot_commit(ws.path) for ws in (a, b, c)]

    ab, ac, bc = merge_pairs(
        repo, [(snaps[0], snaps[1]), (snaps[0], snaps[2]), (snaps[1], snaps[2])]
    )

    assert ab.status == "conflict"
    assert {f.kind for f in ab.files} == {"rename"}
    assert {f.path for f in ab.files} >= {"src/helpers.py"}
    assert ac.clean
    assert bc.clean
    assert ac.tree is not None
    merged = git(repo, "show", f"{ac.tree}:src/app.py").splitlines()
    assert merged[0] == "top"
    assert merged[-1] == "bottom"


def test_matrix_rechecks_only_pairs_whose_snapshot_changed(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    spaces = [agent(repo, name) for name in ("a", "b", "c", "d")]
    for n, ws in enumerate(spaces):
        (ws.path / f"own-{n}.txt").write_text(f"{n}\n")
    matrix = ConflictMatrix(repo, spaces[0].commit)
    snaps = {ws.path.name: snapshot_commit(ws.path) for ws in spaces}
    assert matrix.update(snaps).checked == 6

    unchanged = matrix.update({ws.path.name: snapshot_commit(ws.path) for ws in spaces})
    assert (unchanged.checked, unchanged.processes) == (0, 0)

    edit_line(spaces[0].path / "src/app.py", 2, "a")
    edit_line(spaces[1].path / "src/app.py", 2, "b")
    snaps = {ws.path.name: snapshot_commit(ws.path) for ws in spaces}
    changed = matrix.update(snaps)
    assert changed.checked == 5  # every pair with a or b in it; c+d stays
    assert [p.key for p in changed.predicted] == ["a-1+b-1"]

    edit_line(spaces[1].path / "src/app.py", 2, "line 2")  # b backs off
    snaps["b-1"] = snapshot_commit(spaces[1].path)
    cleared = matrix.update(snaps)
    assert cleared.checked == 3
    assert cleared.cleared == ["a-1+b-1"]
    assert not cleared.predicted

    edit_line(spaces[2].path / "src/app.py", 2, "c")
    snaps["c-1"] = snapshot_commit(spaces[2].path)
    again = matrix.update(snaps)
    assert [p.key for p in again.predicted] == ["a-1+c-1"]
    gone = matrix.update({k: v for k, v in snaps.items() if k != "c-1"})
    assert gone.cleared == ["a-1+c-1"]
    assert gone.checked == 0
    assert matrix.conflicts == {}


def test_agents_against_a_moved_base(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    a, b = agent(repo, "a"), agent(repo, "b")
    edit_line(a.path / "src/app.py", 7, "a edits line 7")
    (b.path / "other.txt").write_text("b\n")
    matrix = ConflictMatrix(repo, a.commit)
    snaps = {"a": snapshot_commit(a.path), "b": snapshot_commit(b.path)}
    assert matrix.update(snaps, base_tip=a.commit).predicted == []

    edit_line(repo / "src/app.py", 7, "someone pushed to main")
    tip = commit_all(repo, "moved main")
    diff = matrix.update(snaps, base_tip=tip)
    assert diff.checked == 2
    assert [(p.key, p.agents) for p in diff.predicted] == [(f"a+{BASE}", ("a", BASE))]
    assert pair_key(BASE, "a") == pair_key("a", BASE) == "a+@base"


def test_commit_a_branch_and_compare_its_tip(tmp_path: Path) -> None:
    """A finished attempt is represented by its branch tip; committed work conflicts the same."""
    repo = base_repo(tmp_path)
    a, b = agent(repo, "a"), agent(repo, "b")
    edit_line(a.path / "src/app.py", 9, "a")
    edit_line(b.path / "src/app.py", 9, "b")
    tip_a = commit_all(a.path, "a")
    outcome = merge_pair(repo, tip_a, snapshot_commit(b.path))
    assert outcome.status == "conflict"


def test_batch_survives_a_pair_git_cannot_merge(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    a, b = agent(repo, "a"), agent(repo, "b")
    edit_line(a.path / "src/app.py", 9, "a")
    edit_line(b.path / "src/app.py", 9, "b")
    sa, sb = snapshot_commit(a.path), snapshot_commit(b.path)
    missing = "1" * 40

    results = merge_pairs(repo, [(sa, sb), (sa, missing), (sb, a.commit)])

    assert [r.status for r in results] == ["conflict", "error", "clean"]
    assert results[1].error


def test_classify_the_documented_type_strings() -> None:
    assert classify("Auto-merging", "Auto-merging x") is None
    assert classify("CONFLICT (contents)", "CONFLICT (content): Merge conflict in x") == "content"
    assert classify("CONFLICT (contents)", "CONFLICT (add/add): Merge conflict in x") == "add_add"
    assert classify("CONFLICT (rename/delete)", "") == "rename"
    assert classify("CONFLICT(directory rename unclear split)", "") == "rename"
    assert classify("CONFLICT (file/directory)", "") == "other"
    assert classify("CONFLICT (submodule lacks merge base)", "") == "other"
