"""Checkpoint -> ONNX with the whole pipeline inside, verified against PyTorch, with a sidecar.

The only stage that needs torch (the ``export`` extra); it is imported here and nowhere in the runtime.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from occo_deploy.contract import FUSED, INFRARED, MIN_SIDE, RANGE, STRETCH, VISIBLE, own_range
from occo_deploy.errors import ExportError, first_line, require
from occo_deploy.files import atomic_output, check_writable, sha256_file
from occo_deploy.sidecar import Sidecar, new_sidecar, sidecar_path, write_sidecar

DEFAULT_OPSET = 18  # LayerNormalization is native from 17; TensorRT 10 and ONNX Runtime take 18
#: Largest |difference| in grey levels between ONNX Runtime and PyTorch that verification accepts:
#: float reordering can flip the final truncation of a few pixels by one level, never more.
MAX_GREY_DIFF = 1
#: Constant folding limit, in elements. The exporter's optimizer folds only inputs under 8192
#: elements, so the weights of the 112- and 160-channel stages (Unsqueeze or Slice of a Linear's
#: 112x112 or 224x112 weight) stayed computed at run time. The INT8 quantizer then took them for
#: activations (per-tensor, calibrated ranges) and OpenVINO ran those convolutions in FP32. Our
#: largest weight is 160x272x3x3 (392k elements); the limit leaves room for wider checkpoints.
FOLD_LIMIT = 1 << 24


@dataclass
class ExportResult:
    onnx: Path
    sidecar: Path
    info: Sidecar
    seconds: float


@contextlib.contextmanager
def _quiet() -> Any:
    """The torch exporter prints progress and warnings; library code must not print."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _export_graph(pipeline: Any, path: Path, opset: int) -> None:
    torch = require("torch", "export", "export")
    # Example batch of 2 and odd sizes: torch.export specialises dimensions whose example is 1, and
    # odd sizes exercise the decoder's reflection padding while tracing.
    visible = torch.zeros((2, 37, 53, 3), dtype=torch.uint8)
    infrared = torch.zeros((2, 37, 53), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1)
    height = torch.export.Dim("height", min=MIN_SIDE)
    width = torch.export.Dim("width", min=MIN_SIDE)
    dims = {0: batch, 1: height, 2: width}
    if pipeline.frame_only:  # the I/O of exports made before the steering (what tests of old engines need)
        args: tuple[Any, ...] = (visible, infrared)
        names, outputs, shapes = [VISIBLE, INFRARED], [FUSED], {"visible": dims, "infrared": dims}
    else:
        args = (visible, infrared, torch.from_numpy(own_range(2)))
        names, outputs = [VISIBLE, INFRARED, STRETCH], [FUSED, RANGE]
        shapes = {"visible": dims, "infrared": dims, "stretch": {0: batch}}
    with _quiet():
        program = torch.onnx.export(
            pipeline,
            args,
            dynamo=True,
            input_names=names,
            output_names=outputs,
            dynamic_shapes=shapes,
            opset_version=opset,
            external_data=False,
        )
        fold_weights(program.model)
        program.save(str(path))
    import onnx

    model = onnx.load(str(path))
    cast_inputs_first(model)
    onnx.save(model, str(path))


def cast_inputs_first(model: Any) -> None:
    """Make every uint8 input feed Casts only (an ``onnx.ModelProto``, in place).

    TensorRT takes UINT8 only as a network input converted at once to float (NvInferRuntimeBase.h,
    onnx-tensorrt's operator matrix); the pipeline casts first, but the exporter reads the symbolic
    sizes with Shape nodes on the input itself. The Cast's output has the same shape, so they read it.
    """
    import onnx

    graph = model.graph
    for value in graph.input:
        if value.type.tensor_type.elem_type != onnx.TensorProto.UINT8:
            continue
        users = [n for n in graph.node if value.name in n.input]
        casts = [n for n in users if n.op_type == "Cast"]
        if not casts:
            raise ExportError(f"the exported graph uses input '{value.name}' without casting it; report this")
        for node in users:
            if node.op_type == "Shape":
                node.input[0] = casts[0].output[0]
            elif node.op_type != "Cast":
                raise ExportError(f"the exported graph reads uint8 input '{value.name}' in {node.op_type} "
                                  f"node {node.name} before casting it; report this")
        # The Casts read only the input; first in the list keeps the graph topologically sorted.
        others = [n for n in graph.node if n not in casts]
        del graph.node[:]
        graph.node.extend(casts + others)


def fold_weights(model: Any) -> None:
    """Fold every subgraph that depends on weights only (an ``onnx_ir`` model, in place)."""
    import onnxscript.optimizer

    onnxscript.optimizer.optimize(model, input_size_limit=FOLD_LIMIT, output_size_limit=FOLD_LIMIT)


