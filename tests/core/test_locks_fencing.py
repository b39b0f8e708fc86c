"""Fenced writes land only inside the run's shared directory, whole, never through a link."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from corral.core.locks.shared_files import (
    FencedPathError,
    check_relative,
    make_shared_dir,
    write_shared,
)


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "../x", "a/../../b", "", ".", "./", "a\\b", "x\0y", ".corral-1.tmp"],
)
def test_paths_outside_or_odd_are_refused(path: str) -> None:
    with pytest.raises(FencedPathError):
        check_relative(path)


def test_plain_relative_paths_are_accepted() -> None:
    assert check_relative("a/b.txt") == ("a", "b.txt")
    assert check_relative("./counter") == ("counter",)


def test_write_replaces_the_file_whole_and_makes_private_dirs(tmp_path: Path) -> None:
    root = make_shared_dir(tmp_path)
    digest = write_shared(root, "deep/er/out.json", b"one")
    write_shared(root, "deep/er/out.json", b"two")
    target = root / "deep" / "er" / "out.json"
    assert target.read_bytes() == b"two"
    assert len(digest) == 64
    assert stat.S_IMODE(os.stat(root / "deep").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert [p.name for p in (root / "deep" / "er").iterdir()] == ["out.json"]  # no temp left


def test_a_link_on_the_way_is_never_followed(tmp_path: Path) -> None:
    root = make_shared_dir(tmp_path)
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    (root / "sub").symlink_to(victim_dir)
    with pytest.raises(FencedPathError, match="symbolic link"):
        write_shared(root, "sub/file.txt", b"evil")
    assert list(victim_dir.iterdir()) == []


def test_a_link_at_the_name_is_replaced_not_written_through(tmp_path: Path) -> None:
    root = make_shared_dir(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (root / "out.txt").symlink_to(victim)
    write_shared(root, "out.txt", b"data")
    assert victim.read_text() == "keep me"
    assert not (root / "out.txt").is_symlink()
    assert (root / "out.txt").read_bytes() == b"data"


def test_a_directory_at_the_name_is_refused(tmp_path: Path) -> None:
    root = make_shared_dir(tmp_path)
    (root / "taken").mkdir()
    (root / "taken" / "inside").write_text("x")
    with pytest.raises(FencedPathError, match="directory"):
        write_shared(root, "taken", b"data")
    assert (root / "taken" / "inside").read_text() == "x"
