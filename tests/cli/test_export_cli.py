"""``occo-deploy export`` as a user runs it: one line per bad input, nothing half-written."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import CHECKPOINT, run_cli
from tests.support import one_line_error


def test_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "weights.pth").write_text("hello")
    result = run_cli("export", "weights.pth", cwd=tmp_path)
    one_line_error(result, "not a PyTorch checkpoint")
    assert not (tmp_path / "export").exists() or not any((tmp_path / "export").iterdir())


def test_checkpoint_and_demo_together(tmp_path: Path) -> None:
    one_line_error(run_cli("export", str(CHECKPOINT), "--demo", cwd=tmp_path), "one of them")


def test_existing_onnx_is_kept(tmp_path: Path) -> None:
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "occo.onnx").write_bytes(b"mine")
    one_line_error(run_cli("export", str(CHECKPOINT), cwd=tmp_path), "--force")
    assert (tmp_path / "export" / "occo.onnx").read_bytes() == b"mine"
