"""Will this frame size fit in memory? An estimate per engine, checked before the first run of a size.

A 3840x2160 pair on ONNX Runtime FP32 once grew past the machine's 24 GB and was killed by the
kernel after minutes, with no message and no output. The network's activations grow with the
pixels, so a process's peak memory is close to a straight line in the pixel count; the lines below
were measured per backend and precision by ``benchmarks/memory.py --fit`` (one fresh process per
size, 640x480 to 1920x1080 or larger). Before a frame size runs the first time, its estimate is
compared with what the machine has free, and a size that would not fit fails in a second with what
it needs, what is free, and the ways out.
"""

from __future__ import annotations

import os
from pathlib import Path

from occo_deploy.errors import ShapeError

#: (backend, precision) -> [(up to pixels, base bytes, bytes per pixel)]: the process's peak resident
#: memory for batches of N x H x W = pixels, piecewise (ONNX Runtime runs batches over 4 MP on an
#: arena-less session). Fitted by ``benchmarks/memory.py --fit`` on 640x480 to 3840x2160 on a 2-core
#: AMD EPYC (Zen 3), 2026-11-26; see benchmarks/README.md, "Memory". An engine not measured uses the
#: steepest line (conservative).
Line = tuple[float, float, float]
PEAK_MODEL: dict[tuple[str, str], list[Line]] = {
    ("onnxruntime", "fp32"): [(4_000_000, 63e6, 1659.0), (float("inf"), 111e6, 1380.0)],
    ("onnxruntime", "int8"): [(4_000_000, 28e6, 2071.0), (float("inf"), 323e6, 1626.0)],
    ("openvino", "int8"): [(float("inf"), 235e6, 727.0)],
}
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


def estimate_peak(backend: str, precision: str, pixels: int) -> int:
    """Estimated peak resident bytes of a process fusing batches of ``pixels`` (N x H x W) with this engine."""
    lines = PEAK_MODEL.get((backend, precision))
    if lines is None:
        lines = [max((line for ls in PEAK_MODEL.values() for line in ls), key=lambda c: c[2])]
    _, base, per_pixel = next((line for line in lines if pixels <= line[0]), lines[-1])
    return int((base + per_pixel * pixels) * MARGIN)


def check_fits(backend: str, precision: str, n: int, h: int, w: int) -> None:
    """Raise ``ShapeError`` in time when fusing n x h x w batches would not fit in free memory."""
    need = estimate_peak(backend, precision, n * h * w)
    free = available_bytes()
    if free is None:
        return
    have = free + current_rss()  # what this process already holds counts too
    if need <= have:
        return
    side = max(16, int(max(h, w) * (have / need) ** 0.5 * 0.9) // 16 * 16)
    ways = [f"--max-side {side} (fuse smaller, scale back up)"]
    if backend != "openvino":
        ways.append("an OpenVINO engine (build --backend openvino), which needs far less")
    if n > 1:
        ways.append("a smaller --batch")
    raise ShapeError(f"fusing {n} x {w}x{h} with this {backend} {precision} engine needs about {need / 1e9:.1f} GB; "
                     f"{have / 1e9:.1f} GB is free: use {', or '.join(ways)}")
