"""Will this frame size fit in memory? An estimate per engine, checked before the first run of a size.

A 3840x2160 pair on ONNX Runtime FP32 once grew past the machine's 24 GB and was killed by the
kernel after minutes, with no message and no output. The network's activations grow with the
pixels, so a process's peak memory is close to a straight line in the pixel count; each CPU
backend's spec (``backends/*.py``, ``memory``) holds its lines per precision, measured by
``benchmarks/memory.py --fit`` (one fresh process per size, 640x480 to 1920x1080 or larger). Before a
frame size runs the first time, its estimate is compared with what the machine has free, and a size
that would not fit fails in a second with what it needs, what is free, and the ways out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from occo_deploy.errors import ShapeError, option

#: (up to pixels, base bytes, bytes per pixel): the process's peak resident memory for batches of
#: N x H x W = pixels, on one piece of a piecewise line.
Line = tuple[float, float, float]
#: Margin on the estimate: the fit's worst under-estimate on the measured sizes, rounded up.
MARGIN = 1.15


def current_rss() -> int:
    """This process's resident memory in bytes (Linux; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def available_bytes() -> int | None:
    """Memory the kernel can give without swapping (MemAvailable), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@dataclass(frozen=True)
class MemoryModel:
    """One engine's peak-memory line, and what to suggest when a size does not fit."""

    #: What the message calls the engine: "onnxruntime fp32".
    label: str
    lines: tuple[Line, ...]
    #: Another backend that needs far less, as a way out ("an OpenVINO engine (...)"), or None.
    leaner: str | None = None

    def estimate(self, pixels: int) -> int:
        """Estimated peak resident bytes of a process fusing batches of ``pixels`` (N x H x W)."""
        _, base, per_pixel = next((line for line in self.lines if pixels <= line[0]), self.lines[-1])
        return int((base + per_pixel * pixels) * MARGIN)

    def fitting_pixels(self, free: int) -> int:
        """The most pixels (N x H x W) whose estimate fits in ``free`` bytes."""
        best, low = 0.0, 0.0
        for upto, base, per_pixel in self.lines:
            pixels = min(upto, (free / MARGIN - base) / per_pixel)
            if pixels > low:  # within this piece's range of pixel counts
                best = max(best, pixels)
            low = upto
        return int(best)

    def check(self, n: int, h: int, w: int, free: int | None = None) -> None:
        """Raise ``ShapeError`` in time when fusing n x h x w batches would not fit in ``free`` bytes
        (default: what the machine has free now, plus what this process already holds)."""
        need = self.estimate(n * h * w)
        if free is None:
            available = available_bytes()
            if available is None:
                return
            free = available + current_rss()
        if need <= free:
            return
        # The longer side at which the batch would fit (the aspect kept, 5% spare for rounding), down
        # to a multiple of 16.
        scale = (self.fitting_pixels(free) / (n * h * w)) ** 0.5
        side = max(16, int(max(h, w) * scale * 0.95) // 16 * 16)
        ways = [f"{option('max_side', side)} (fuse smaller, scale back up)"]
        if self.leaner:
            ways.append(self.leaner)
        if n > 1:
            ways.append(f"fewer frames per batch ({option('batch', max(1, n // 2))})")
        raise ShapeError(f"fusing {n} x {w}x{h} with this {self.label} engine needs about {need / 1e9:.1f} GB; "
                         f"{free / 1e9:.1f} GB is free: use {', or '.join(ways)}")
