"""FP32 vs INT8 (and FP16, BF16 where they run) on the CPU, same real 640x480 pairs, one interleaved run.

    python benchmarks/cpu_engines.py [--onnx export/occo.onnx] [--rounds 1] [--calib-size 24]

Builds, in a temporary folder and with occo-deploy's own build code, from the FP32 export:
  * INT8 ONNX Runtime engine (u8 activations, s8 per-channel weights: the CPU scheme),
  * INT8 with symmetric s8 activations (the Q/DQ artifact TensorRT takes), run on ONNX Runtime,
  * FP16 ONNX Runtime engine (mixed precision, the artifact TensorRT 11 takes),
calibrating on TNO + RoadScene + LLVIP pairs and timing/comparing on the 10 MSRS pairs it never saw.
Also times PyTorch eager with BF16 autocast, as a data point on this CPU's BF16 arithmetic (ONNX
Runtime has no BF16 path for this model). Prints ms/frame, speed-up vs FP32 ONNX and PSNR vs FP32.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from cpu_fp32 import calibrated_cpu_args, calibration_folder, load_pairs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    calibrated_cpu_args(parser, rounds=1)
    parser.add_argument("--skip-bf16", action="store_true")
    args = parser.parse_args()

    import onnx
    import onnxruntime as ort

    from occo_deploy.calibration import data as calib_data
    from occo_deploy.contract import frame_feeds
    from occo_deploy.engines import precision
    from occo_deploy.engines.build import BuildRequest, build_engine
    from occo_deploy.engines.gate import psnr
    from occo_deploy.interface.profile import Profile
    from occo_deploy.quantization import ranges as calib_ranges

    tmp = Path(tempfile.mkdtemp(prefix="occo-bench-"))
    calib_root = calibration_folder(args.shared, tmp)
    profile = Profile.from_options()  # dynamic, calibrated at 480x640
    built = {}
    for precision_name in ("int8", "fp16"):
        start = time.perf_counter()
        result = build_engine(BuildRequest(onnx=args.onnx, precision=precision_name, backend="onnxruntime",
                                           profile=profile, output=tmp / f"occo_{precision_name}.onnx",
                                           calib_dir=calib_root, calib_size=args.calib_size))
        built[precision_name] = result.engine
        print(f"built {precision_name} in {time.perf_counter() - start:.0f} s; gate: {result.gate.describe()}")
    # The TensorRT-style artifact: symmetric s8 activations, same calibration frames.
    calib, _ = calib_data.split(calib_data.discover(calib_root), calib_size=args.calib_size, val_size=4, seed=0)
    sym = calib_ranges.measure(args.onnx, calib_data.iter_pairs(calib, (480, 640)), "minmax", symmetric=True)
    onnx.save(precision.to_int8(args.onnx, sym, "s8s8"), tmp / "occo_int8_s8s8.onnx")

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.log_severity_level = 3

    def session(path: Path) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        s = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in s.get_inputs()]
        return lambda ir, vis: s.run(["fused"], frame_feeds(vis[None], ir[None], names))[0][0]

    runners = {
        "onnxruntime fp32 (baseline)": session(args.onnx),
        "onnxruntime int8 u8s8 (cpu engine)": session(built["int8"]),
        "onnxruntime int8 s8s8 (tensorrt-style q/dq)": session(tmp / "occo_int8_s8s8.onnx"),
        "onnxruntime fp16 mixed (tensorrt-style)": session(built["fp16"]),
    }
    if not args.skip_bf16:
        import torch

        from occo_deploy.model.checkpoint import load_model
        from occo_deploy.model.pipeline import FusionPipeline
        from occo_deploy.sidecar import read_sidecar

        torch.set_num_threads(args.threads)
        meta = read_sidecar(args.onnx)
        if meta is None:
            sys.exit(f"{args.onnx} has no sidecar; run: occo-deploy export --demo")
        pipeline = FusionPipeline(load_model(meta["source"]["checkpoint"])).eval()

        def bf16(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                return pipeline(torch.from_numpy(vis)[None], torch.from_numpy(ir)[None])[0].numpy()

        runners["pytorch eager bf16 autocast (data point)"] = bf16

    pairs = load_pairs(args.shared / "MSRS", (640, 480))
    for run in runners.values():
        run(*pairs[0])
    times: dict[str, list[float]] = {k: [] for k in runners}
    quality: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(args.rounds):
        for ir, vis in pairs:
            reference = None
            for name, run in runners.items():
                start = time.perf_counter()
                out = run(ir, vis)
                times[name].append(time.perf_counter() - start)
                reference = out if reference is None else reference
                quality[name].append(psnr(reference, out))
    base = statistics.median(times["onnxruntime fp32 (baseline)"])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, threads={args.threads}; "
          f"onnxruntime {ort.__version__}")
    print(f"{len(pairs)} MSRS 640x480 pairs x {args.rounds} rounds, interleaved; calibrated on {args.calib_size} "
          "TNO/RoadScene/LLVIP frames")
    print(f"{'runner':<46} {'ms/frame':>9} {'speed-up':>9} {'PSNR vs fp32, worst / median (dB)':>36}")
    for name in runners:
        med = statistics.median(times[name])
        q = quality[name]
        worst = "identical" if min(q) == float("inf") else f"{min(q):.1f} / {statistics.median(q):.1f}"
        print(f"{name:<46} {med * 1e3:>9.0f} {base / med:>8.2f}x {worst:>36}")


if __name__ == "__main__":
    main()
