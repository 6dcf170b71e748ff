"""Interleaved A/B of ONNX files on OpenVINO: which graph or setting runs faster, at what fidelity.

    python benchmarks/openvino_ab.py NAME=ONNX[:PRECISION[:KEY=VALUE...]] ... [--rounds 3] [--profile]

Each ONNX (an export or a Q/DQ INT8 engine) is compiled for a static 1x480x640 shape with the given
inference precision (f32 or bf16, for what is not INT8) and extra OpenVINO properties, then all are
timed on the 10 MSRS 640x480 pairs in blocks, one block per file per round, so the machine's drift
hits every file alike. Prints ms/frame, the ratio against the first, and the worst PSNR against the
exported FP32 ONNX on ONNX Runtime. ``--profile`` adds OpenVINO's per-layer counters of each file,
summed by layer and kernel type: where the time goes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from cpu_fp32 import load_pairs  # noqa: E402

from occo_deploy.contract import frame_feeds, frame_shapes  # noqa: E402


def compile_static(core: Any, path: str, precision: str, extra: dict[str, str], threads: int, profile: bool) -> Any:
    model = core.read_model(path)
    model.reshape(frame_shapes(1, 480, 640, [i.get_any_name() for i in model.inputs]))
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
                              "INFERENCE_NUM_THREADS": threads, **extra}
    if profile:
        config["PERF_COUNT"] = True
    return core.compile_model(model, "CPU", config).create_infer_request()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", help="NAME=ONNX[:f32|bf16[:KEY=VALUE...]]")
    parser.add_argument("--reference", type=Path, default=ROOT / "export" / "occo.onnx")
    parser.add_argument("--pairs", type=Path, default=ROOT.parent / "shared" / "data" / "pairs" / "MSRS")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    import onnxruntime as ort
    import openvino as ov

    from occo_deploy.engines.gate import psnr

    pairs = load_pairs(args.pairs, (640, 480))
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.log_severity_level = 3
    session = ort.InferenceSession(str(args.reference), options, providers=["CPUExecutionProvider"])
    names = [x.name for x in session.get_inputs()]
    reference = [session.run(["fused"], frame_feeds(v[None], i[None], names))[0][0] for i, v in pairs]
    del session

    core = ov.Core()
    requests: dict[str, Any] = {}
    for variant in args.variants:
        name, spec = variant.split("=", 1)
        path, *rest = spec.split(":")
        extra = dict(kv.split("=", 1) for kv in rest[1:])
        requests[name] = compile_static(core, path, rest[0] if rest else "f32", extra, args.threads, args.profile)

    def run(request: Any, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        request.infer(frame_feeds(vis[None], ir[None], [i.get_any_name() for i in request.model_inputs]))
        return request.get_tensor("fused").data[0].copy()

    worst = {n: min(psnr(want, run(r, i, v)) for (i, v), want in zip(pairs, reference)) for n, r in requests.items()}
    times: dict[str, list[float]] = {n: [] for n in requests}
    for _ in range(args.rounds):
        for name, request in requests.items():
            for ir, vis in pairs:
                start = time.perf_counter()
                run(request, ir, vis)
                times[name].append(1e3 * (time.perf_counter() - start))
    base = statistics.median(next(iter(times.values())))
    print(f"{len(pairs)} pairs x {args.rounds} rounds, {args.threads} threads, openvino {ov.__version__}\n")
    print("| variant | ms/frame | vs first | worst PSNR vs FP32 |\n|---|---|---|---|")
    for name in requests:
        median = statistics.median(times[name])
        print(f"| {name} | {median:.0f} | {base / median:.2f}x | {worst[name]:.1f} dB |")
    if args.profile:
        for name, request in requests.items():
            totals: dict[tuple[str, str], float] = {}
            for layer in request.profiling_info:
                key = (layer.node_type, layer.exec_type)
                totals[key] = totals.get(key, 0.0) + layer.real_time.total_seconds() * 1e3
            whole = sum(totals.values())
            print(f"\n{name}: per-layer counters of the last call, {whole:.0f} ms in all")
            for (kind, kernel), ms in sorted(totals.items(), key=lambda kv: -kv[1])[:12]:
                print(f"  {ms:7.1f} ms {100 * ms / whole:5.1f}%  {kind} ({kernel})")


if __name__ == "__main__":
    main()
