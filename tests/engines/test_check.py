"""``occo-deploy check`` and the ONNX TensorRT would parse, built with ``--onnx-only`` (no TensorRT here)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import onnx
import pytest

from occo_deploy.backends.tensorrt import DEFAULT_PROFILE
from occo_deploy.engines.build import BuildResult, build_engine
from occo_deploy.engines.check import check_artifact, check_model
from occo_deploy.errors import EngineError, InputError, cli_context
from occo_deploy.interface.profile import Profile
from tests.conftest import PAIRS, TRT_SMALL, request, run_cli
from tests.support import one_line_error

BAD = Path(__file__).with_name("fixtures") / "bad_for_tensorrt.onnx"
SMALL = TRT_SMALL


def _trt_onnx(exported: Path, tmp: Path, precision: str) -> BuildResult:
    """The ONNX TensorRT would parse, as `build --backend tensorrt --onnx-only` writes it, for a small profile."""
    return build_engine(request(exported, tmp, precision=precision, backend="tensorrt", profile=SMALL,
                                onnx_only=True, output=tmp / f"occo_{precision}_tensorrt.onnx"))


@pytest.fixture(scope="module")
def trt_fp16(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    return _trt_onnx(exported, tmp_path_factory.mktemp("trt-fp16"), "fp16")


@pytest.fixture(scope="module")
def trt_fp32_default(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """FP32 with no shapes and no output name, as a user's first build: the default range and name
    (gated at 480x640 and 960x1280, half a minute on 2 cores)."""
    tmp = tmp_path_factory.mktemp("trt-fp32")
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        fp32 = build_engine(request(exported, tmp, precision="fp32", backend="tensorrt",
                                    profile=Profile.from_options(), onnx_only=True, output=None,
                                    calib_dir=tmp / "none", val_size=1))  # one frame and its enlargement: CI time
    finally:
        os.chdir(cwd)
    return dataclasses.replace(fp32, engine=tmp / fp32.engine, sidecar=tmp / fp32.sidecar)


def test_the_export_passes_every_target(exported: Path) -> None:
    report = check_artifact(exported)
    assert report.targets == ["onnxruntime", "openvino", "tensorrt"]  # every backend with rules, registry order
    assert report.passed, [f.line() for f in report.findings]


def test_uint8_inputs_go_straight_into_casts_and_the_output_comes_from_one(exported: Path) -> None:
    graph = onnx.load(str(exported)).graph
    for name in ("visible", "infrared"):
        users = [n for n in graph.node if name in n.input]
        assert users and all(n.op_type == "Cast" for n in users), [(n.op_type, n.name) for n in users]
    assert next(n for n in graph.node if "fused" in n.output).op_type == "Cast"


def test_the_bad_fixture_fails_naming_each_node() -> None:
    report = check_artifact(BAD, ["tensorrt"])
    assert not report.passed
    by_node: dict[str, str] = {}
    for f in report.errors:
        by_node[f.node] = by_node.get(f.node, "") + " | " + f.message
    for node, words in {
        "transpose_on_uint8": "reads UINT8 input 'visible'",
        "shape_on_uint8": "reads UINT8 input 'infrared'",
        "identity_on_uint8_output": "UINT8 outputs only with a Cast",
        "quantize_u8_asymmetric": "zero point",
        "weight_dq_axis_1": "axis 1",
        "bias_dq_int32": "INT32",
        "maxpool_dilated": "dilations",
        "resize_antialias": "antialias",
        "reduce_axes_computed": "'axes' must be a constant",
    }.items():
        assert words in by_node.get(node, ""), (node, by_node.get(node))


def test_an_onnx_runtime_int8_engine_is_not_for_tensorrt(int8_build: tuple[BuildResult, list[str]]) -> None:
    findings = check_model(onnx.load(str(int8_build[0].engine)), ["tensorrt"])
    assert any("asymmetric" in f.message or "domain" in f.message for f in findings if f.level == "error")


def _passes_the_tensorrt_rules(result: BuildResult, precision: str) -> None:
    report = check_artifact(result.engine)
    assert report.targets == ["tensorrt"]  # what its sidecar says it is for
    assert report.passed, [f.line() for f in report.findings]
    meta = json.loads(result.sidecar.read_text())
    assert meta["kind"] == "onnx" and meta["target"] == "tensorrt" and meta["precision"] == precision
    assert meta["lint"]["errors"] == 0 and meta["quality"]["passed"]
    assert "trtexec --onnx=" in meta["purpose"] and "--stronglyTyped" in meta["purpose"]


def test_tensorrt_int8_onnx_passes_the_tensorrt_rules(trt_int8: BuildResult) -> None:
    _passes_the_tensorrt_rules(trt_int8, "int8")


@pytest.mark.slow  # FP16 reaches the fast tier through the CLI (test_onnx_only_cli_writes_the_tensorrt_onnx...)
@pytest.mark.shared
def test_tensorrt_fp16_onnx_passes_the_tensorrt_rules(trt_fp16: BuildResult) -> None:
    _passes_the_tensorrt_rules(trt_fp16, "fp16")


@pytest.mark.slow
@pytest.mark.shared
def test_tensorrt_fp32_onnx_passes_the_tensorrt_rules(trt_fp32_default: BuildResult) -> None:
    _passes_the_tensorrt_rules(trt_fp32_default, "fp32")


def test_int8_for_tensorrt_is_symmetric_with_float_biases(trt_int8: BuildResult) -> None:
    model = onnx.load(str(trt_int8.engine))
    inits = {i.name: i for i in model.graph.initializer}
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert len(dq) > 100
    assert not [n.name for n in dq if n.input[0] in inits and inits[n.input[0]].data_type == onnx.TensorProto.INT32]
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)  # the rest in FP16 (or FP32), never INT32
    assert all(len(c.input) < 3 or inits[c.input[2]].data_type in floats for c in convs
               if len(c.input) > 2 and c.input[2] in inits)
    meta = json.loads(trt_int8.sidecar.read_text())
    assert meta["calibration"]["scheme"] == "s8s8" and meta["calibration"]["activations"] == "int8 symmetric"


@pytest.mark.slow
@pytest.mark.shared
def test_a_tensorrt_build_without_shapes_holds_a_real_range(trt_fp32_default: BuildResult) -> None:
    result = trt_fp32_default
    meta = json.loads(result.sidecar.read_text())
    assert meta["shapes"] == DEFAULT_PROFILE.as_dict() == {
        "dynamic": False, "min": [1, 256, 256], "opt": [1, 480, 640], "max": [4, 1088, 1920]}
    assert result.engine.name == "occo_fp32_tensorrt.onnx"  # a range: no static shape in the name
    # The gate's enlarged frame is larger than opt: twice opt, within the profile's max.
    assert result.gate.largest_hw == (960, 1280) and "largest 960x1280" in result.gate.describe()


def test_a_static_tensorrt_profile_is_named_by_its_shape(exported: Path, tmp_path: Path) -> None:
    from occo_deploy import backends
    from occo_deploy.engines.build import default_output

    builder = backends.get("tensorrt").make_builder()
    static = Profile.from_options(shape="480x640")
    assert default_output(Path("engines"), "int8", builder, static).name == "occo_int8_tensorrt_1x480x640.plan"
    assert default_output(Path("engines"), "int8", builder, DEFAULT_PROFILE).name == "occo_int8_tensorrt.plan"


def test_the_precision_onnx_builds_on_without_recalibrating(trt_int8: BuildResult, tmp_path: Path) -> None:
    """On the GPU machine the --onnx-only file is the build's input: its precision and profile carry over."""
    from occo_deploy.engines.build import BuildRequest

    source = trt_int8.engine
    with pytest.raises(InputError, match="made for tensorrt; build it with backend='tensorrt'"):
        build_engine(BuildRequest(onnx=source, precision=None, backend="onnxruntime", profile=Profile.from_options()))
    with cli_context(), pytest.raises(InputError, match="made for tensorrt; build it with --backend tensorrt"):
        build_engine(BuildRequest(onnx=source, precision=None, backend="onnxruntime", profile=Profile.from_options()))
    with pytest.raises(InputError, match="is a int8 ONNX; build it with precision='int8'"):
        build_engine(BuildRequest(onnx=source, precision="fp16", backend="tensorrt", profile=Profile.from_options()))
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(EngineError, match=r"cannot build for tensorrt: .*pip install -e '.*\[gpu\]'"):
            build_engine(BuildRequest(onnx=source, precision=None, backend="tensorrt", profile=Profile.from_options(),
                                      output=tmp_path / "e.plan"))


