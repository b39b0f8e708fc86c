"""core/atomic.py: the one whole-or-nothing replace every core writer uses."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from corral.core.atomic import replacing, write_atomic


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    target.write_bytes(b"old")

    def cut_short() -> None:
        with replacing(target) as out:
            out.write(b"half")
            raise RuntimeError("cut short")

    with pytest.raises(RuntimeError):
        cut_short()
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.json"]


def test_the_mode_is_exact_and_a_link_at_the_target_is_replaced_not_followed(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"keep")
    target = tmp_path / "out.log"
    target.symlink_to(elsewhere)
    old_umask = os.umask(0o077)
    try:
        with replacing(target, 0o644) as out:
            out.write(b"new")
    finally:
        os.umask(old_umask)
    assert not target.is_symlink()
    assert target.read_bytes() == b"new"
    assert elsewhere.read_bytes() == b"keep"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_names_relative_to_a_directory_descriptor(tmp_path: Path) -> None:
    parent = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with replacing("shared.txt", dir_fd=parent, temp_prefix=".corral-") as out:
            out.write(b"data")
    finally:
        os.close(parent)
    assert (tmp_path / "shared.txt").read_bytes() == b"data"
    write_atomic(tmp_path / "shared.txt", b"again")
    assert sorted(os.listdir(tmp_path)) == ["shared.txt"]
    assert (tmp_path / "shared.txt").read_bytes() == b"again"
