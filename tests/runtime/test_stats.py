from __future__ import annotations

import numpy as np
import pytest

from occo_deploy.runtime.stats import LatencyStats, summarize


def test_summary_values_against_numpy() -> None:
    durations = [0.010, 0.020, 0.030, 0.040, 0.100]
    s = summarize(durations)
    ms = np.array(durations) * 1e3
    assert s["count"] == 5
    assert s["mean_ms"] == pytest.approx(40.0)
    assert s["min_ms"] == pytest.approx(10.0) and s["max_ms"] == pytest.approx(100.0)
    assert s["p50_ms"] == pytest.approx(30.0)
    assert s["p90_ms"] == pytest.approx(np.percentile(ms, 90))  # 76 ms: linear between 40 and 100
    assert s["p99_ms"] == pytest.approx(97.6)


def test_stages_in_pipeline_order_and_unknown_stage_refused() -> None:
    stats = LatencyStats()
    stats.add("encode", 0.001)
    stats.add("decode", 0.002)
    stats.add("infer", 0.5)
    stats.count_frames(2)
    summary = stats.summary()
    assert list(summary["stages"]) == ["decode", "infer", "encode"]
    assert summary["frames"] == 2
    with pytest.raises(ValueError, match="unknown stage"):
        stats.add("inference", 1.0)


def test_timer_context_records_even_on_error() -> None:
    stats = LatencyStats()
    with pytest.raises(RuntimeError), stats.time("prepare"):
        raise RuntimeError("boom")
    assert stats.summary()["stages"]["prepare"]["count"] == 1


def test_a_window_keeps_the_last_calls_so_a_service_stays_flat() -> None:
    stats = LatencyStats(window=100)
    for k in range(1000):
        stats.add("infer", 1.0 if k < 900 else 0.001)  # slow at first, then fast
        stats.count_frames(1)
    summary = stats.summary()
    assert summary["frames"] == 1000 and summary["stages"]["infer"]["count"] == 100
    assert summary["stages"]["infer"]["max_ms"] == pytest.approx(1.0)  # the last 100 only
    assert LatencyStats().summary()["frames"] == 0
