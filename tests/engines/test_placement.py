"""TensorRT's INT8 layout: Q/DQ where TensorRT fuses them (ModelOpt's placement as the reference), the
rest in FP16 where the gate holds, NVIDIA's own forms taken by ``check`` and ``build``."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from occo_deploy import Fuser
from occo_deploy.backends.onnxruntime_cpu import OnnxRuntimeBackend, reference_backend
from occo_deploy.backends.onnxruntime_gpu import tensorrt_precision_options
from occo_deploy.backends.tensorrt import check_plan_compatible
from occo_deploy.engines.build import BuildRequest, BuildResult, build_engine, source_onnx
from occo_deploy.engines.check import check_artifact
from occo_deploy.errors import EngineError, InputError, MissingDependencyError
from occo_deploy.interface.profile import Profile
from occo_deploy.quantization import placement
from occo_deploy.sidecar import read_sidecar, sidecar_path
from occo_deploy.workspace import default_engine
from tests.conftest import PAIRS, TRT_SMALL, request

MODELOPT_FIXTURE = Path(__file__).with_name("fixtures") / "modelopt_int8_small.onnx"
#: ModelOpt's INT8 ONNX of this network quantizes 16 convolution outputs (benchmarks/README.md).
MODELOPT_CONV_OUTPUTS = 16
SMALL = TRT_SMALL


def _graph(path: Path) -> tuple[onnx.ModelProto, placement.GraphView]:
    model = onnx.load(str(path))
    return model, placement.GraphView(model)


def test_qdq_sit_on_inputs_and_residual_shortcuts_never_between_a_conv_and_its_epilogue(trt_int8: BuildResult) -> None:
    model, view = _graph(trt_int8.engine)
    convs = [n for n in view.nodes if n.op_type == "Conv"]
    reads_dq = [c for c in convs if view.producer[c.input[0]].op_type == "DequantizeLinear"
                and view.producer[c.input[1]].op_type == "DequantizeLinear"]
    assert len(reads_dq) == len(convs) - 1  # all but net.final, which stays FP32
    rep = placement.report(model)
    assert rep.blocking == [] and 0 < rep.conv_outputs_quantized <= MODELOPT_CONV_OUTPUTS
    assert rep.work["int8"] > 0.9
    for conv in convs:  # a convolution's epilogue (ReLU, Sigmoid, Mul) reads its output, not a DQ of it
        for user in view.consumers.get(conv.output[0], []):
            assert user.op_type in ("Relu", "Sigmoid", "Mul", "Add", "QuantizeLinear", "ReduceMax", "ReduceMin",
                                    "Sub", "Cast"), (conv.name, user.op_type)
    residual = 0
    for add in (n for n in view.nodes if n.op_type == "Add"):
        producers = [view.producer.get(i) for i in add.input]
        if any(p is not None and p.op_type == "Conv" for p in producers) and len(view.activations(add)) == 2:
            residual += 1  # the convolution's side is read as it is, the shortcut through Q/DQ
            kinds = sorted(p.op_type for p in producers if p is not None)
            assert kinds.count("DequantizeLinear") == 1 and "Conv" in kinds, (add.name, kinds)
    assert residual == 12
    weights = Counter(numpy_helper.to_array(view.initializers[d.input[0]]).dtype.name
                      for d in view.nodes if d.op_type == "DequantizeLinear" and d.input[0] in view.initializers)
    shared = {c.input[1] for c in reads_dq}  # the channel attentions' MLPs apply one weight twice
    assert weights == {"int8": len(shared)}  # weights as INT8 initializers, per output channel


def test_the_rest_runs_in_fp16_but_what_needs_fp32(trt_int8: BuildResult) -> None:
    model, view = _graph(trt_int8.engine)
    meta = json.loads(trt_int8.sidecar.read_text())
    assert meta["mixed_precision"]["rest"] == "fp16" and meta["mixed_precision"]["fp32_nodes"] > 0
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 19
    scales = {view.initializers[n.input[1]].data_type for n in view.nodes if n.op_type == "DequantizeLinear"}
    assert scales == {onnx.TensorProto.FLOAT16}  # INT8 layers output FP16
    rep = placement.report(model)
    assert rep.work["fp16"] > 0 and rep.work["fp32"] < 0.05  # the attention contexts' products stay FP32
    assert meta["quality"]["passed"] and meta["quality"]["psnr_min"] >= 40
    assert any(line.startswith("weighted ops' work: INT8") for line in meta["lint"]["plan"])


def test_openvinos_int8_takes_the_same_placement_with_u8_activations(exported: Path) -> None:
    """Measured better on OpenVINO (benchmarks/cpu_placement.py): u8 asymmetric activations on the
    inputs and shortcuts only, float biases; ONNX Runtime's engines keep its quantizer's placement."""
    from occo_deploy.backends import get
    from occo_deploy.calibration.data import sample_pairs
    from occo_deploy.engines.precision import SCHEMES, to_int8
    from occo_deploy.quantization.ranges import measure

    scheme = get("openvino").make_builder().int8_scheme
    ranges = measure(exported, sample_pairs(None, (120, 160), 1), "minmax", symmetric=SCHEMES[scheme].symmetric)
    model = to_int8(exported, ranges, scheme)
    view = placement.GraphView(model)
    zero_points = Counter(view.initializers[n.input[2]].data_type for n in view.nodes if n.op_type == "QuantizeLinear")
    assert set(zero_points) == {onnx.TensorProto.UINT8}
    rep = placement.report(model)
    assert rep.blocking == [] and rep.conv_outputs_quantized <= MODELOPT_CONV_OUTPUTS
    onnxruntime_int8 = to_int8(exported, ranges, get("onnxruntime").make_builder().int8_scheme)
    assert placement.report(onnxruntime_int8).conv_outputs_quantized > 70  # its QLinearConv needs them


def test_check_takes_modelopts_forms_and_refuses_a_zero_scale(trt_int8: BuildResult, tmp_path: Path) -> None:
    """FP32 weight -> Q -> DQ and MatMul weights per channel on axis 1 are ModelOpt's, and TensorRT's."""
    made = check_artifact(MODELOPT_FIXTURE, ["tensorrt"])
    assert made.passed, [f.line() for f in made.errors]
    model = onnx.load(str(MODELOPT_FIXTURE))
    view = placement.GraphView(model)
    forms = {(view.producer[d.input[0]].op_type if d.input[0] in view.producer else "initializer",
              next((a.i for a in d.attribute if a.name == "axis"), None))
             for d in view.nodes if d.op_type == "DequantizeLinear"}
    assert ("QuantizeLinear", 1) in forms  # a MatMul weight, per channel on axis 1, from Q(float weight)
    assert ("QuantizeLinear", 0) in forms  # a convolution's
    # A zero scale: TensorRT's parser refuses it ("Scale coefficients must all be positive").
    bad = onnx.load(str(trt_int8.engine))
    scale = next(i for i in bad.graph.initializer if i.name.endswith("_scale") and not i.dims)
    scale.CopyFrom(numpy_helper.from_array(np.zeros((), numpy_helper.to_array(scale).dtype), scale.name))
    onnx.save(bad, tmp_path / "zero_scale.onnx")
    shutil.copy(trt_int8.sidecar, tmp_path / "zero_scale.onnx.json")
    refused = check_artifact(tmp_path / "zero_scale.onnx", ["tensorrt"])
    assert not refused.passed and any("must all be positive" in f.message for f in refused.errors)


def test_the_plan_trtexec_makes_from_the_printed_line_runs_with_its_sidecar(trt_int8: BuildResult, exported: Path,
                                                                             tmp_path: Path) -> None:
    """``--onnx-only`` prints a trtexec line and writes the sidecar of the plan that line saves, so the
    plan is the workspace's engine once it is there; TensorRT checks its own version and GPU at load."""
    plan = trt_int8.engine.with_suffix(".plan")
    assert json.loads(sidecar_path(plan).read_text())["source"]["onnx"] == trt_int8.engine.name  # beside it
    meta = read_sidecar(plan)
    assert meta is not None
    assert meta["kind"] == "engine" and meta["built_by"] == "trtexec" and meta["precision"] == "int8"
    assert meta["source"]["onnx"] == str(trt_int8.engine) and meta["mixed_precision"]["rest"] == "fp16"
    assert trt_int8.next_step and f"--saveEngine={plan}" in trt_int8.next_step
    check_plan_compatible(meta, "10.3.0", {"name": "Orin", "compute_capability": "8.7"})  # any: not ours to know

    engines = tmp_path / "engines"
    engines.mkdir()
    shutil.copy(sidecar_path(plan), sidecar_path(engines / plan.name))
    with pytest.raises(EngineError, match="no engine in"):  # a sidecar alone is not an engine
        default_engine(tmp_path)
    (engines / plan.name).write_bytes(b"the bytes trtexec serialized")
    assert default_engine(tmp_path) == engines / plan.name
    try:
        import tensorrt  # noqa: F401
    except ImportError:  # it opens as far as this machine goes: to the missing extra, not a missing sidecar
        with pytest.raises(MissingDependencyError, match=r"\[gpu\]"):
            Fuser(engines / plan.name)

    # A plan already there keeps its own sidecar: a rebuild of the ONNX does not claim it.
    mine = {"kind": "engine", "built_by": "occo-deploy"}
    sidecar_path(plan).write_text(json.dumps(mine))
    plan.write_bytes(b"a plan built before")
    build_engine(request(exported, tmp_path, precision="int8", backend="tensorrt", onnx_only=True, force=True,
                         output=trt_int8.engine, profile=SMALL))
    assert json.loads(sidecar_path(plan).read_text()) == mine


