"""INT8 fidelity on pairs no build saw, per backend and data set, and the speed of each engine.

    python benchmarks/int8_heldout.py [--onnx export/occo.onnx] [--pairs ../shared/data/pairs]
                                      [--methods minmax,percentile] [--backends onnxruntime,openvino]

Splits every data set of ``--pairs`` (MSRS, TNO, RoadScene, LLVIP) in two by file name: the first
60% calibrate (the build's own quality gate holds 4 of them back), the rest are held out and seen
by nothing but this script. Builds each backend's INT8 engine with each calibration method through
occo-deploy's build code (one range cache per method, shared by the backends), then runs the FP32
export and every engine on every held-out pair at its own size and prints the worst and median
PSNR against FP32 per data set, the build's wall time, and ms per 640x480 frame interleaved with the
FP32 export in the same run. The CPU's model and INT8 features head the output: INT8 speed and even
INT8 numerics depend on them.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from occo_deploy.engines.build import BuildRequest, build_engine  # noqa: E402
from occo_deploy.engines.gate import psnr  # noqa: E402
from occo_deploy.evaluation.evaluate import load_pairs  # noqa: E402
from occo_deploy.fusing.fuser import Fuser  # noqa: E402
from occo_deploy.interface.profile import Profile  # noqa: E402
from occo_deploy.runtime.cpu import cpu_description  # noqa: E402

CALIB_SHARE = 0.6


def split(pairs_root: Path, workdir: Path) -> dict[str, list[str]]:
    """Copy the calibration share of each data set into ``workdir/<set>/{ir,vi}``; return the held-out stems."""
    held: dict[str, list[str]] = {}
    for ds in sorted(p for p in pairs_root.iterdir() if (p / "ir").is_dir()):
        stems = sorted(p.stem for p in (ds / "ir").iterdir())
        cut = max(1, round(CALIB_SHARE * len(stems)))
        for kind in ("ir", "vi"):
            (workdir / ds.name / kind).mkdir(parents=True)
            for path in (ds / kind).iterdir():
                if path.stem in stems[:cut]:
                    shutil.copy(path, workdir / ds.name / kind / path.name)
        held[ds.name] = stems[cut:]
    return held


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", type=Path, default=ROOT / "export" / "occo.onnx")
    ap.add_argument("--pairs", type=Path, default=ROOT.parent / "shared" / "data" / "pairs")
    ap.add_argument("--methods", default="minmax")
    ap.add_argument("--backends", default="onnxruntime,openvino")
    ap.add_argument("--speed-frames", type=int, default=6)
    args = ap.parse_args()
    print(f"CPU: {cpu_description()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    with tempfile.TemporaryDirectory(prefix="occo-heldout-") as tmp:
        work = Path(tmp)
        held = split(args.pairs, work / "calib")
        print("held out: " + "; ".join(f"{k} {len(v)}" for k, v in held.items()))
        engines: dict[str, Path] = {}
        for method in args.methods.split(","):
            for backend in args.backends.split(","):
                out = work / "engines" / f"int8_{backend}_{method}.onnx"
                out.parent.mkdir(exist_ok=True)
                start = time.perf_counter()
                result = build_engine(BuildRequest(
                    onnx=args.onnx, precision="int8", backend=backend, profile=Profile.from_options(),
                    output=out, calib_dir=work / "calib", calib_method=method))
                took = time.perf_counter() - start
                engines[f"{backend} {method}"] = out
                print(f"built {backend} INT8 ({method}) in {took:.0f} s; its gate: {result.gate.describe()}; "
                      f"scheme {result.info['calibration']['scheme']}; ranges "
                      f"{'reused' if result.info['calibration']['cache_reused'] else 'measured'}")
        if "openvino" in args.backends:  # the FP32 engine on OpenVINO: is it the faster FP32 path here?
            out = work / "engines" / "fp32_openvino.onnx"
            result = build_engine(BuildRequest(onnx=args.onnx, precision="fp32", backend="openvino",
                                               profile=Profile.from_options(), output=out, calib_dir=work / "calib"))
            engines["openvino fp32"] = out
            print(f"built openvino FP32; its gate: {result.gate.describe()}")
        fp32 = Fuser(args.onnx)
        fusers = {name: Fuser(path) for name, path in engines.items()}
        print(f"\n{'engine':<24} " + " ".join(f"{ds:>16}" for ds in held) + "   (worst / median dB vs FP32)")
        rows: dict[str, list[str]] = {name: [] for name in fusers}
        worst_all: dict[str, float] = {}
        max_err: dict[str, int] = {name: 0 for name in fusers}
        for ds, stems in held.items():
            pairs = [p for p in load_pairs(args.pairs / ds / "ir", args.pairs / ds / "vi") if p[0] in stems]
            want = [fp32.fuse(ir, vis) for _, ir, vis in pairs]
            for name, fuser in fusers.items():
                got = [fuser.fuse(ir, vis) for _, ir, vis in pairs]
                values = [psnr(w, g) for w, g in zip(want, got)]
                max_err[name] = max(max_err[name], *(int(np.abs(w.astype(int) - g.astype(int)).max())
                                                     for w, g in zip(want, got)))
                rows[name].append(f"{min(values):6.1f} / {statistics.median(values):5.1f}")
                worst_all[name] = min(worst_all.get(name, np.inf), min(values))
        for name, cells in rows.items():
            print(f"{name:<24} " + " ".join(f"{c:>16}" for c in cells)
                  + f"   worst {worst_all[name]:.1f}, max error {max_err[name]} grey levels")
        # Speed at 640x480, interleaved with the FP32 export, on calibration-free frames.
        msrs = load_pairs(args.pairs / "MSRS" / "ir", args.pairs / "MSRS" / "vi")[: args.speed_frames]
        runners = {"FP32 export (ONNX Runtime)": fp32, **fusers}
        for fuser in runners.values():
            fuser.fuse(*msrs[0][1:])  # warm-up: compiles, allocations
        times: dict[str, list[float]] = {name: [] for name in runners}
        for _, ir, vis in msrs:
            for name, fuser in runners.items():
                start = time.perf_counter()
                fuser.fuse(ir, vis)
                times[name].append(1e3 * (time.perf_counter() - start))
        base = statistics.median(times["FP32 export (ONNX Runtime)"])
        print(f"\nms per 640x480 frame, median of {len(msrs)} MSRS pairs, interleaved:")
        for name, t in times.items():
            print(f"  {name:<26} {statistics.median(t):7.0f} ms  {base / statistics.median(t):.2f}x")
        for f in (fp32, *fusers.values()):
            f.close()


if __name__ == "__main__":
    main()
