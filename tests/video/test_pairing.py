"""Pairing two streams in time: every frame is either paired or counted."""

from __future__ import annotations

import numpy as np

from occo_deploy.video.pairing import PairingReport, pair_streams
from occo_deploy.video.streams import Frame

_IMG = np.zeros((1, 1), np.uint8)


def _stream(n: int, fps: float, start_ms: float = 0.0) -> list[Frame]:
    return [Frame(k, start_ms + k * 1000.0 / fps, _IMG) for k in range(n)]


def _pairs(vis: list[Frame], ir: list[Frame], **kw: float) -> tuple[list[tuple[int, int]], PairingReport]:
    report = PairingReport()
    pairs = [(v.index, i.index) for v, i in pair_streams(vis, ir, report=report, **kw)]
    return pairs, report


def test_equal_rates_pair_by_index() -> None:
    pairs, rep = _pairs(_stream(5, 30), _stream(5, 30), tolerance_ms=1000 / 60)
    assert pairs == [(k, k) for k in range(5)]
    assert (rep.pairs, rep.vis_unpaired, rep.ir_unpaired) == (5, 0, 0)


def test_shorter_infrared_leaves_visible_frames_counted() -> None:
    pairs, rep = _pairs(_stream(6, 30), _stream(4, 30), tolerance_ms=1000 / 60)
    assert pairs == [(k, k) for k in range(4)]
    assert rep.vis_unpaired == 2 and rep.first_unpaired_vis == [4, 5] and rep.ir_unpaired == 0


def test_offset_shifts_the_infrared_stream() -> None:
    # IR lags by two frames: IR frame k+2 shows what visible frame k shows.
    pairs, rep = _pairs(_stream(5, 30), _stream(5, 30), tolerance_ms=1000 / 60, offset_ms=2000 / 30)
    assert pairs == [(0, 2), (1, 3), (2, 4)]
    assert rep.vis_unpaired == 2 and rep.ir_unpaired == 2


def test_slower_infrared_is_reused_at_the_visible_rate() -> None:
    pairs, rep = _pairs(_stream(6, 30), _stream(3, 15), tolerance_ms=1000 / 30)
    assert [v for v, _ in pairs] == list(range(6))
    assert [i for _, i in pairs] == [0, 0, 1, 1, 2, 2]
    assert rep.ir_reused == 3 and rep.ir_unpaired == 0 and rep.vis_unpaired == 0


def test_faster_infrared_skips_frames_and_counts_them() -> None:
    pairs, rep = _pairs(_stream(3, 30), _stream(6, 60), tolerance_ms=1000 / 60)
    assert pairs == [(0, 0), (1, 2), (2, 4)]
    assert rep.ir_unpaired == 3 and rep.vis_unpaired == 0


def test_infrared_starting_late_pairs_nearest_in_time() -> None:
    pairs, rep = _pairs(_stream(4, 30), _stream(4, 30, start_ms=10.0), tolerance_ms=1000 / 60)
    assert pairs == [(0, 0), (1, 1), (2, 2), (3, 3)]  # 10 ms apart, within half a frame
    # 40 ms late: visible frame 0 has nothing within half a frame, the rest pair one IR frame on.
    pairs, rep = _pairs(_stream(4, 30), _stream(4, 30, start_ms=40.0), tolerance_ms=1000 / 60)
    assert pairs == [(1, 0), (2, 1), (3, 2)]
    assert rep.vis_unpaired == 1 and rep.ir_unpaired == 1
