"""Issue 5's CPU goal in one interleaved run: every CPU path against the reference network eager.

    python benchmarks/cpu_goal.py [--onnx export/occo.onnx] [--rounds 2] [--calib-size 24]

Builds with occo-deploy's own build code (calibrating on TNO + RoadScene + LLVIP, one range cache
shared by both INT8 builds): the ONNX Runtime INT8 engine and the OpenVINO BF16 and INT8 engines.
Then times, on the 10 MSRS 640x480 pairs none of them saw, in blocks rotated each round:

  * the reference network in PyTorch eager under ``torch.no_grad()``: the baseline of every ratio.
    That is the reference's forward as written (``occo_deploy.model.reference_form``, which
    reproduces the golden outputs bit for bit), not our rewrite ``net.OCCO``, whose Gram-matrix
    attention does less work; our rewrite's eager time is printed as a row of its own. Each eager
    block runs in its own process (see ``eager_block``), one block per round, in the rotation,
  * the exported FP32 ONNX on ONNX Runtime, and the INT8 ONNX Runtime engine,
  * OpenVINO BF16 on the exported ONNX as a user would run it directly (dynamic shapes): the peer,
  * occo-deploy's OpenVINO BF16 and INT8 engines (``Fuser``, static shape per frame size).

  * the whole ``fuse`` job (decode, pipeline, encode of the bundled 640x480 clip) with each engine,
    one job per engine per round, in the same rotation.

PSNR is against the FP32 ONNX. Needs the ``export`` and ``openvino`` extras.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from occo_deploy.contract import frame_feeds
from occo_deploy.runtime.cpu import cpu_description

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from cpu_fp32 import calibrated_cpu_args, calibration_folder, load_pairs  # noqa: E402

Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]


EAGER = "reference network, pytorch eager, no_grad (baseline)"
EAGER_OURS = "occo-deploy's net.OCCO, pytorch eager, no_grad"
JOB = "fuse job: "


_EAGER_CHILD = """
import json, sys, time
import torch
sys.path.insert(0, {benchmarks!r})
sys.path.insert(0, {root!r})
from pathlib import Path
from cpu_fp32 import load_pairs
from occo_deploy.sidecar import read_sidecar
from occo_deploy.model.checkpoint import load_model
from occo_deploy.model.pipeline import FusionPipeline
from occo_deploy.model.reference_form import ReferenceFormNet
torch.set_num_threads({threads})
net = load_model(read_sidecar(Path({onnx!r}))["source"]["checkpoint"])
model = FusionPipeline(ReferenceFormNet(net) if {reference} else net).eval()
pairs = load_pairs(Path({msrs!r}), (640, 480))
model(torch.from_numpy(pairs[0][1])[None], torch.from_numpy(pairs[0][0])[None])  # autograd on: see below
times = []
with torch.no_grad():
    for _ in range({rounds}):
        for ir, vis in pairs:
            start = time.perf_counter()
            model(torch.from_numpy(vis)[None], torch.from_numpy(ir)[None])
            times.append(1e3 * (time.perf_counter() - start))
