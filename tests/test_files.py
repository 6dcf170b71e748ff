"""Atomic outputs: complete or absent, never over a user's file without force."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from occo_deploy.errors import OutputExistsError
from occo_deploy.files import atomic_output, write_bytes_atomic


def test_failure_inside_leaves_neither_file_nor_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        assert tmp.suffix == ".mp4" and tmp.parent == tmp_path
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_existing_file_kept_without_force_and_replaced_with_it(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"mine")
    with pytest.raises(OutputExistsError, match="pass force=True"):  # named as Python callers pass it
        write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"mine"
    write_bytes_atomic(target, b"new", force=True)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_output_gets_normal_file_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    write_bytes_atomic(target, b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


def test_a_folder_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputExistsError, match="folder"):
        write_bytes_atomic(tmp_path / "out", b"x", force=True)