def test_onnxruntimes_tensorrt_provider_is_told_the_graphs_precision() -> None:
    """ORT's TensorRT provider builds FP32 unless told, and refuses Q/DQ without INT8 enabled."""
    assert tensorrt_precision_options({"precision": "fp32"}) == {}
    assert tensorrt_precision_options({"precision": "fp16"}) == {"trt_fp16_enable": "True"}
    int8 = tensorrt_precision_options({"precision": "int8"})
    assert int8["trt_int8_enable"] == "True" and int8["trt_fp16_enable"] == "True"
    assert int8["trt_int8_use_native_calibration_table"] == "False"  # the scales are in the Q/DQ


def test_build_takes_an_int8_onnx_another_tool_made_for_tensorrt(tmp_path: Path) -> None:
    source = tmp_path / "modelopt.onnx"
    shutil.copy(MODELOPT_FIXTURE, source)
    taken = source_onnx(source)
    assert taken.precision == "int8" and taken.made_for == "tensorrt"
    try:
        import tensorrt  # noqa: F401
    except ImportError:  # as far as a machine without TensorRT goes: past every check of the ONNX
        with pytest.raises(EngineError, match=r"cannot build for tensorrt: .*tensorrt.*not installed") as caught:
            build_engine(BuildRequest(onnx=source, precision=None, profile=Profile.from_options(),
                                      output=tmp_path / "e.plan"))
        assert "--onnx-only" not in str(caught.value) and "onnx_only" not in str(caught.value)
    with pytest.raises(InputError, match="made for tensorrt"):
        build_engine(BuildRequest(onnx=source, precision=None, backend="onnxruntime", profile=Profile.from_options()))


