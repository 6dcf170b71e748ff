#!/usr/bin/env python3
"""ONNX Runtime CUDA settings, A/B in one run on a lent GPU: what ``--provider cuda`` should default to.

The H100 run of 2026-11-26 gave 86 fps for the FP32 export at 640x480 batch 1, and the mixed FP16
ONNX was slower (0.9x). This script measures, on the same real frames and in one process:

* FP32 with ONNX Runtime's defaults (the baseline every ratio is against);
* cuDNN's exhaustive convolution search (``cudnn_conv_algo_search=EXHAUSTIVE``);
* channels-last kernels (``prefer_nhwc=1``) and both together;
* the mixed FP16 ONNX TensorRT parses (``build --fp16 --backend tensorrt --onnx-only``), and the
  same with fewer FP32 islands (``--fp16-lean``: BatchNorm, Resize and max-pooling in FP16, so fewer
  full-resolution Casts), each with the best FP32 options;
* ONNX Runtime's CUDA graph on the best variant;
* batch 1, 4 and 8 for the baseline and the best.

Each row: fps (pipelined ``Fuser.fuse_stream``, one batch in flight as ``--provider cuda`` runs),
ratio to the baseline, and worst PSNR of three frames against the FP32 export on ONNX Runtime's CPU
provider. The issue's target: >= 3x the baseline at 640x480 and >= 40 dB.

Prepare here (CPU), then carry ``export/`` and ``engines/`` with onnxruntime-gpu (see DEVELOPERS.md):

    occo-deploy build --fp16 --backend tensorrt --onnx-only --shape 480x640
    python benchmarks/gpu_ort_cuda.py --prepare-lean engines/occo_fp16_tensorrt_1x480x640.onnx
    # on the GPU machine:
    PYTHONPATH=/tmp/ortsite:. python benchmarks/gpu_ort_cuda.py --out "$OUT" \\
        --fp16 engines/occo_fp16_tensorrt_1x480x640.onnx --fp16-lean engines/occo_fp16_lean.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXHAUSTIVE = {"cudnn_conv_algo_search": "EXHAUSTIVE"}
NHWC = {"prefer_nhwc": "1"}


def frames(hw: tuple[int, int] = (480, 640), count: int = 20) -> list[tuple[np.ndarray, np.ndarray]]:
    from occo_deploy import demo
    from occo_deploy.calibration.data import fit

    return [(fit(ir, hw), fit(vis, hw)) for ir, vis in demo.clip_pairs(count)]


def measure(onnx: Path, options: dict[str, str], pairs: list[tuple[np.ndarray, np.ndarray]],
            want: list[np.ndarray], batch: int, frames_n: int, graph: bool = False) -> dict[str, Any]:
    from occo_deploy.engines.gate import psnr
    from occo_deploy.fusing.fuser import Fuser

    fuser = Fuser(onnx, provider="cuda", in_flight=1, batch=batch, cuda_graph=graph, provider_options=options)
    try:
        start = time.perf_counter()
        got = [fuser.fuse(ir, vis) for ir, vis in pairs[:3]]
        first_s = time.perf_counter() - start
        # A whole number of batches: a short last batch is a new shape, and cuDNN's algorithm search
        # for it landed inside the timed loop (the H200 run of 2026-11-27 read 0.32x at batch 8).
        frames_n = -(-frames_n // batch) * batch
        items = [(k, *pairs[k % len(pairs)]) for k in range(frames_n)]
        for _ in fuser.fuse_stream(iter(items[: 2 * batch]), batch):
            pass
        start = time.perf_counter()
        count = sum(1 for _ in fuser.fuse_stream(iter(items), batch))
        fps = count / (time.perf_counter() - start)
    finally:
        fuser.close()
    return {"fps": fps, "first_s": first_s, "psnr_min": min(psnr(g, w) for g, w in zip(got, want))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--onnx", type=Path, default=ROOT / "export" / "occo.onnx")
    ap.add_argument("--fp16", type=Path, help="mixed FP16 ONNX (build --fp16 --backend tensorrt --onnx-only)")
    ap.add_argument("--fp16-lean", type=Path, help="the FP16 ONNX with fewer FP32 islands (--prepare-lean)")
    ap.add_argument("--prepare-lean", type=Path, metavar="FP16_ONNX",
                    help="on the CPU: write engines/occo_fp16_lean.onnx from the FP32 export, and its PSNR")
    ap.add_argument("--frames", type=int, default=64)
    args = ap.parse_args()
    if args.prepare_lean:
        return prepare_lean(args.onnx, args.prepare_lean)
    if args.out is None:
        ap.error("--out is required on the GPU machine")
    args.out.mkdir(parents=True, exist_ok=True)
    import onnxruntime as ort

    from occo_deploy.fusing.fuser import Fuser
    from occo_deploy.runtime.cuda import device_info

    pairs = frames()
    with Fuser(args.onnx, provider="cpu") as cpu:
        want = [cpu.fuse(ir, vis) for ir, vis in pairs[:3]]
    env = {"gpu": device_info(), "onnxruntime": ort.__version__, "providers": ort.get_available_providers()}
    print(json.dumps(env), flush=True)
    rows: list[dict[str, Any]] = []

    def run(name: str, onnx: Path | None, options: dict[str, str], batch: int = 1, graph: bool = False) -> None:
        if onnx is None:
            return
        try:
            row = measure(onnx, options, pairs, want, batch, args.frames, graph)
        except Exception as exc:  # a device run reports every failure and goes on
            row = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        row.update(variant=name, batch=batch)
        rows.append(row)
        print(json.dumps(row), flush=True)

    run("fp32 defaults (baseline)", args.onnx, {})
    run("fp32 exhaustive", args.onnx, EXHAUSTIVE)
    run("fp32 nhwc", args.onnx, NHWC)
    run("fp32 exhaustive+nhwc", args.onnx, {**EXHAUSTIVE, **NHWC})
    fp32_rows = [r for r in rows if "fps" in r and r["variant"].startswith("fp32")]
    best_options = {"fp32 defaults (baseline)": {}, "fp32 exhaustive": EXHAUSTIVE, "fp32 nhwc": NHWC,
                    "fp32 exhaustive+nhwc": {**EXHAUSTIVE, **NHWC}}[max(fp32_rows, key=lambda r: r["fps"])["variant"]] \
        if fp32_rows else {}
    run("fp16 mixed", args.fp16, best_options)
    run("fp16 lean", args.fp16_lean, best_options)
    good = [r for r in rows if "fps" in r and r["psnr_min"] >= 40]
    best = max(good, key=lambda r: r["fps"]) if good else None
    if best is not None:
        path = {"fp16 mixed": args.fp16, "fp16 lean": args.fp16_lean}.get(best["variant"], args.onnx)
        run(f"{best['variant']} + cuda graph", path, best_options, graph=True)
        for batch in (4, 8):
            run("fp32 defaults (baseline)", args.onnx, {}, batch)
            run(best["variant"], path, best_options, batch)
    base = next((r["fps"] for r in rows if r["variant"] == "fp32 defaults (baseline)" and r["batch"] == 1
                 and "fps" in r), None)
    lines = ["| variant | batch | fps | vs baseline | worst PSNR vs FP32 CPU (dB) | first 3 frames (s) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if "fps" in r:
            ratio = f"{r['fps'] / base:.2f}x" if base else "-"
            lines.append(f"| {r['variant']} | {r['batch']} | {r['fps']:.1f} | {ratio} | {r['psnr_min']:.1f} | "
                         f"{r['first_s']:.2f} |")
        else:
            lines.append(f"| {r['variant']} | {r['batch']} | failed: {r['error']} | | | |")
    text = (f"GPU: {env['gpu']['name']}, onnxruntime {env['onnxruntime']}, 640x480 real clip frames\n\n"
            + "\n".join(lines))
    print("\n" + text)
    (args.out / "gpu_ort_cuda.md").write_text(text + "\n")
    (args.out / "gpu_ort_cuda.json").write_text(json.dumps({"env": env, "rows": rows}, indent=1, default=str))
    return 0


def prepare_lean(fp32: Path, fp16: Path) -> int:
    """The lean FP16 ONNX, and both FP16 variants' Cast count and PSNR on ONNX Runtime's CPU provider."""
    import onnx

    from occo_deploy.backends.onnxruntime_cpu import reference_backend
    from occo_deploy.engines import precision
    from occo_deploy.engines.gate import psnr

    lean = precision.to_fp16(onnx.load(str(fp32)), fp16_ops=precision.FP16_LEAN_OPS)
    out = fp16.with_name("occo_fp16_lean.onnx")
    onnx.save(lean, out)
    pairs = frames(count=4)
    ref = reference_backend(fp32)
    for path in (fp16, out):
        model = onnx.load(str(path))
        casts = sum(n.op_type == "Cast" for n in model.graph.node)
        backend = reference_backend(path)
        worst = min(psnr(ref.run(vis[None], ir[None])[0], backend.run(vis[None], ir[None])[0]) for ir, vis in pairs)
        backend.close()
        print(f"{path.name}: {casts} Cast nodes, worst PSNR vs FP32 on 4 clip frames (ONNX Runtime CPU) {worst:.1f} dB")
    ref.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
