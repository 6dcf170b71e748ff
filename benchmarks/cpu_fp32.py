"""PyTorch eager vs the exported ONNX on ONNX Runtime (CPU), same real pairs, one interleaved run.

    python benchmarks/cpu_fp32.py [--onnx export/occo.onnx] [--pairs ../shared/data/pairs/MSRS] [--rounds 3]

Every runner does the whole pipeline (uint8 BGR + gray in, fused uint8 BGR out). The eager runner is
the reference network's own forward (``occo_deploy.model.reference_form``, bit-exact on the golden
outputs); "autograd on" is how the reference ``main.py --test`` runs it (no ``torch.no_grad``).
Runners alternate pair by pair, so drift of the machine hits all of them alike. Prints median
ms/frame and the ratio to eager no_grad.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from occo_deploy.contract import frame_feeds
from occo_deploy.runtime.cpu import cpu_description

ROOT = Path(__file__).resolve().parents[1]


def load_pairs(folder: Path, size_wh: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    pairs = []
    for vis_path in sorted((folder / "vi").glob("*")):
        ir_path = folder / "ir" / vis_path.name
        ir = cv2.imread(str(ir_path), cv2.IMREAD_GRAYSCALE)
        vis = cv2.imread(str(vis_path), cv2.IMREAD_COLOR)
        if ir is None or vis is None or vis.shape[1::-1] != size_wh:
            continue
        pairs.append((ir, vis))
    if not pairs:
        sys.exit(f"no {size_wh[0]}x{size_wh[1]} pairs in {folder}")
    return pairs


def calibrated_cpu_args(parser: argparse.ArgumentParser, rounds: int) -> None:
    """The options of the benchmarks that calibrate on the shared pairs and time CPU engines
    (``cpu_engines``, ``cpu_goal``, ``cpu_placement``): one declaration, one meaning."""
    parser.add_argument("--onnx", type=Path, default=ROOT / "export" / "occo.onnx")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data" / "pairs")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--calib-size", type=int, default=24)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)


def calibration_folder(shared_pairs: Path, tmp: Path) -> Path:
    """A folder of TNO, RoadScene and LLVIP (links): calibration data that leaves MSRS, what the
    CPU benchmarks time and compare on, unseen."""
    root = tmp / "calib"
    root.mkdir()
    for group in ("TNO", "RoadScene", "LLVIP"):
        (root / group).symlink_to(shared_pairs / group)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, default=ROOT / "export" / "occo.onnx")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the one the ONNX was exported from")
    parser.add_argument("--pairs", type=Path, default=ROOT.parent / "shared" / "data" / "pairs" / "MSRS")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the pairs")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-autograd", action="store_true", help="leave out the slowest runner")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from occo_deploy.model.checkpoint import load_model
    from occo_deploy.model.pipeline import FusionPipeline
    from occo_deploy.model.reference_form import ReferenceFormNet
    from occo_deploy.sidecar import read_sidecar

    meta = read_sidecar(args.onnx)
    if meta is None:
        sys.exit(f"{args.onnx} has no sidecar; run: occo-deploy export --demo")
    checkpoint = args.checkpoint or Path(meta["source"]["checkpoint"])
    torch.set_num_threads(args.threads)
    pipeline = FusionPipeline(ReferenceFormNet(load_model(checkpoint))).eval()
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(args.onnx), options, providers=["CPUExecutionProvider"])
    pairs = load_pairs(args.pairs, (640, 480))

    def eager(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        return pipeline(torch.from_numpy(vis)[None], torch.from_numpy(ir)[None])[0].numpy()

    def eager_no_grad(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return eager(ir, vis)

    def onnxruntime_fp32(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        return session.run(["fused"], frame_feeds(vis[None], ir[None], [i.name for i in session.get_inputs()]))[0][0]

    runners: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "pytorch eager, no_grad (baseline)": eager_no_grad,
        "onnxruntime fp32 (cpu)": onnxruntime_fp32,
    }
    if not args.skip_autograd:
        runners = {"pytorch eager, autograd on (reference main.py)": eager, **runners}
    times: dict[str, list[float]] = {name: [] for name in runners}
    worst = 0
    for run in runners.values():  # warm-up: first calls allocate and pick kernels
        run(*pairs[0])
    for _ in range(args.rounds):
        for ir, vis in pairs:
            outputs = []
            for name, run in runners.items():
                start = time.perf_counter()
                outputs.append(run(ir, vis))
                times[name].append(time.perf_counter() - start)
            worst = max(worst, max(int(np.abs(o.astype(int) - outputs[0].astype(int)).max()) for o in outputs))

    base = statistics.median(times["pytorch eager, no_grad (baseline)"])
    print(f"machine: {cpu_description()}, {os.cpu_count()} cpus, threads={args.threads}; "
          f"torch {torch.__version__}, onnxruntime {ort.__version__}")
    print(f"{len(pairs)} real 640x480 pairs from {args.pairs} x {args.rounds} rounds, interleaved; "
          f"largest difference between runners: {worst} grey level(s)")
    print(f"{'runner':<50} {'ms/frame (median)':>18} {'speed-up':>9}")
    results = {}
    for name, samples in times.items():
        med = statistics.median(samples)
        results[name] = {"median_ms": med * 1e3, "speedup_vs_baseline": base / med, "samples": len(samples)}
        print(f"{name:<50} {med * 1e3:>18.0f} {base / med:>8.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"pairs": len(pairs), "rounds": args.rounds, "threads": args.threads,
                                         "max_grey_diff": worst, "runners": results}, indent=2))


if __name__ == "__main__":
    main()