def _verify(pipeline: Any, path: Path, pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Run ONNX Runtime and PyTorch on real pairs; the fused frames may differ by MAX_GREY_DIFF at most.

    Each pair runs stretched over its own range (the reference) and once more over a held range
    narrower than its own, so the roll-offs are verified too."""
    import onnxruntime as ort

    torch = require("torch", "export", "export")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0
    differing = 0
    total = 0
    checked = []
    with torch.no_grad():
        for ir, vis in pairs:
            feeds = {VISIBLE: np.ascontiguousarray(vis), INFRARED: np.ascontiguousarray(ir),
                     STRETCH: own_range(len(ir))}
            got, own = session.run([FUSED, RANGE], feeds)
            # Then held 10% inside its own range at both ends, so both roll-offs run.
            inset = 0.1 * (own[:, 1:2] - own[:, 0:1])
            held = np.concatenate([own[:, 0:1] + inset, own[:, 1:2] - inset, np.full_like(inset, 0.4),
                                   np.full_like(inset, 0.6)], axis=1).astype(np.float32)
            for stretch in (None, held):
                if stretch is not None:
                    feeds[STRETCH] = stretch
                    got = session.run([FUSED], feeds)[0]
                want = pipeline(*(torch.from_numpy(feeds[k]) for k in (VISIBLE, INFRARED, STRETCH)))[0].numpy()
                worst, differing, total = _compare(got, want, worst, differing, total)
                checked.append(list(feeds[VISIBLE].shape[:3]))
    result = {
        "reference": "pytorch eager (same checkpoint)",
        "runtime": f"onnxruntime {ort.__version__} CPU",
        "inputs_nhw": checked,
        "metric": "max |fused - reference| in grey levels",
        "value": worst,
        "pixels_differing_fraction": differing / total,
    }
    if worst > MAX_GREY_DIFF:
        raise ExportError(
            f"exported graph differs from PyTorch by {worst} grey levels (at most {MAX_GREY_DIFF} expected); "
            "report this with the checkpoint and versions"
        )
    return result


def _compare(got: np.ndarray, want: np.ndarray, worst: int, differing: int, total: int) -> tuple[int, int, int]:
    """The running worst difference, differing pixels and pixels, with one more batch compared."""
    if got.shape != want.shape or got.dtype != np.uint8:
        raise ExportError(f"exported graph returned {got.dtype} {got.shape}, PyTorch {want.shape}")
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    return max(worst, int(diff.max())), differing + int((diff > 0).sum()), total + diff.size


def _verification_pairs(frames: tuple[np.ndarray, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The real pair at full size (batch 1), and a batch of two odd-sized crops of it."""
    ir, vis = frames
    crop_a = (ir[:37, :53], vis[:37, :53])
    crop_b = (ir[-37:, -53:], vis[-37:, -53:])
    return [
        (ir[None], vis[None]),
        (np.stack([crop_a[0], crop_b[0]]), np.stack([crop_a[1], crop_b[1]])),
    ]


def export_onnx(
    checkpoint: str | Path,
    output: str | Path,
    *,
    verify_with: tuple[np.ndarray, np.ndarray],
    force: bool = False,
    opset: int = DEFAULT_OPSET,
    trusted: bool = False,
) -> ExportResult:
    """Export ``checkpoint`` to ``output`` (+ ``output.json``), verified on ``verify_with`` = (ir, vis).

    ``verify_with`` is one real pair in contract form (gray H x W infrared, BGR H x W x 3 visible),
    at least 37 x 53. Nothing is written unless export and verification both succeed.
    """
    start = time.perf_counter()
    require("torch", "export", "export")
    require("onnxscript", "export", "export")
    from occo_deploy.model.checkpoint import load_model
    from occo_deploy.model.pipeline import FusionPipeline

    output = Path(output)
    meta = sidecar_path(output)
    check_writable(output, force)
    check_writable(meta, force)
    ir, vis = verify_with
    if ir.shape[:2] != vis.shape[:2] or ir.shape[0] < 37 or ir.shape[1] < 53:
        raise ExportError(f"verification pair must be one size, at least 37x53 (got {ir.shape} and {vis.shape})")

    model = load_model(checkpoint, trusted=trusted)
    pipeline = FusionPipeline(model).eval()
    with atomic_output(output, force) as tmp:
        try:
            _export_graph(pipeline, tmp, opset)
        except ExportError:
            raise
        except Exception as exc:  # the exporter raises many private error types
            raise ExportError(f"torch.onnx.export failed: {first_line(exc)[:200]}") from exc
        verification = _verify(pipeline, tmp, _verification_pairs((ir, vis)))
        info = _sidecar(checkpoint, tmp, opset, model.widths, verification)
    write_sidecar(output, info, force=force)
    return ExportResult(output, meta, info, time.perf_counter() - start)


def _sidecar(checkpoint: str | Path, onnx_path: Path, opset: int, widths: tuple[int, ...],
             verification: dict[str, Any]) -> Sidecar:
    import onnx
    import onnxruntime
    import onnxscript
    import torch

    info = new_sidecar(kind="onnx", fmt="onnx", precision="fp32", backend=None)
    info["shapes"] = {"dynamic": True, "batch": [1, None], "height": [MIN_SIDE, None], "width": [MIN_SIDE, None]}
    info["model"] = {"network": "occo", "nb_filter": list(widths), "opset": opset}
    onnx_sha256 = sha256_file(onnx_path)
    info["source"] = {"checkpoint": str(Path(checkpoint).absolute()), "checkpoint_sha256": sha256_file(checkpoint),
                      "onnx_sha256": onnx_sha256}
    info["versions"].update(
        {"torch": torch.__version__, "onnx": onnx.__version__, "onnxscript": onnxscript.__version__,
         "onnxruntime": onnxruntime.__version__, "exporter": "torch.onnx.export(dynamo=True)"}
    )
    info["verification"] = verification
    info["sha256"] = onnx_sha256  # the artifact's own hash, checked when loading
    return info
