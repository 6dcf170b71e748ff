"""ONNX Runtime's own calibrators on given pairs: the reference occo-deploy's ranges are held to, by
``test_ranges.py`` (agreement) and ``benchmarks/calibration_speed.py`` (agreement and speed)."""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from occo_deploy.contract import STRETCH, frame_feeds
from occo_deploy.quantization import ranges


class OneFrame:
    """ONNX Runtime's calibration reader over one pair (a frame per collect_data, as builds fed it)."""

    def __init__(self, ir: np.ndarray, vis: np.ndarray) -> None:
        # Every export since the stretch's steering takes its rows: each frame over its own range.
        self._feed: dict[str, np.ndarray] | None = frame_feeds(vis[None], ir[None], [STRETCH])

    def get_next(self) -> dict[str, np.ndarray] | None:
        feed, self._feed = self._feed, None
        return feed


def onnxruntime_ranges(onnx_path: Path, pairs: list[Any], method: str, symmetric: bool, ops: Sequence[str]
                       ) -> ranges.Ranges:
    """Ranges of the inputs and outputs of ``ops``, as ONNX Runtime's calibrator for ``method`` sees them."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, create_calibrator
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(load_model_with_shape_infer(onnx_path), f"{tmp}/m.onnx")
        calibrator = create_calibrator(f"{tmp}/m.onnx", list(ops), augmented_model_path=f"{tmp}/a.onnx",
                                       calibrate_method={"minmax": CalibrationMethod.MinMax,
                                                         "percentile": CalibrationMethod.Percentile,
                                                         "entropy": CalibrationMethod.Entropy}[method],
                                       extra_options={"symmetric": symmetric})
        with contextlib.redirect_stdout(io.StringIO()):
            for ir, vis in pairs:  # one frame per call, as the build fed it
                calibrator.collect_data(OneFrame(ir, vis))
            tensors = calibrator.compute_data()
    return {k: (float(np.asarray(t.range_value[0]).min()), float(np.asarray(t.range_value[1]).max()))
            for k, t in tensors.data.items()}
