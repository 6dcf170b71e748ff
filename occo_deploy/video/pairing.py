"""Pairing two frame streams in time, counting every frame that found no partner."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from occo_deploy.video.streams import Frame


@dataclass
class PairingReport:
    """How the streams were paired; unpaired frames are counted, never dropped silently."""

    mode: str = "index"  # "index" (equal rates) or "timestamp"
    offset_ms: float = 0.0
    tolerance_ms: float = 0.0
    pairs: int = 0
    vis_unpaired: int = 0  # visible frames with no infrared frame near enough in time (not written)
    ir_unpaired: int = 0  # infrared frames no visible frame chose
    ir_reused: int = 0  # infrared frames paired with more than one visible frame (slower IR stream)
    first_unpaired_vis: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def pair_streams(
    vis: Iterable[Frame], ir: Iterable[Frame], *, tolerance_ms: float, offset_ms: float = 0.0,
    report: PairingReport | None = None,
) -> Iterator[tuple[Frame, Frame]]:
    """Yield (visible, infrared) pairs at the visible stream's pace.

    Each visible frame at time t takes the infrared frame whose time minus ``offset_ms`` is nearest to
    t (``offset_ms`` > 0: the infrared stream lags by that much), if it is within ``tolerance_ms``.
    Both streams must be in time order. Runs in one pass with O(1) frames held.
    """
    rep = report if report is not None else PairingReport()
    rep.offset_ms = offset_ms
    rep.tolerance_ms = tolerance_ms
    ir_iter = iter(ir)

    def aligned(frame: Frame) -> float:
        return frame.t_ms - offset_ms

    prev: Frame | None = None  # latest infrared frame at or before t
    nxt: Frame | None = next(ir_iter, None)  # first infrared frame after t
    uses: dict[int, int] = {}  # uses of prev and nxt, by index

    def retire(frame: Frame | None) -> None:
        if frame is None:
            return
        count = uses.pop(frame.index, 0)
        if count == 0:
            rep.ir_unpaired += 1
        elif count > 1:
            rep.ir_reused += 1

    for v in vis:
        while nxt is not None and aligned(nxt) <= v.t_ms:
            retire(prev)
            prev, nxt = nxt, next(ir_iter, None)
        candidates = [f for f in (prev, nxt) if f is not None]
        best = min(candidates, key=lambda f: abs(aligned(f) - v.t_ms), default=None)
        if best is not None and abs(aligned(best) - v.t_ms) <= tolerance_ms:
            uses[best.index] = uses.get(best.index, 0) + 1
            rep.pairs += 1
            yield v, best
        else:
            rep.vis_unpaired += 1
            if len(rep.first_unpaired_vis) < 10:
                rep.first_unpaired_vis.append(v.index)
    retire(prev)
    retire(nxt)
    for _ in ir_iter:
        rep.ir_unpaired += 1
