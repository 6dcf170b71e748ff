"""Percentile and entropy ranges: our histogram counting against ONNX Runtime's own collector and
calibrators, on real frames and activations."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from occo_deploy.calibration import data
from occo_deploy.quantization import ranges
from occo_deploy.quantization.histograms import HistogramSet, thresholds
from occo_deploy.quantization.placement import calibration_tensors
from tests.calibration.onnxruntime_reference import onnxruntime_ranges
from tests.conftest import PAIRS


def _real_frames(count: int, hw: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    items = [i for i in data.discover(PAIRS) if i.name.startswith(("MSRS", "TNO"))][:count]
    return [data.load_pair(i, hw) for i in items]


def _onnxruntime_histograms(arrays: list[np.ndarray], absolute: bool, bins: int) -> dict:
    from onnxruntime.quantization.calibrate import HistogramCollector

    collector = HistogramCollector(method="percentile", symmetric=absolute, num_bins=bins, num_quantized_bins=128,
                                   percentile=99.999, scenario="same")
    with contextlib.redirect_stdout(io.StringIO()):
        for a in arrays:
            collector.collect({"t": [a]})
    return collector.histogram_dict


def _real_arrays() -> list[np.ndarray]:
    # Real image data, centred, then a frame reaching past the first range (the histogram grows) and
    # one entirely inside it (for |x|: values below the first edge, which both leave out).
    ir, vis = _real_frames(1, (96, 128))[0]
    base = (ir.astype(np.float32) - 100.0) / 17.0
    return [base, base * 2.6 + 0.3, base * 0.2, vis.astype(np.float32) / 40.0 - 1.0]


def _both_histograms(absolute: bool) -> tuple[tuple, tuple]:
    """Ours and ONNX Runtime's histogram entry for the same real arrays."""
    arrays = _real_arrays()
    ours = HistogramSet(2048, absolute=absolute)
    for a in arrays:
        ours.add("t", a)
    return ours.as_onnxruntime()["t"], _onnxruntime_histograms(arrays, absolute, 2048)["t"]


def test_signed_counts_and_growth_match_onnxruntime_collector() -> None:
    got, want = _both_histograms(absolute=False)
    assert len(got) == len(want) == 5 and got[0].shape == want[0].shape and got[0].sum() == want[0].sum()
    # float32 edges: a few values sit within a rounding error of an edge and may fall either side.
    assert np.abs(got[0] - want[0]).sum() <= 1e-4 * want[0].sum()
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6 * float(np.abs(want[1]).max()))
    assert [float(v) for v in got[2:]] == pytest.approx([float(v) for v in want[2:]], rel=1e-6)


def test_absolute_counts_and_growth_match_onnxruntime_collector() -> None:
    got, want = _both_histograms(absolute=True)
    assert len(got) == len(want) == 4 and got[0].shape == want[0].shape
    assert got[0].sum() == want[0].sum()  # the same values left out below the first edge
    # ONNX Runtime grows |x| bins with a float32 arange, whose edges drift from the exact multiples of
    # the stride ours keep (2e-5 relative at the top here): the same bins, up to that drift.
    width = float(want[1][1] - want[1][0])
    assert np.abs(got[1] - want[1]).max() <= 0.1 * width
    assert np.abs(np.cumsum(got[0]) - np.cumsum(want[0])).max() <= 1e-3 * want[0].sum()
    assert float(got[2]) == float(want[2]) and float(got[3]) == float(want[3])


def test_thresholds_come_from_onnxruntime_search() -> None:
    ir, _ = _real_frames(1, (96, 128))[0]
    values = ir.astype(np.float32) - 60.0
    h = HistogramSet(2048, absolute=False)
    h.add("t", values)
    (low, high), = thresholds(h, "percentile", False, 2048, 128, 99.999).values()
    # 99.999 % of 12288 values keep all but 0.12 values at each end: the range is the data's.
    assert low == pytest.approx(values.min(), abs=0.2) and high == pytest.approx(values.max(), abs=0.2)
    h = HistogramSet(2048, absolute=False)
    h.add("t", np.concatenate([values.ravel(), [1e4]]).astype(np.float32))  # one far outlier
    # 99.9 % cuts 0.05 % (6 values) at each end: the outlier is cut, the range ends near the data's.
    (_, high), = thresholds(h, "percentile", False, 2048, 128, 99.9).values()
    assert values.max() - 10 <= high < values.max() + 20  # within a bin of 2e4 / 2048


@pytest.mark.parametrize(("method", "symmetric"), [("minmax", False), ("minmax", True), ("percentile", False),
                                                  ("percentile", True), ("entropy", False)])
def test_ranges_match_onnxruntime_calibrators(exported: Path, method: str, symmetric: bool) -> None:
    pairs = _real_frames(3, (64, 96))
    done: list[int] = []
    ours = ranges.measure(exported, pairs, method, symmetric, lambda count, _total: done.append(count))
    theirs = onnxruntime_ranges(exported, pairs, method, symmetric, ops=["Conv"])
    assert done == [1, 2, 3]
    import onnx

    # Ours cover every tensor a placement may quantize; ONNX Runtime's calibrators, asked for the
    # convolutions, the convolutions' inputs and outputs, which must agree.
    assert set(ours) == set(calibration_tensors(onnx.load(str(exported)))) and set(theirs) < set(ours)
    if method == "minmax":  # the same reductions: the same numbers
        for name, want in theirs.items():
            np.testing.assert_allclose(ours[name], want, rtol=1e-6, err_msg=name)
        return
    # Thresholds are bin edges: equal up to the float32 drift of ONNX Runtime's grown edges (it
    # recomputes them in float32 as a histogram grows; ours stay exact multiples of the stride), well
    # inside one bin (1/1024 of the range for percentile's 2048 bins).
    for name in theirs:
        low, high = ours[name]
        span = max(abs(theirs[name][0]), abs(theirs[name][1]))
        assert abs(low - theirs[name][0]) <= 1e-3 * span and abs(high - theirs[name][1]) <= 1e-3 * span, name
