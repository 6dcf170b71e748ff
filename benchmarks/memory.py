#!/usr/bin/env python3
"""Peak memory per frame size and engine, each measured in a fresh process.

    python benchmarks/memory.py [--engine E ...] [--sizes 640x480,1280x1024,1920x1080,3840x2160]
                                [--limit-gib 20] [--fit]

For each engine and size, a child process opens a ``Fuser``, records its resident memory, fuses one
real MSRS pair scaled to the size, and reports its peak resident memory (``ru_maxrss``) and the
time. The child runs under an address-space limit (``--limit-gib``), so a size that would exhaust
the machine fails in the child instead of waking the kernel's OOM killer. ``--fit`` prints, per
engine, the least-squares line peak = base + bytes_per_pixel x pixels over the sizes that ran:
the coefficients each CPU backend's spec (``occo_deploy/backends/*.py``, ``memory``) keeps to refuse a
frame size that will not fit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import cv2
sys.path.insert(0, sys.argv[4])
limit = int(float(sys.argv[3]) * (1 << 30))
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from occo_deploy.fusing.fuser import Fuser
from occo_deploy.runtime.memory import current_rss
w, h = (int(v) for v in sys.argv[2].split("x"))
pairs = Path(sys.argv[4]).parent / "shared/data/pairs/MSRS"
ir = cv2.resize(cv2.imread(str(pairs / "ir/00537D.png"), cv2.IMREAD_GRAYSCALE), (w, h))
vis = cv2.resize(cv2.imread(str(pairs / "vi/00537D.png")), (w, h))
out = {}
try:
    with Fuser(sys.argv[1], check_memory=False) as fuser:
        out["loaded_rss"] = current_rss()
        start = time.perf_counter()
        fuser.fuse(ir, vis)
        out["seconds"] = time.perf_counter() - start
        out["engine"] = f"{fuser.info()['backend']} {fuser.info().get('precision')}"
except (MemoryError, Exception) as exc:
    out["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(out))
"""


def measure(engine: Path, size: str, limit_gib: float) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(engine), size, str(limit_gib), str(ROOT)],
                          capture_output=True, text=True, timeout=1800)
    line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "{}"
    result = json.loads(line) if line.startswith("{") else {"error": f"child died ({proc.returncode})"}
    w, h = (int(v) for v in size.split("x"))
    return {"engine_path": str(engine), "size": size, "pixels": w * h, **result}


def fit(rows: list[dict[str, Any]]) -> tuple[float, float] | None:
    import numpy as np

    ok = [r for r in rows if "error" not in r]
    if len(ok) < 2:
        return None
    x = np.array([r["pixels"] for r in ok], float)
    y = np.array([r["peak_rss"] for r in ok], float)
    slope, base = np.polyfit(x, y, 1)
    return float(base), float(slope)


def main() -> int:
    from occo_deploy.runtime.cpu import cpu_description

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", type=Path, action="append")
    ap.add_argument("--sizes", default="640x480,1280x1024,1920x1080,3840x2160")
    ap.add_argument("--limit-gib", type=float, default=20.0)
    ap.add_argument("--fit", action="store_true")
    args = ap.parse_args()
    engines = args.engine or [ROOT / "export" / "occo.onnx"]
    print(f"CPU: {cpu_description()}; peak resident memory of one fresh process per run "
          f"(limit {args.limit_gib:g} GiB)\n")
    print("| engine | size | loaded GB | peak GB | s per frame | note |")
    print("|---|---|---|---|---|---|")
    by_engine: dict[str, list[dict[str, Any]]] = {}
    for engine in engines:
        for size in args.sizes.split(","):
            r = measure(engine, size, args.limit_gib)
            by_engine.setdefault(str(engine), []).append(r)
            loaded = f"{r['loaded_rss'] / 1e9:.2f}" if "loaded_rss" in r else "-"
            secs = f"{r['seconds']:.1f}" if "seconds" in r else "-"
            print(f"| {r.get('engine', engine.name)} | {size} | {loaded} | {r['peak_rss'] / 1e9:.2f} | {secs} | "
                  f"{r.get('error', '')} |", flush=True)
    if args.fit:
        from occo_deploy.backends.onnxruntime_cpu import LOW_MEMORY_PIXELS

        print()
        for engine, rows in by_engine.items():
            # ONNX Runtime runs large batches on an arena-less session: a line of its own.
            groups = {"": rows}
            if any("onnxruntime" in r.get("engine", "") for r in rows):
                groups = {" (<= 4 MP)": [r for r in rows if r["pixels"] <= LOW_MEMORY_PIXELS],
                          " (> 4 MP)": [r for r in rows if r["pixels"] > LOW_MEMORY_PIXELS]}
            for label, group in groups.items():
                coeffs = fit(group)
                if coeffs:
                    print(f"{engine}{label}: peak = {coeffs[0] / 1e6:.0f} MB + {coeffs[1]:.0f} bytes x pixels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
