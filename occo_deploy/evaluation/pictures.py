"""PNG pictures a person can look at: a labelled grid of fusions, a latency histogram. OpenCV only."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BG = (32, 32, 32)
_FG = (235, 235, 235)


def _cell(image: np.ndarray, height: int) -> np.ndarray:
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _label(width: int, text: str, height: int = 28) -> np.ndarray:
    strip = np.full((height, width, 3), _BG, np.uint8)
    scale = 0.5
    while scale > 0.25 and cv2.getTextSize(text, _FONT, scale, 1)[0][0] > width - 8:
        scale -= 0.05
    cv2.putText(strip, text, (4, height - 9), _FONT, scale, _FG, 1, cv2.LINE_AA)
    return strip


def grid(rows: Sequence[Sequence[np.ndarray]], columns: Sequence[str], row_labels: Sequence[str],
         cell_height: int = 240) -> np.ndarray:
    """One row per pair (its name above), one column per image (IR, visible, each engine's fusion)."""
    blocks = []
    for images, name in zip(rows, row_labels):
        cells = [np.vstack([_label(c.shape[1], f"{title}"), c]) for c, title in
                 zip((_cell(i, cell_height) for i in images), columns)]
        gap = np.full((cells[0].shape[0], 4, 3), _BG, np.uint8)
        body = np.hstack([x for c in cells for x in (c, gap)][:-1])
        blocks.append(np.vstack([_label(body.shape[1], name, 24), body]))
    width = max(b.shape[1] for b in blocks)
    padded = [np.pad(b, ((0, 6), (0, width - b.shape[1]), (0, 0)), constant_values=_BG[0]) for b in blocks]
    return np.vstack(padded)


def histogram(series: dict[str, Sequence[float]], bins: int = 30, size: tuple[int, int] = (720, 180)) -> np.ndarray:
    """One panel per engine: bars of how many calls took how many milliseconds, with the range labelled."""
    width, height = size
    panels = []
    for name, values in series.items():
        ms = np.asarray(values, np.float64)
        panel = np.full((height, width, 3), _BG, np.uint8)
        lo, hi = float(ms.min()), float(ms.max())
        counts, _ = np.histogram(ms, bins=bins, range=(lo, hi if hi > lo else lo + 1))
        top, bottom, left = 30, height - 26, 10
        bar_w = (width - 2 * left) / bins
        for k, c in enumerate(counts):
            h = int((bottom - top) * c / max(counts.max(), 1))
            x0 = int(left + k * bar_w)
            cv2.rectangle(panel, (x0, bottom - h), (int(x0 + bar_w) - 1, bottom), (90, 170, 240), -1)
        cv2.line(panel, (left, bottom), (width - left, bottom), _FG, 1)
        cv2.putText(panel, f"{name}: {ms.size} calls, p50 {np.median(ms):.1f} ms", (left, 20), _FONT, 0.5, _FG, 1,
                    cv2.LINE_AA)
        cv2.putText(panel, f"{lo:.1f} ms", (left, height - 8), _FONT, 0.4, _FG, 1, cv2.LINE_AA)
        text = f"{hi:.1f} ms"
        cv2.putText(panel, text, (width - left - cv2.getTextSize(text, _FONT, 0.4, 1)[0][0], height - 8), _FONT, 0.4,
                    _FG, 1, cv2.LINE_AA)
        panels.append(panel)
    return np.vstack(panels)
