"""What a newcomer following the README met (issue 23, point 4): each message now names the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from rich.progress import Progress

from occo_deploy import Fuser
from occo_deploy.cli.common import engine_label
from occo_deploy.cli.progress import _Left
from occo_deploy.errors import EngineError, InputError, ShapeError
from tests.conftest import PAIRS, run_cli
from tests.support import one_line_error


def test_no_engine_here_names_engine_option(tmp_path: Path) -> None:
    # Outside the project folder: --engine PATH is the fix, not a 100 s re-export.
    one_line_error(run_cli("fuse", str(PAIRS / "TNO" / "ir"), str(PAIRS / "TNO" / "vi"), cwd=tmp_path),
                    "--engine PATH", str(tmp_path), "occo-deploy export")


def test_missing_engine_names_its_build_command(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"occo-deploy build --int8 --backend openvino \(from"):
        Fuser(tmp_path / "engines" / "occo_int8_openvino.onnx")  # the README's Python snippet
    with pytest.raises(EngineError, match="build --fp16 --backend onnxruntime"):
        Fuser(tmp_path / "engines" / "occo_fp16_onnxruntime.onnx")
    with pytest.raises(EngineError, match="occo-deploy export CHECKPOINT"):
        Fuser(tmp_path / "mine.onnx")


@pytest.mark.parametrize("ir, vis, says", [
    (None, None, "infrared frame is None"),
    (np.zeros((32, 32), np.uint8), None, "visible frame is None"),
    ("ir.png", np.zeros((32, 32, 3), np.uint8), "must be a numpy array, got str"),
])
def test_frames_that_are_not_images_raise_typed_errors(exported: Path, ir: object, vis: object, says: str) -> None:
    # cv2.imread returns None for a missing file: a ShapeError (an OccoDeployError) in every entry point.
    with Fuser(exported) as fuser:
        for call in (lambda: fuser.fuse(ir, vis), lambda: fuser.check_pair(ir, vis),  # type: ignore[arg-type]
                     lambda: list(fuser.fuse_stream([(0, ir, vis)])),  # type: ignore[list-item]
                     lambda: fuser.fuse_batch([ir], [vis])):  # type: ignore[list-item]
            with pytest.raises(ShapeError, match=says):
                call()
        with pytest.raises(ShapeError, match="sequences"):
            fuser.fuse_batch(None, None)  # type: ignore[arg-type]


def test_a_bad_pair_in_a_folder_names_keep_going(workspace: Path) -> None:
    for sub in ("ir", "vi"):
        (workspace / "tno" / sub).mkdir(parents=True)
        shutil.copy(PAIRS / "TNO" / sub / "19.png", workspace / "tno" / sub / "19.png")
    shutil.copy(PAIRS / "TNO" / "vi" / "07.png", workspace / "tno" / "vi" / "07.png")
    (workspace / "tno" / "ir" / "07.png").write_bytes(b"\x89PNG\r\n\x1a\n corrupt")
    one_line_error(run_cli("fuse", "tno/ir", "tno/vi", cwd=workspace), "07.png", "--keep-going")


def test_a_data_set_folder_suggests_its_ir_and_vi(workspace: Path) -> None:
    tno = PAIRS / "TNO"
    one_line_error(run_cli("fuse", str(tno), cwd=workspace), f"occo-deploy fuse {tno / 'ir'} {tno / 'vi'}")
    one_line_error(run_cli("fuse", str(tno), str(tno), cwd=workspace), f"give those: {tno / 'ir'} {tno / 'vi'}")


def test_provider_choices_are_listed_once(exported: Path) -> None:
    with pytest.raises(InputError) as bad:
        Fuser(exported, provider="gpu")
    listed = str(bad.value).split("use one of ", 1)[1].split(", ")
    assert len(listed) == len(set(listed)) >= 4


def test_engine_labels_say_each_word_once() -> None:
    assert engine_label({"artifact": "e.onnx", "backend": "openvino", "provider": "openvino",
                         "precision": "int8"}) == "e.onnx [openvino, int8]"
    assert engine_label({"artifact": "x.onnx", "backend": "onnxruntime", "provider": "cpu",
                         "precision": "fp32"}) == "x.onnx [onnxruntime cpu, fp32]"


def test_a_finished_bar_reads_done_not_zero_left() -> None:
    bars = Progress()
    task = bars.add_task("calibrating", total=35)
    bars.update(task, completed=10)
    column = _Left()
    running = column.render(bars.tasks[0]).plain
    assert running == "" or running.endswith(" left")
    bars.update(task, completed=35)
    assert column.render(bars.tasks[0]).plain == "done"


def test_docs_give_install_commands_that_work_from_a_checkout() -> None:
    # occo-deploy is not published under that name: `pip install 'occo-deploy[x]'` fails everywhere.
    root = Path(__file__).resolve().parents[2]
    for doc in (root / "README.md", *sorted((root / "docs").glob("*.md"))):
        assert "pip install 'occo-deploy[" not in doc.read_text(), doc