def test_an_fp8_onnx_is_refused_with_the_measured_reason(tmp_path: Path) -> None:
    model = onnx.load(str(MODELOPT_FIXTURE))
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.INT8 and not init.dims:  # the zero points
            init.data_type = onnx.TensorProto.FLOAT8E4M3FN
    onnx.save(model, tmp_path / "fp8.onnx")
    with pytest.raises(InputError, match=r"FP8.*5\.7 dB worst"):
        source_onnx(tmp_path / "fp8.onnx")


@pytest.mark.slow
@pytest.mark.shared
def test_tensorrt_int8_holds_on_full_size_pairs_no_calibration_saw(exported: Path, tmp_path: Path) -> None:
    """Calibrated at 480x640 on TNO, RoadScene and LLVIP; checked on the 10 MSRS pairs at their own 640x480,
    with Q/DQ computed as TensorRT computes them: the worst frame at 40 dB or better."""
    from occo_deploy.calibration import data as calib_data
    from occo_deploy.engines.gate import psnr

    calib = tmp_path / "calib"
    for group in ("TNO", "RoadScene", "LLVIP"):
        shutil.copytree(PAIRS / group, calib / group)
    result = build_engine(request(exported, tmp_path, precision="int8", backend="tensorrt", onnx_only=True,
                                  profile=Profile.from_options(), calib_dir=calib, calib_size=None,
                                  output=tmp_path / "occo_int8_tensorrt.onnx"))
    held = [calib_data.load_pair(i, (480, 640)) for i in calib_data.discover(PAIRS / "MSRS")]
    with _open(exported) as want, _open(result.engine) as got:
        worst = min(psnr(got.run(v[None], ir[None])[0], want.run(v[None], ir[None])[0]) for ir, v in held)
    assert worst >= 40.0, worst


def _open(path: Path) -> contextlib.closing[OnnxRuntimeBackend]:
    """ONNX Runtime with Q/DQ computed as the graph states them, closed after use."""
    return contextlib.closing(reference_backend(path))
