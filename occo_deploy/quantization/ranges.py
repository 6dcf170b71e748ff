"""Activation ranges for INT8: measured on the FP32 graph, cached by what they depend on.

``minmax`` is ONNX Runtime's calibrator (its ReduceMin/ReduceMax run inside the graph, as fast as
inference). ``percentile`` and ``entropy`` count histograms here (``histograms``: ONNX Runtime's
collector spent most of the time in numpy) and leave the threshold search to ONNX Runtime.

The cache is one JSON file whose key is the FP32 ONNX hash, the calibration-set hash (contents,
frame choice, preprocessing size) and the method. A build with the same key reuses the ranges; a
changed key is reported and the ranges are measured again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from occo_deploy.contract import frame_feeds
from occo_deploy.errors import InputError
from occo_deploy.files import write_json_atomic
from occo_deploy.progress import Progress
from occo_deploy.quantization.placement import calibration_tensors

METHODS = ("minmax", "entropy", "percentile")
#: 2: ranges cover every tensor a placement may quantize (``placement.calibration_tensors``): the
#: residual Adds' shortcuts and the matrix products' inputs joined the convolutions' inputs and outputs.
CACHE_VERSION = 2

Ranges = dict[str, tuple[float, float]]


#: ONNX Runtime's defaults for its histogram calibrators (create_calibrator), kept so that ranges
#: measured before the histograms were counted here mean the same.
HISTOGRAM_BINS = {"percentile": 2048, "entropy": 128}
QUANTIZED_BINS = 128
PERCENTILE = 99.999


def measure(onnx_path: Path, pairs: Iterable[tuple[np.ndarray, np.ndarray]], method: str, symmetric: bool,
            progress: Progress | None = None, total: int | None = None) -> Ranges:
    """Run the FP32 graph on ``pairs`` and return {tensor: (low, high)} for every activation a placement
    may quantize (``placement.calibration_tensors``); ``progress(frames done, total)`` after each frame."""
    if method not in METHODS:
        raise InputError(f"unknown calibration method {method!r}; use one of {', '.join(METHODS)}")
    if method == "minmax":
        return _measure_minmax(onnx_path, pairs, symmetric, progress, total)
    return _measure_histograms(onnx_path, pairs, method, symmetric, progress, total)


def _measure_histograms(onnx_path: Path, pairs: Iterable[tuple[np.ndarray, np.ndarray]], method: str,
                        symmetric: bool, progress: Progress | None, total: int | None) -> Ranges:
    import onnx
    import onnxruntime as ort

    from occo_deploy.quantization.histograms import HistogramSet, thresholds

    model = onnx.load(str(onnx_path))
    names = calibration_tensors(model)
    outputs = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                              for n in names if n not in outputs)
    options = ort.SessionOptions()
    # As ONNX Runtime's calibrators run the graph: no fusions, so each tensor is the FP32 graph's own.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    del model
    # Percentile with symmetric ranges histograms |x|, every other case the signed values.
    histograms = HistogramSet(HISTOGRAM_BINS[method], absolute=method == "percentile" and symmetric)
    count = 0
    for ir, vis in pairs:
        values = session.run(names, frame_feeds(vis[None], ir[None], inputs))
        for name, value in zip(names, values):
            histograms.add(name, value)
        del values
        count += 1
        if progress:
            progress(count, total)
    if count == 0:
        raise InputError("no calibration frames to measure ranges on")
    return thresholds(histograms, method, symmetric, HISTOGRAM_BINS[method], QUANTIZED_BINS, PERCENTILE)


def _measure_minmax(onnx_path: Path, pairs: Iterable[tuple[np.ndarray, np.ndarray]], symmetric: bool,
                    progress: Progress | None, total: int | None) -> Ranges:
    """Each tensor's lowest and highest value over the frames, reduced inside the graph (ReduceMin and
    ReduceMax on every calibrated tensor, as ONNX Runtime's MinMax calibrator measures them: the same
    numbers, for every tensor a placement may quantize)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    names = calibration_tensors(model)
    reduced = []
    for k, name in enumerate(names):
        for op in ("ReduceMin", "ReduceMax"):
            out = f"occo_calib_{k}_{op}"
            model.graph.node.append(onnx.helper.make_node(op, [name], [out], keepdims=0, name=out))
            model.graph.output.append(onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, []))
            reduced.append(out)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    del model
    low = np.full(len(names), np.inf)
    high = np.full(len(names), -np.inf)
    count = 0
    for ir, vis in pairs:
        values = np.array(session.run(reduced, frame_feeds(vis[None], ir[None], inputs)), np.float64)
        low = np.minimum(low, values[0::2])
        high = np.maximum(high, values[1::2])
        count += 1
        if progress:
            progress(count, total)
    if count == 0:
        raise InputError("no calibration frames to measure ranges on")
    if symmetric:
        amax = np.maximum(np.abs(low), np.abs(high))
        low, high = -amax, amax
    return {name: (float(np.float32(lo)), float(np.float32(hi))) for name, lo, hi in zip(names, low, high)}


@dataclass
class CacheLookup:
    ranges: Ranges | None
    message: str  # what happened, for the user


def cache_key(onnx_sha256: str, set_sha256: str, method: str, symmetric: bool) -> dict[str, Any]:
    return {"cache_version": CACHE_VERSION, "onnx_sha256": onnx_sha256, "calibration_set_sha256": set_sha256,
            "method": method, "symmetric": symmetric}


_WHAT = {"onnx_sha256": "the ONNX model", "calibration_set_sha256": "the calibration set",
         "method": "the calibration method", "symmetric": "the quantization scheme",
         "cache_version": "the cache format"}


def load_cache(path: Path, key: dict[str, Any]) -> CacheLookup:
    """The cached ranges when ``path`` holds them for exactly ``key``; else None and why."""
    if not path.is_file():
        return CacheLookup(None, f"no calibration cache at {path}; measuring ranges")
    try:
        data = json.loads(path.read_text())
        stored = data["key"]
        ranges = {k: (float(v[0]), float(v[1])) for k, v in data["ranges"].items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return CacheLookup(None, f"calibration cache {path} is unreadable; measuring ranges again")
    changed = [_WHAT.get(k, k) for k in key if stored.get(k) != key[k]]
    if changed:
        return CacheLookup(None, f"calibration cache {path} is stale ({', '.join(changed)} changed); "
                                 "measuring ranges again")
    return CacheLookup(ranges, f"reusing cached calibration ranges from {path}")


def save_cache(path: Path, key: dict[str, Any], ranges: Ranges) -> None:
    write_json_atomic(path, {"key": key, "ranges": {k: [lo, hi] for k, (lo, hi) in sorted(ranges.items())}},
                      force=True)