print(json.dumps(times))
"""


def eager_block(args: argparse.Namespace, reference: bool = True) -> list[float]:
    """One block of PyTorch eager under no_grad, s per frame, in a process of its own, at its fastest.

    Its speed depends on the process: glibc's malloc faults in fresh pages for every 40 MB
    activation until its mmap/trim thresholds rise, which one forward with autograd on (as the
    reference main.py runs) makes them do: 1.3 s per frame here instead of 2.8 s. After ONNX Runtime
    has run in the same process, eager fell back to 2.2-2.6 s. So the baseline runs alone, warmed
    that way: the faster eager, and the more conservative ratios. One such process per round, in
    the rotation with the other runners, because this shared machine's speed drifts by 10-25%
    over minutes and a baseline timed apart would carry that drift into every ratio.
    """
    import subprocess

    code = _EAGER_CHILD.format(benchmarks=str(ROOT / "benchmarks"), root=str(ROOT), threads=args.threads,
                               onnx=str(args.onnx), msrs=str(args.shared / "MSRS"), rounds=1,
                               reference=reference)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [ms / 1e3 for ms in json.loads(result.stdout.strip().splitlines()[-1])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    calibrated_cpu_args(parser, rounds=2)
    args = parser.parse_args()

    from importlib.metadata import version

    import onnxruntime as ort
    import openvino as ov

    from occo_deploy import demo
    from occo_deploy.engines.build import BuildRequest, build_engine
    from occo_deploy.engines.gate import psnr
    from occo_deploy.fusing.fuser import Fuser
    from occo_deploy.fusing.jobs import fuse_video
    from occo_deploy.interface.profile import Profile

    tmp = Path(tempfile.mkdtemp(prefix="occo-goal-"))
    calib_root = calibration_folder(args.shared, tmp)
    built: dict[str, Path] = {}
    for name, precision, backend in (("ort_int8", "int8", "onnxruntime"), ("ov_bf16", "bf16", "openvino"),
                                     ("ov_int8", "int8", "openvino")):
        start = time.perf_counter()
        result = build_engine(BuildRequest(onnx=args.onnx, precision=precision, backend=backend,
                                           profile=Profile.from_options(), output=tmp / f"occo_{name}.onnx",
                                           calib_dir=calib_root, calib_size=args.calib_size,
                                           calib_cache=tmp / "ranges.calib.json"))
        built[name] = result.engine
        print(f"built {name} in {time.perf_counter() - start:.0f} s; gate: {result.gate.describe()}", flush=True)

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.log_severity_level = 3
    session = ort.InferenceSession(str(args.onnx), options, providers=["CPUExecutionProvider"])
    core = ov.Core()
    peer = core.compile_model(core.read_model(str(args.onnx)), "CPU", {
        "INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": args.threads})
    peer_request = peer.create_infer_request()

    def ov_peer(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        peer_request.infer(frame_feeds(vis[None], ir[None], [i.get_any_name() for i in peer_request.model_inputs]))
        return peer_request.get_tensor("fused").data[0].copy()

    fusers = {name: Fuser(path, threads=args.threads) for name, path in built.items()}
    names = [i.name for i in session.get_inputs()]
    runners: dict[str, Runner] = {
        "onnxruntime fp32 (the export)":
            lambda ir, vis: session.run(["fused"], frame_feeds(vis[None], ir[None], names))[0][0],
        "onnxruntime int8 engine": fusers["ort_int8"].fuse,
        "openvino bf16 on the export, dynamic (peer)": ov_peer,
        "occo-deploy openvino bf16 engine": fusers["ov_bf16"].fuse,
        "occo-deploy openvino int8 engine": fusers["ov_int8"].fuse,
    }
    reference_name = "onnxruntime fp32 (the export)"
    pairs = load_pairs(args.shared / "MSRS", (640, 480))
    for run in runners.values():
        run(*pairs[0])  # warm-up: first-call allocation and per-shape compiles never count
    reference = [runners[reference_name](ir, vis) for ir, vis in pairs]
    quality: dict[str, list[float]] = {k: [] for k in runners}
    for (ir, vis), want in zip(pairs, reference):
        for name, run in runners.items():
            quality[name].append(psnr(want, run(ir, vis)))

    def engine_block(run: Runner) -> Callable[[], list[float]]:
        def block() -> list[float]:
            out = []
            for ir, vis in pairs:
                start = time.perf_counter()
                run(ir, vis)
                out.append(time.perf_counter() - start)
            return out
        return block

    # The engines' own Fusers run their jobs too (fuse_video resets their stats); only the export
    # needs one of its own, its runner above being a bare ONNX Runtime session.
    job_fusers = {"onnxruntime fp32 (the export)": Fuser(args.onnx, threads=args.threads),
                  **{f"occo-deploy {n}": fuser for n, fuser in fusers.items()}}

    def job_block(fuser: Fuser) -> Callable[[], list[float]]:
        def block() -> list[float]:
            report = fuse_video(fuser, demo.IR_CLIP, demo.VIS_CLIP, tmp / "fused.mp4", force=True)
            return [report.wall_s / report.frames]
        return block

    for fuser in job_fusers.values():
        fuse_video(fuser, demo.IR_CLIP, demo.VIS_CLIP, tmp / "warm.mp4", force=True)  # per-shape compile
    blocks: dict[str, Callable[[], list[float]]] = {
        EAGER: lambda: eager_block(args), EAGER_OURS: lambda: eager_block(args, reference=False),
        **{name: engine_block(run) for name, run in runners.items()},
        **{JOB + name: job_block(fuser) for name, fuser in job_fusers.items()},
    }
    names = list(blocks)
    times: dict[str, list[float]] = {k: [] for k in names}
    eager_blocks: list[float] = []
    for r in range(args.rounds):
        # Blocks of all pairs per runner, the order rotated each round. Not pair-by-pair: ONNX
        # Runtime's and OpenVINO's worker threads spin for a while after each call, and on two
        # cores that halved the speed of whatever ran next (eager measured 3283 instead of ~1500 ms).
        for name in names[r % len(names):] + names[: r % len(names)]:
            block = blocks[name]()
            times[name] += block
            if name == EAGER:
                eager_blocks.append(statistics.median(block))
    base = statistics.median(times[EAGER])
    print(f"\nmachine: {cpu_description()}, {os.cpu_count()} cpus, threads={args.threads}; "
          f"torch {version('torch')}, onnxruntime {ort.__version__}, openvino {ov.__version__}")
    print(f"{len(pairs)} MSRS 640x480 pairs x {args.rounds} rounds, one block per runner, order rotated; "
          "INT8 calibrated on "
          f"{args.calib_size} TNO/RoadScene/LLVIP frames\n")
    print("| runner | ms/frame | vs reference eager no_grad | PSNR vs FP32 ONNX, worst / median |\n|---|---|---|---|")
    for name in names[:2] + list(runners):
        med = statistics.median(times[name])
        q = quality.get(name)
        worst = ("within 1 grey level (golden tests)" if q is None else "identical" if min(q) == float("inf")
                 else f"{min(q):.1f} / {statistics.median(q):.1f} dB")
        print(f"| {name} | {med * 1e3:.0f} | {base / med:.2f}x | {worst} |")

    print(f"\nwhole `fuse` job on the bundled clip ({demo.IR_CLIP.name} + {demo.VIS_CLIP.name}, 640x480, 20 frames), "
          "one job per engine per round, in the same rotation:\n")
    print("| engine | ms/frame, decode + fuse + encode | vs reference eager no_grad |\n|---|---|---|")
    for name in job_fusers:
        per_frame = statistics.median(times[JOB + name])
        print(f"| {name} | {per_frame * 1e3:.0f} | {base / per_frame:.2f}x |")
    print(f"\nreference eager blocks, ms/frame: {', '.join(f'{b * 1e3:.0f}' for b in eager_blocks)} (drift)")
    for fuser in job_fusers.values():  # the export's and every engine's
        fuser.close()


if __name__ == "__main__":
    main()
