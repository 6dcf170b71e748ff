"""Activation ranges for INT8: measured on the FP32 graph, cached by what they depend on.

``minmax`` is ONNX Runtime's calibrator (its ReduceMin/ReduceMax run inside the graph, as fast as
inference). ``percentile`` and ``entropy`` count histograms here (``histograms``: ONNX Runtime's
collector spent most of the time in numpy) and leave the threshold search to ONNX Runtime.

The cache is one JSON file whose key is the FP32 ONNX hash, the calibration-set hash (contents,
frame choice, preprocessing size) and the method. A build with the same key reuses the ranges; a
changed key is reported and the ranges are measured again.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from occo_deploy.contract import INFRARED, VISIBLE
from occo_deploy.errors import InputError
from occo_deploy.files import write_json_atomic
from occo_deploy.progress import Progress

METHODS = ("minmax", "entropy", "percentile")
#: Node types whose inputs get Q/DQ: the convolutions, 99% of the arithmetic. The matrix products
#: are the attention's (two activations, a few % of the arithmetic) and the channel gates' tiny MLP:
#: quantized, they cost fidelity (worst MSRS frame 44.3 vs 46.2 dB on OpenVINO) and gained nothing
#: (OpenVINO ran the u8 x u8 products in FP32, and their Q/DQ pinned layout reorders around them).
QUANTIZED_OPS = ("Conv",)
CACHE_VERSION = 1

Ranges = dict[str, tuple[float, float]]


class _OneSample:
    """A CalibrationDataReader over one pair, so that progress is reported frame by frame."""

    def __init__(self, ir: np.ndarray, vis: np.ndarray) -> None:
        self._feed: dict[str, np.ndarray] | None = {VISIBLE: vis[None], INFRARED: ir[None]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        feed, self._feed = self._feed, None
        return feed


#: ONNX Runtime's defaults for its histogram calibrators (create_calibrator), kept so that ranges
#: measured before the histograms were counted here mean the same.
HISTOGRAM_BINS = {"percentile": 2048, "entropy": 128}
QUANTIZED_BINS = 128
PERCENTILE = 99.999


def calibrated_tensors(model: Any) -> list[str]:
    """The activations in and out of the quantized ops, as ONNX Runtime's calibrators pick them: its
    quantizer asks for every one (OpenVINO's scheme puts Q/DQ on the outputs too)."""
    constants = {i.name for i in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    names = [t for n in model.graph.node if n.op_type in QUANTIZED_OPS for t in (n.input[0], n.output[0])
             if t not in constants]
    return list(dict.fromkeys(names))


def measure(onnx_path: Path, pairs: Iterable[tuple[np.ndarray, np.ndarray]], method: str, symmetric: bool,
            progress: Progress | None = None, total: int | None = None) -> Ranges:
    """Run the FP32 graph on ``pairs`` and return {tensor: (low, high)} for every activation into or
    out of a quantized op; ``progress(frames done, total)`` after each frame."""
    if method not in METHODS:
        raise InputError(f"unknown calibration method {method!r}; use one of {', '.join(METHODS)}")
    if method == "minmax":
        return _measure_minmax(onnx_path, pairs, symmetric, progress, total)
    return _measure_histograms(onnx_path, pairs, method, symmetric, progress, total)


def _measure_histograms(onnx_path: Path, pairs: Iterable[tuple[np.ndarray, np.ndarray]], method: str,
                        symmetric: bool, progress: Progress | None, total: int | None) -> Ranges:
    import onnx
    import onnxruntime as ort

    from occo_deploy.calibration.histograms import HistogramSet, thresholds

    model = onnx.load(str(onnx_path))
    names = calibrated_tensors(model)
    outputs = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                              for n in names if n not in outputs)
    options = ort.SessionOptions()
    # As ONNX Runtime's calibrators run the graph: no fusions, so each tensor is the FP32 graph's own.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    del model
    # Percentile with symmetric ranges histograms |x|, every other case the signed values.
    histograms = HistogramSet(HISTOGRAM_BINS[method], absolute=method == "percentile" and symmetric)
    count = 0
    for ir, vis in pairs:
        values = session.run(names, {VISIBLE: vis[None], INFRARED: ir[None]})
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
    from onnxruntime.quantization import CalibrationMethod, create_calibrator
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

    with tempfile.TemporaryDirectory(prefix="occo-calib-") as tmp:
        model = load_model_with_shape_infer(onnx_path)
        prepared = Path(tmp) / "model.onnx"
        import onnx

        onnx.save(model, prepared)
        options: dict[str, Any] = {"symmetric": symmetric}
        calibrator = create_calibrator(prepared, list(QUANTIZED_OPS), augmented_model_path=str(Path(tmp) / "aug.onnx"),
                                       calibrate_method=CalibrationMethod.MinMax, extra_options=options)
        count = 0
        for ir, vis in pairs:
            with contextlib.redirect_stdout(io.StringIO()):
                calibrator.collect_data(_OneSample(ir, vis))
            count += 1
            if progress:
                progress(count, total)
        if count == 0:
            raise InputError("no calibration frames to measure ranges on")
        with contextlib.redirect_stdout(io.StringIO()):
            data = calibrator.compute_data()
    return {name: (float(np.asarray(t.range_value[0]).min()), float(np.asarray(t.range_value[1]).max()))
            for name, t in data.data.items()}


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
