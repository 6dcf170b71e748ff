"""Profiles, precision transforms and the TensorRT path up to the ``tensorrt`` import (CPU)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import onnx
import pytest

from occo_deploy import Fuser, MissingDependencyError, backends
from occo_deploy.backends.tensorrt import check_plan_compatible
from occo_deploy.engines import precision
from occo_deploy.engines.gate import psnr
from occo_deploy.errors import EngineError, InputError, ShapeError
from occo_deploy.interface.profile import Profile
from tests.conftest import PAIRS


def test_profiles_from_options() -> None:
    static = Profile.from_options(shape="480x640")
    assert static.static and static.opt == (1, 480, 640) and static.opt_hw == (480, 640)
    ranged = Profile.from_options(min_="1x256x256", opt="4x480x640", max_="8x1024x1280")
    assert not ranged.static and ranged.max == (8, 1024, 1280)
    assert ranged.as_dict() == {"dynamic": False, "min": [1, 256, 256], "opt": [4, 480, 640], "max": [8, 1024, 1280]}
    default = Profile.from_options()
    assert default.dynamic and default.opt == (1, 480, 640)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"shape": "8x8"}, ShapeError, ">= 16"),
        ({"min_": "1x8x8", "opt": "1x64x64", "max_": "1x64x64"}, ShapeError, ">= 16"),
        ({"min_": "1x64x64", "opt": "1x32x32", "max_": "1x64x64"}, ShapeError, "min <= opt <= max"),
        ({"shape": "480x640", "opt": "1x480x640"}, InputError, "not both"),
        ({"opt": "1x480x640"}, InputError, "all three"),
        ({"shape": "480 by 640"}, InputError, "is not HxW"),
        ({"min_": "480x640", "opt": "480x640", "max_": "480x640"}, InputError, "is not NxHxW"),
    ],
)
def test_bad_profiles(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Profile.from_options(**kwargs)


def test_fp16_keeps_norms_softmax_reductions_and_io_in_fp32(exported: Path) -> None:
    model = onnx.load(str(exported))
    keep = set(precision.fp32_nodes(model))
    by_name = {n.name: n for n in model.graph.node}
    assert all(n.name in keep for n in model.graph.node if n.op_type in ("Softmax", "ReduceMean", "ReduceMax"))
    assert any(by_name[k].op_type == "Floor" for k in keep)  # the I/O pipeline
    assert not any(by_name[k].op_type == "Conv" for k in keep)  # the heavy work goes to FP16
    # The lean variant (a GPU A/B candidate) frees only its operators inside the network.
    lean = set(precision.fp32_nodes(model, precision.FP16_LEAN_OPS))
    assert lean < keep and {by_name[k].op_type for k in keep - lean} == set(precision.FP16_LEAN_OPS)
    assert any(by_name[k].op_type == "ReduceMax" for k in lean)  # the I/O pipeline's min-max stays FP32
    mixed = precision.to_fp16(model)
    # Topologically sorted and type-consistent (TensorRT's parser needs both): strict inference passes.
    checked = onnx.shape_inference.infer_shapes(mixed, strict_mode=True)
    types = {v.name: v.type.tensor_type.elem_type for v in
             list(checked.graph.value_info) + list(checked.graph.input) + list(checked.graph.output)}
    softmax_inputs = [n.input[0] for n in mixed.graph.node if n.op_type == "Softmax"]
    assert softmax_inputs and all(types.get(t) == onnx.TensorProto.FLOAT for t in softmax_inputs)
    # No FP32 tensor makes an FP16 round trip between two FP32 nodes (it would overflow or round).
    producer = {o: n for n in mixed.graph.node for o in n.output}
    for node in mixed.graph.node:
        if node.op_type == "Cast" and node.attribute[0].i == onnx.TensorProto.FLOAT:
            up = producer.get(node.input[0])
            if up is not None and up.op_type == "Cast" and up.attribute[0].i == onnx.TensorProto.FLOAT16:
                source = producer.get(up.input[0])
                assert source is None or source.name not in keep, f"round trip after {source.name}"
    conv_weights = {n.input[1] for n in mixed.graph.node if n.op_type == "Conv"}
    inits = {i.name: i.data_type for i in mixed.graph.initializer}
    assert any(inits.get(w) == onnx.TensorProto.FLOAT16 for w in conv_weights)
    assert {i.name: i.type.tensor_type.elem_type for i in mixed.graph.input} == {
        "visible": onnx.TensorProto.UINT8, "infrared": onnx.TensorProto.UINT8, "stretch": onnx.TensorProto.FLOAT}
    assert {o.name: o.type.tensor_type.elem_type for o in mixed.graph.output} == {
        "fused": onnx.TensorProto.UINT8, "range": onnx.TensorProto.FLOAT}


@pytest.mark.shared
def test_export_folds_every_weight_so_int8_quantizes_each_conv_per_channel(exported: Path, tmp_path: Path) -> None:
    from onnx import numpy_helper

    model = onnx.load(str(exported))
    inits = {i.name: i for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) > 60 and all(n.input[1] in inits for n in convs)
    # Per channel means one scale per output channel, taken from the weight itself; weights
    # quantized as activations (what a computed weight got) carry one calibrated scale.
    from occo_deploy.calibration import data as calib_data
    from occo_deploy.quantization.ranges import measure

    pair = calib_data.load_pair(calib_data.discover(PAIRS / "MSRS")[0], (48, 64))
    int8 = precision.to_int8(exported, measure(exported, [pair], "minmax", False), "u8s8")
    inits = {i.name: numpy_helper.to_array(i) for i in int8.graph.initializer}
    producer = {o: n for n in int8.graph.node for o in n.output}
    quantized = [n for n in int8.graph.node if n.op_type == "Conv" and n.input[1] in producer]
    assert len(quantized) == len(convs) - 1  # all but net.final
    for conv in quantized:
        dq = producer[conv.input[1]]
        weight, scale = inits[dq.input[0]], inits[dq.input[1]]
        assert dq.op_type == "DequantizeLinear" and weight.dtype == "int8", conv.name
        assert scale.shape == (weight.shape[0],), conv.name

    # An ONNX from an older export, with a weight computed at run time, is refused with the fix.
    first = convs[0]
    first.input[1], old = "computed_weight", first.input[1]
    model.graph.node.insert(0, onnx.helper.make_node("Identity", [old], ["computed_weight"]))
    onnx.save(model, tmp_path / "old.onnx")
    with pytest.raises(EngineError, match="re-export"):
        precision.to_int8(tmp_path / "old.onnx", {}, "u8s8")


def test_psnr_values() -> None:
    import numpy as np

    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    assert psnr(a, b) == float("inf")
    b[0, 0, 0] = 255  # MSE = 255^2 / 48 -> PSNR = 10 log10(48)
    assert psnr(a, b) == pytest.approx(16.812, abs=1e-3)


def test_auto_backend_falls_back_to_onnxruntime_and_says_why() -> None:
    pytest.importorskip("onnxruntime")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        spec, why = backends.builder_for("auto")
        assert spec.name == "onnxruntime" and re.search(r"TensorRT not usable here: .*pip install .*\[gpu\]'", why), why
    else:  # pragma: no cover - only on a TensorRT machine
        pytest.skip("tensorrt is installed here; the fallback is not exercised")


def test_tensorrt_builder_without_tensorrt_names_the_extra() -> None:
    pytest.importorskip("onnxruntime")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    reason = backends.get("tensorrt").make_builder().unavailable()
    assert reason and re.search(r"pip install -e '.*\[gpu\]'", reason), reason


def test_plan_compatibility_checks() -> None:
    sidecar = {"tensorrt": {"version": "10.13.3", "gpu": {"name": "Orin", "compute_capability": "8.7"}}}
    orin = {"name": "Orin", "compute_capability": "8.7"}
    check_plan_compatible(sidecar, "10.13.3", orin)
    with pytest.raises(EngineError, match=r"built with TensorRT 10\.13\.3, this is 11\.1\.0; rebuild"):
        check_plan_compatible(sidecar, "11.1.0", orin)
    with pytest.raises(EngineError, match=r"compute capability 8.7.*H100.*9.0.*rebuild"):
        check_plan_compatible(sidecar, "10.13.3", {"name": "H100", "compute_capability": "9.0"})
    with pytest.raises(EngineError, match="no sidecar"):
        check_plan_compatible(None, "10.13.3", orin)


def test_loading_a_plan_without_tensorrt_names_the_extra(tmp_path: Path) -> None:
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    plan = tmp_path / "occo_fp16_tensorrt.plan"
    plan.write_bytes(b"serialized engine bytes")
    (tmp_path / "occo_fp16_tensorrt.plan.json").write_text(json.dumps(
        {"format_version": 1, "kind": "engine", "format": "plan", "backend": "tensorrt", "provider": "tensorrt"}))
    with pytest.raises(MissingDependencyError, match=r"pip install -e '.*\[gpu\]'"):
        Fuser(plan)


@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="needs an NVIDIA GPU with TensorRT")
def test_real_tensorrt_build(exported: Path, tmp_path: Path) -> None:  # pragma: no cover - GPU machines only
    pytest.importorskip("tensorrt")
    from occo_deploy.engines.build import BuildRequest, build_engine
    from tests.conftest import PAIRS

    result = build_engine(BuildRequest(onnx=exported, precision="int8", backend="tensorrt",
                                       profile=Profile.from_options(shape="240x320"), output=tmp_path / "e.plan",
                                       calib_dir=PAIRS, calib_size=8))
    assert result.gate.passed


def test_tensorrt_parses_the_precision_onnx_on_10_as_on_11(tmp_path: Path) -> None:
    """Strongly typed everywhere: FP16 takes the mixed FP16 ONNX (10.x once took the FP32 one with flags
    and pinned layers by name prefix, which pinned the wrong ones)."""
    builder = backends.get("tensorrt").make_builder()
    fp32, fp16, int8 = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "c.onnx"
    assert builder.precision_input("fp16", fp32, fp16, int8) == fp16
    assert builder.precision_input("int8", fp32, fp16, int8) == int8
    assert builder.precision_input("fp32", fp32, fp16, int8) == fp32


def test_plan_io_must_be_the_contract() -> None:
    from occo_deploy.backends.tensorrt import check_io

    good = {"visible": ("input", "UINT8", 4), "infrared": ("input", "UINT8", 3), "fused": ("output", "UINT8", 4)}
    check_io(good)
    with pytest.raises(EngineError, match="'visible' is input FLOAT rank 4, expected input UINT8"):
        check_io({**good, "visible": ("input", "FLOAT", 4)})
    with pytest.raises(EngineError, match="no tensor 'fused'"):
        check_io({k: v for k, v in good.items() if k != "fused"})
    with pytest.raises(EngineError, match="'infrared' is output"):
        check_io({**good, "infrared": ("output", "UINT8", 3)})
    with pytest.raises(EngineError, match=r"lacks .*mask"):
        check_io({**good, "mask": ("input", "UINT8", 3)})
    # The stretch's steering: a plan has both or neither; without it, it runs per frame.
    assert check_io(good) is False
    steered = {**good, "stretch": ("input", "FLOAT", 2), "range": ("output", "FLOAT", 2)}
    assert check_io(steered) is True
    with pytest.raises(EngineError, match="no tensor 'range'"):
        check_io({k: v for k, v in steered.items() if k != "range"})
    with pytest.raises(EngineError, match="'stretch' is input UINT8 rank 2, expected input FLOAT"):
        check_io({**steered, "stretch": ("input", "UINT8", 2)})


def test_cuda_graphs_capture_only_after_a_plain_run_of_the_bound_shape() -> None:
    from occo_deploy.runtime.cuda_staged import GraphPlan

    plan = GraphPlan()
    assert plan.bound(0, (1, 480, 640)) is None
    assert plan.next(0) == "plain"  # trtexec: one plain enqueue after a shape change
    plan.ran_plain(0)
    assert plan.next(0) == "capture"
    plan.captured(0, "graph-A")
    assert plan.next(0) == "replay"
    # A new shape on the slot: the old graph is stale (handed back to be destroyed), plain run first.
    assert plan.bound(0, (1, 240, 320)) == "graph-A"
    assert plan.next(0) == "plain"
    plan.ran_plain(0)
    assert plan.next(0) == "capture"
    # A capture that fails leaves that slot and shape on plain enqueues, counted.
    plan.capture_failed(0)
    assert plan.next(0) == "plain" and plan.fallbacks == 1
    plan.ran_plain(0)
    assert plan.next(0) == "plain"
    # Other slots are independent; a freed slot hands back its graph.
    plan.bound(1, (1, 240, 320))
    plan.ran_plain(1)
    plan.captured(1, "graph-B")
    assert plan.forget(1) == "graph-B" and plan.next(1) == "plain"


def test_onnxruntime_cuda_graphs_get_one_id_per_binding() -> None:
    from occo_deploy.backends.onnxruntime_gpu import graph_id

    ids: dict = {}
    first = graph_id(ids, (0, (1, 480, 640), 100, 200, 300))
    assert first == 1  # 0 is ONNX Runtime's own
    assert graph_id(ids, (0, (1, 480, 640), 100, 200, 300)) == first  # replays its own capture
    second_slot = graph_id(ids, (1, (1, 480, 640), 400, 500, 600))
    regrown = graph_id(ids, (0, (1, 480, 640), 700, 800, 900))  # same slot, new addresses
    new_size = graph_id(ids, (0, (1, 240, 320), 100, 200, 300))
    assert len({first, second_slot, regrown, new_size}) == 4


def test_int8_scheme_follows_the_cpu() -> None:
    from occo_deploy.engines.precision import SCHEMES
    from occo_deploy.runtime.cpu import int8_saturates

    builder = backends.get("onnxruntime").make_builder()
    assert builder.int8_scheme == ("u8s8_7bit" if int8_saturates() else "u8s8")
    assert SCHEMES["u8s8_7bit"].reduce_range and not SCHEMES["u8s8"].reduce_range
    assert not SCHEMES["s8s8"].quantize_bias and SCHEMES["s8s8"].symmetric


@pytest.mark.shared
def test_tensorrt_int8_has_no_int32_dequantize_and_is_sorted(exported: Path) -> None:
    """IDequantizeLayer takes INT8/FP8/INT4/FP4 only; ONNX Runtime's quantizer makes INT32 biases by
    default, and appends some Q/DQ out of topological order (TensorRT's parser needs the order)."""
    from occo_deploy.calibration import data as calib_data
    from occo_deploy.quantization.ranges import measure

    pair = calib_data.load_pair(calib_data.discover(PAIRS / "MSRS")[0], (48, 64))
    model = precision.to_int8(exported, measure(exported, [pair], "minmax", True), "s8s8")
    onnx.checker.check_model(model)  # includes the topological order
    types = {i.name: i.data_type for i in model.graph.initializer}
    dq_inputs = [types.get(n.input[0]) for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert dq_inputs and onnx.TensorProto.INT32 not in dq_inputs
    assert {types[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"} == {onnx.TensorProto.INT8}
