#!/usr/bin/env python3
"""Archive throughput: one process against Ray Data actors, on the same real archive, in one run.

    python benchmarks/archive_scaling.py [--engine export/occo.onnx] [--images 10] [--clip-frames 20]

The archive: the MSRS 640x480 pairs of ../shared/data/pairs (real IR/visible) and two clips of the
bundled M3SVD sequence (640x480), nested in folders as a user's recordings would be. Runs, one after
another, each into a fresh output root:

* ``local``: ``occo-deploy archive`` in this process (the engine's own threads, all cores);
* ``ray 1x1``, ``ray 2x1``: a local Ray instance, 1 and 2 actors of 1 inference thread;
* ``ray 1x2``: one actor with 2 threads.

For each: wall time (Ray's start included), images/s and frames/s over the wall time and their ratio
to ``local``, and the mean time per frame inside the worker (the item times the report records).
Then Ray's own costs: the same runs on 40 real pairs cropped to 16x16, where the engine takes a few
milliseconds, so what remains per item is scheduling, (de)serialisation and file I/O, and what
remains before the first result is Ray's and the actors' start-up.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from occo_deploy.archive.items import discover  # noqa: E402
from occo_deploy.archive.job import RunSettings, run_archive  # noqa: E402
from occo_deploy.runtime.cpu import cpu_description  # noqa: E402

SHARED = ROOT.parent / "shared"


def make_archive(root: Path, images: int, clip_frames: int, tiny: int = 0) -> tuple[Path, Path]:
    from occo_deploy import demo
    from occo_deploy.video.streams import write_video

    ir_root, vis_root = root / "ir", root / "vis"
    pairs = sorted((SHARED / "data/pairs/MSRS/ir").glob("*.png"))
    for k in range(tiny or images):
        src = pairs[k % len(pairs)]
        for side, out in (("ir", ir_root), ("vi", vis_root)):
            image = cv2.imread(str(SHARED / "data/pairs/MSRS" / side / src.name), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise SystemExit(f"cannot read {src.name} under {SHARED / 'data/pairs/MSRS' / side}")
            if tiny:
                image = image[200:216, 300:316]
            dst = out / f"day{k % 2}" / f"{k:03d}_{src.name}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(dst), image)
    if not tiny:
        frames = list(demo.clip_pairs(clip_frames))
        for c in range(2):
            write_video(ir_root / "clips" / f"c{c}.mp4", [ir for ir, _ in frames], 10.0)
            write_video(vis_root / "clips" / f"c{c}.mp4", [vis for _, vis in frames], 10.0)
    return ir_root, vis_root


def run(name: str, tree: tuple[Path, Path], out: Path, engine: Path, ray: Any) -> dict[str, Any]:
    items = discover(*tree, out)
    start = time.perf_counter()
    report = run_archive(items, out, RunSettings(str(engine.resolve())), ray=ray)
    wall = time.perf_counter() - start
    assert report.count("failed") == 0, [r.error for r in report.results if r.error]
    images = sum(r.kind == "image" for r in report.results)
    return {"run": name, "wall_s": wall, "items": len(items), "images": images, "frames": report.frames,
            "images_per_s": images / wall, "frames_per_s": report.frames / wall,
            "worker_s_per_frame": sum(r.seconds for r in report.results) / report.frames,
            "worker_s": sum(r.seconds for r in report.results)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", type=Path, default=ROOT / "export" / "occo.onnx")
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--clip-frames", type=int, default=20)
    args = ap.parse_args()
    from occo_deploy.archive.ray_runner import RayOptions

    configs = [("local", None), ("ray 1x1", RayOptions(workers=1, threads_per_worker=1)),
               ("ray 2x1", RayOptions(workers=2, threads_per_worker=1)),
               ("ray 1x2", RayOptions(workers=1, threads_per_worker=2))]
    print(f"CPU: {cpu_description()}, engine {args.engine.name}")
    with tempfile.TemporaryDirectory(prefix="occo-archive-bench-") as tmp:
        tree = make_archive(Path(tmp) / "in", args.images, args.clip_frames)
        tiny = make_archive(Path(tmp) / "tiny", 0, 0, tiny=40)
        rows: list[dict[str, Any]] = []
        for name, ray in configs:
            rows.append(run(name, tree, Path(tmp) / f"out-{len(rows)}", args.engine, ray))
            shutil.rmtree(Path(tmp) / f"out-{len(rows) - 1}")
        base = rows[0]
        print(f"\n{rows[0]['images']} images 640x480 + 2 clips x {args.clip_frames} frames, {base['frames']} frames\n")
        print("| run | wall s | images/s | frames/s | vs local | s per frame in the worker |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['run']} | {r['wall_s']:.1f} | {r['images_per_s']:.2f} | {r['frames_per_s']:.2f} | "
                  f"{r['frames_per_s'] / base['frames_per_s']:.2f}x | {r['worker_s_per_frame']:.2f} |")
        local, on_ray = (run(name, tiny, Path(tmp) / f"tiny-{k}", args.engine, ray)
                         for k, (name, ray) in enumerate(configs[:2]))
        fixed = on_ray["wall_s"] - on_ray["worker_s"]
        print(f"\n40 pairs of 16x16: {local['wall_s'] / 40 * 1e3:.1f} ms per item in one process (all included); "
              f"on Ray (1 actor) {on_ray['worker_s'] / 40 * 1e3:.1f} ms per item in the worker, and "
              f"{fixed:.1f} s outside it (Ray and actor start-up, scheduling, results, shutdown)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
