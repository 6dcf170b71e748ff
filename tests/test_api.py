"""``occo_deploy.api``: build and check from Python with the CLI's arguments, the same results and
the same refusals (worded as Python spells the options), and the options objects the verbs share."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

from occo_deploy import Fuser, api
from occo_deploy.errors import InputError
from occo_deploy.fusing.options import FrameOptions, RunOptions
from tests.conftest import PAIRS, run_cli


def test_the_api_takes_every_option_its_verb_takes() -> None:
    # The CLI's option names, as Python keywords: nothing the command line can do is missing here.
    from occo_deploy.cli import build_cmd, check_cmd, export_cmd

    for verb, function, cli_only in ((build_cmd.build, api.build, {"fp32", "fp16", "bf16", "int8"}),
                                     (check_cmd.check, api.check, {"requalify", "calib", "reference", "report",
                                                                   "force"}),
                                     (export_cmd.export, api.export, set())):
        taken = set(inspect.signature(function).parameters)
        assert set(inspect.signature(verb).parameters) - cli_only <= taken, function.__name__
    assert {"precision"} <= set(inspect.signature(api.build).parameters)  # the four flags as one keyword


def test_fuser_takes_the_options_objects_fields_as_keywords() -> None:
    fuser_keywords = set(inspect.signature(Fuser.__init__).parameters)
    for options in (RunOptions, FrameOptions):
        assert {f.name for f in dataclasses.fields(options)} <= fuser_keywords, options.__name__


def test_build_and_check_from_python(exported: Path, tmp_path: Path) -> None:
    result = api.build(exported, precision="fp32", backend="onnxruntime", calib=PAIRS / "MSRS", calib_size=4,
                       opt_shape="1x120x160", min_shape="1x16x16", max_shape="4x2048x2048",
                       output=tmp_path / "e.onnx")
    assert result.gate.passed and result.engine.is_file() and result.backend == "onnxruntime"
    report = api.check(result.engine)
    assert report.passed and report.targets == ["onnxruntime"]
    with Fuser(result.engine, **RunOptions(threads=1).kwargs(), **FrameOptions(max_side=640).kwargs()) as fuser:
        assert fuser.max_side == 640 and fuser.backend.threads == 1


def test_python_refusals_name_python_keywords(exported: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="precision is one of fp32, fp16, bf16, int8"):
        api.build(exported, precision="int4")
    with pytest.raises(InputError, match=r"^workspace does not apply to a onnxruntime build.* backend='tensorrt'"):
        api.build(exported, precision="fp32", backend="onnxruntime", workspace=2.0, output=tmp_path / "x.onnx")
    with pytest.raises(InputError, match="give a checkpoint or demo=True"):
        api.export()
    assert not list(tmp_path.iterdir())


def test_eval_and_bench_take_the_engine_options(workspace: Path) -> None:
    # The same refusal as fuse: the run options reach Fuser through one object in every verb.
    ir, vis = str(PAIRS / "TNO" / "ir" / "07.png"), str(PAIRS / "TNO" / "vi" / "07.png")
    for verb in (("bench", "--duration", "0.1", "--warmup", "0", "--shape", "64x64"), ("eval", ir, vis)):
        done = run_cli(*verb, "--inference-precision", "bf16", cwd=workspace)
        assert done.returncode == 2 and "only openvino engines take it" in done.stderr, (verb, done.stderr)
