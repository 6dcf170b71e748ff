"""The exported ONNX: contract, sidecar, fidelity to the reference on every golden case."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from occo_deploy import demo
from occo_deploy.contract import frame_feeds
from occo_deploy.errors import CheckpointError, OutputExistsError
from occo_deploy.export.onnx_export import export_onnx
from occo_deploy.files import sha256_file
from occo_deploy.sidecar import sidecar_path
from tests.conftest import CHECKPOINT, bgr, golden_params, load_case


@pytest.fixture(scope="module")
def session(exported: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])


def test_io_contract_is_uint8_with_dynamic_batch_height_width(exported: Path) -> None:
    graph = onnx.load(str(exported)).graph

    def sig(values: list) -> dict:
        return {v.name: (v.type.tensor_type.elem_type,
                         [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values}

    u8 = onnx.TensorProto.UINT8
    inputs, outputs = sig(graph.input), sig(graph.output)
    assert set(inputs) == {"visible", "infrared", "stretch"} and set(outputs) == {"fused", "range"}
    vis_type, vis_dims = inputs["visible"]
    ir_type, ir_dims = inputs["infrared"]
    out_type, out_dims = outputs["fused"]
    assert vis_type == ir_type == out_type == u8
    assert vis_dims[3] == 3 and out_dims[3] == 3 and len(ir_dims) == 3
    assert all(isinstance(d, str) for d in vis_dims[:3] + ir_dims + out_dims[:3])  # symbolic, not fixed
    # The stretch's steering: N x 4 rows in, N x 2 ranges out, on the frames' batch dimension.
    f32 = onnx.TensorProto.FLOAT
    assert inputs["stretch"] == (f32, [vis_dims[0], 4]) and outputs["range"] == (f32, [vis_dims[0], 2])


def test_sidecar_records_sources_versions_and_verification(exported: Path) -> None:
    meta = json.loads(sidecar_path(exported).read_text())
    assert meta["kind"] == "onnx" and meta["precision"] == "fp32"
    assert meta["source"]["checkpoint_sha256"] == sha256_file(CHECKPOINT)
    assert meta["source"]["onnx_sha256"] == meta["sha256"] == sha256_file(exported)
    assert meta["model"]["opset"] == 18 and meta["model"]["nb_filter"] == [32, 64, 112, 160]
    assert {"torch", "onnx", "onnxruntime", "occo_deploy"} <= meta["versions"].keys()
    ver = meta["verification"]
    assert ver["value"] <= 1 and [1, 120, 160] in ver["inputs_nhw"] and [2, 37, 53] in ver["inputs_nhw"]  # conftest
    assert list(meta["io"]["inputs"]) == ["visible", "infrared", "stretch"]
    assert list(meta["io"]["outputs"]) == ["fused", "range"]


@pytest.mark.parametrize("name", golden_params(slow_above_pixels=200_000))
def test_onnx_runtime_matches_reference_within_one_grey_level(session: ort.InferenceSession, name: str) -> None:
    case = load_case(name)
    fused = session.run(["fused"], frame_feeds(bgr(case["vis"])[None], case["ir"][None], ["stretch"]))[0][0]
    diff = np.abs(fused[..., ::-1].astype(int) - case["fused"].astype(int))
    assert diff.max() <= 1, f"{name}: {diff.max()} grey levels off"
    assert (diff > 0).mean() < 0.01  # flips of a truncation are rare, not systematic


def test_existing_output_is_kept_without_force(tmp_path: Path) -> None:
    target = tmp_path / "occo.onnx"
    target.write_bytes(b"user's file")
    with pytest.raises(OutputExistsError, match="pass force=True"):  # named as Python callers pass it
        export_onnx(CHECKPOINT, target, verify_with=demo.first_pair())
    assert target.read_bytes() == b"user's file"


def test_bad_checkpoint_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00" * 100)
    out = tmp_path / "out" / "occo.onnx"
    with pytest.raises(CheckpointError):
        export_onnx(bad, out, verify_with=demo.first_pair())
    assert not out.exists() and not sidecar_path(out).exists()
    assert not any(p.name.endswith(".onnx") for p in tmp_path.rglob("*"))