def test_check_cli(exported: Path, trt_int8: BuildResult, tmp_path: Path) -> None:
    ok = run_cli("check", str(trt_int8.engine), "--report", str(tmp_path / "r.json"), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "0 error(s)" in ok.stdout and "passed" in ok.stdout
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is True
    bad = run_cli("check", str(BAD), "--target", "tensorrt", cwd=tmp_path)
    assert bad.returncode == 9
    assert "transpose_on_uint8 (Transpose)" in bad.stdout and "bias_dq_int32 (DequantizeLinear)" in bad.stdout
    assert bad.stderr.count("\n") == 1 and "14 error(s)" in bad.stderr
    one_line_error(run_cli("check", "nothing.onnx", cwd=tmp_path), "not found: nothing.onnx")
    plan = tmp_path / "x.plan"
    plan.write_bytes(b"plan")
    one_line_error(run_cli("check", str(plan), cwd=tmp_path), "only TensorRT can read", "--onnx-only")


def test_onnx_only_cli_writes_the_tensorrt_onnx_without_tensorrt(workspace: Path) -> None:
    result = run_cli("build", "--fp16", "--backend", "tensorrt", "--onnx-only", "--min", "1x64x64", "--opt",
                     "1x96x128", "--max", "1x192x256", cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert "tensorrt rules (TensorRT 10 and 11): passed" in result.stdout
    assert "wrote engines/occo_fp16_tensorrt.onnx" in result.stdout and "trtexec --onnx=" in result.stdout
    # The precision ONNX is not an engine: `fuse` keeps using the export.
    fused = run_cli("fuse", str(PAIRS / "TNO" / "ir" / "07.png"), str(PAIRS / "TNO" / "vi" / "07.png"), cwd=workspace)
    assert fused.returncode == 0 and "export/occo.onnx" in fused.stdout
    again = run_cli("build", "engines/occo_fp16_tensorrt.onnx", cwd=workspace)
    one_line_error(again, "cannot build for tensorrt", "[gpu]'")
    one_line_error(run_cli("build", "--int8", "--onnx-only", "--backend", "onnxruntime", cwd=workspace),
                    "drop --onnx-only")


def _constant_left_matmul(axis: int) -> onnx.ModelProto:
    """x -> MatMul(DQ(Q(W)), x) with W a constant left operand quantized per channel on ``axis``, as
    NVIDIA ModelOpt writes it for this network's attention products (axis 1, the reduction axis)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4), "W")
    scale = numpy_helper.from_array(np.full(4 if axis == 1 else 3, 0.01, np.float32), "W_scale")
    zero = numpy_helper.from_array(np.zeros(4 if axis == 1 else 3, np.int8), "W_zero")
    nodes = [helper.make_node("QuantizeLinear", ["W", "W_scale", "W_zero"], ["Wq"], name="w_q", axis=axis),
             helper.make_node("DequantizeLinear", ["Wq", "W_scale", "W_zero"], ["Wd"], name="w_dq", axis=axis),
             helper.make_node("MatMul", ["Wd", "x"], ["y"], name="product")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])],
                              [weight, scale, zero])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_a_matmul_weight_scaled_along_its_reduction_axis_builds_unfused() -> None:
    # TensorRT's parser takes it (no axis rule for DequantizeLinear); the product cannot be an INT8 GEMM,
    # so it is a warning naming the cost, where the rule used to refuse ModelOpt's ONNX outright.
    found = [f for f in check_model(_constant_left_matmul(axis=1), ["tensorrt"]) if f.node in ("w_q", "w_dq")]
    assert found and all(f.level == "warning" for f in found), [f.line() for f in found]
    assert "runs unfused in FP16/FP32" in found[0].message and "axis 0" in found[0].message
    assert not [f for f in check_model(_constant_left_matmul(axis=0), ["tensorrt"]) if f.node in ("w_q", "w_dq")]
