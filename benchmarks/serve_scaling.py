"""One service for N rigs against N ``fuse --live`` processes: total fused frames per second and
peak memory, with real RTSP cameras.

    python benchmarks/serve_scaling.py [--engine export/occo.onnx] [--rigs 1,2,4,8] [--seconds 20]

The cameras are GStreamer's RTSP server (``tests/live/rtsp_server.py``, the system Python's gi): one
infrared camera at 640x512 and one visible at 1280x720, H.264 at 10 fps, which every rig reads
(each rig opens and decodes its own two streams, as it would with cameras of its own; two shared
encoders keep the cameras' own cost constant). The two views differ in aspect, so every rig is
registered with a rig file from the fields of view (``align --fov 50,60 --no-refine``: the engine
gets 1032x720), as a real rig of these cameras would be. For each N, interleaved: ``serve`` with N rigs,
then N ``fuse --live`` processes, each measured over ``--seconds`` after its first fused frame.
Fused frames per second in total and per rig, and the peak resident memory (VmHWM) of the one
process against the sum of the N. Prints the CPU, and the N at which the fused rate per rig falls
below the cameras' 10 fps.

    python benchmarks/serve_scaling.py --decoder-threads 1,0 [--rigs 4] [--repeats 2]

compares ``serve`` with itself instead: the camera decoders' threads (``[serve] decoder_threads``;
0 is FFmpeg's own, one per core for every stream), interleaved, with the CPU seconds the process
spent per fused frame.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CAMERA_FPS = 10.0

from tests.support import free_port, start_camera  # noqa: E402  (the tests' cameras: tests/live/rtsp_server.py)


def camera(width: int, height: int) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = start_camera(port, user=None, width=width, height=height, fps=int(CAMERA_FPS))
    return proc, f"rtsp://127.0.0.1:{port}/cam"


class PeakMemory:
    """Polls the peak resident memory (VmHWM) of processes until stopped; the sum of their peaks."""

    def __init__(self, pids: list[int]) -> None:
        self.peaks = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for pid in self.peaks:
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peaks[pid] = max(self.peaks[pid], int(line.split()[1]) * 1024)
                except OSError:
                    pass

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self.peaks.values()) / 1e6


def make_rig(folder: Path) -> Path:
    """The rig file of a 640x512 thermal camera (50 degrees) beside a 1280x720 visible one (60)."""
    import cv2
    import numpy as np

    cv2.imwrite(str(folder / "ir.png"), np.full((512, 640), 100, np.uint8))
    cv2.imwrite(str(folder / "vis.png"), np.full((720, 1280, 3), 100, np.uint8))
    subprocess.run([sys.executable, "-m", "occo_deploy", "align", "ir.png", "vis.png", "--fov", "50,60",
                    "--no-refine", "-o", "rig.json", "--force"], cwd=folder, check=True, capture_output=True)
    return folder / "rig.json"


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_serve(n: int, ir: str, vis: str, engine: Path, seconds: float, folder: Path,
              decoder_threads: int | None = None, extra: Sequence[str] = ()) -> dict[str, float]:
    """``serve`` with ``n`` rigs (``extra``: more of its options), measured over ``seconds`` after every
    rig's first fused frame: fused frames per second (``fps``), the engine's busy share at the end
    (``busy``), CPU ms per fused frame (``cpu_ms``) and the peak resident MB (``mb``)."""
    rigs = "".join(f'[rigs.r{k}]\ninfrared = "{ir}"\nvisible = "{vis}"\nalign = "rig.json"\n\n' for k in range(n))
    serve = "" if decoder_threads is None else f"[serve]\ndecoder_threads = {decoder_threads}\n\n"
    (folder / "rigs.toml").write_text(serve + rigs)  # serve's own batching: one frame a call on a CPU engine
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "occo_deploy", "serve", "rigs.toml", "--engine", str(engine),
                             "--listen", f"127.0.0.1:{port}", *extra], cwd=folder, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    memory = PeakMemory([proc.pid])

    def state() -> tuple[int | None, float]:
        """Fused frames of all rigs (None until every rig fused one) and the engine's busy share."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/rigs", timeout=5) as response:
                body = json.load(response)
        except OSError:
            return None, 0.0
        rigs_now = body["rigs"]
        fused = sum(r["fused"] for r in rigs_now) if rigs_now and all(r["fused"] > 0 for r in rigs_now) else None
        return fused, float(body.get("busy_ratio") or 0.0)

    try:
        deadline = time.monotonic() + 180
        while (start := state()[0]) is None:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"serve with {n} rig(s) of {engine.name} fused nothing within 180 s")
            time.sleep(0.5)
        began, cpu = time.monotonic(), cpu_seconds(proc.pid)
        time.sleep(seconds)
        fused, busy = state()
        end = fused or start
        result = {"fps": (end - start) / (time.monotonic() - began), "busy": busy,
                  "cpu_ms": (cpu_seconds(proc.pid) - cpu) / max(1, end - start) * 1e3}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    result["mb"] = memory.stop()
    return result


def run_live(n: int, ir: str, vis: str, engine: Path, seconds: float, folder: Path) -> tuple[float, float]:
    procs = []
    for k in range(n):
        report = folder / f"live{k}.json"
        report.unlink(missing_ok=True)
        procs.append((subprocess.Popen([sys.executable, "-m", "occo_deploy", "fuse", ir, vis, "--live", "--engine",
                                        str(engine), "--duration", str(seconds), "--report", str(report), "-q",
                                        "--align", "rig.json", "--force"], cwd=folder, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL), report))
    memory = PeakMemory([p.pid for p, _ in procs])
    total = 0.0
    for proc, report in procs:
        proc.wait(timeout=seconds + 180)
        if report.is_file():
            live = json.loads(report.read_text())["live"]
            total += live["fused"] / max(1e-9, live["elapsed_s"])
    return total, memory.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", type=Path, default=ROOT / "export" / "occo.onnx")
    parser.add_argument("--rigs", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--decoder-threads", default=None,
                        help="A,B: compare serve with these decoder threads per stream (0: FFmpeg's own) instead")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds of --decoder-threads")
    args = parser.parse_args()
    args.engine = args.engine.resolve()  # serve runs in a folder of its own

    from occo_deploy.runtime.cpu import cpu_description

    print(f"CPU: {cpu_description()}; engine {args.engine}; cameras 640x512 + 1280x720 H.264 at "
          f"{CAMERA_FPS:g} fps; {args.seconds:g} s per run")
    cameras = [camera(640, 512), camera(1280, 720)]
    ir, vis = cameras[0][1], cameras[1][1]
    if args.decoder_threads:
        try:
            return compare_threads(args, ir, vis)
        finally:
            for proc, _ in cameras:
                proc.kill()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            make_rig(folder)
            for n in (int(x) for x in args.rigs.split(",")):
                served = run_serve(n, ir, vis, args.engine, args.seconds, folder)
                serve_fps, serve_mb = served["fps"], served["mb"]
                live_fps, live_mb = run_live(n, ir, vis, args.engine, args.seconds, folder)
                rows.append((n, serve_fps, live_fps, serve_mb, live_mb))
                print(f"  {n} rig(s): serve {serve_fps:.2f} fps, {serve_mb:.0f} MB; "
                      f"{n} x fuse --live {live_fps:.2f} fps, {live_mb:.0f} MB", flush=True)
    finally:
        for proc, _ in cameras:
            proc.kill()
    print("\n| rigs | serve fps (per rig) | fuse --live x N fps (per rig) | fps ratio | serve peak MB | "
          "N processes' peak MB | memory ratio |")
    print("|---|---|---|---|---|---|---|")
    for n, s_fps, l_fps, s_mb, l_mb in rows:
        print(f"| {n} | {s_fps:.2f} ({s_fps / n:.2f}) | {l_fps:.2f} ({l_fps / n:.2f}) | "
              f"{f'{s_fps / l_fps:.2f}x' if l_fps else '- (nothing fused)'} | {s_mb:.0f} | {l_mb:.0f} | "
              f"{s_mb / max(l_mb, 1e-9):.2f}x |")
    below = [n for n, s_fps, *_ in rows if s_fps / n < CAMERA_FPS]
    print(f"\nserve fuses under the cameras' {CAMERA_FPS:g} fps per rig from "
          f"{below[0] if below else 'none of the tried'} rig(s) on.")
    return 0


def compare_threads(args: argparse.Namespace, ir: str, vis: str) -> int:
    """serve against serve: the decoders' threads per stream, interleaved ``--repeats`` times per N."""
    settings = [int(x) for x in args.decoder_threads.split(",")]
    print(f"decoder threads per stream: {settings} (0: FFmpeg's own, {os.cpu_count()} here); "
          f"{args.repeats} interleaved rounds")
    print("\n| rigs | decoder threads | fused fps (per rig) | CPU ms per fused frame | peak MB |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_rig(folder)
        for n in (int(x) for x in args.rigs.split(",")):
            runs: dict[int, list[dict[str, float]]] = {t: [] for t in settings}
            for _ in range(args.repeats):
                for threads in settings:
                    runs[threads].append(run_serve(n, ir, vis, args.engine, args.seconds, folder, threads))
            for threads, results in runs.items():
                fps = sum(r["fps"] for r in results) / len(results)
                cpu_ms = sum(r["cpu_ms"] for r in results) / len(results)
                print(f"| {n} | {threads or 'own'} | {fps:.2f} ({fps / n:.2f}) | {cpu_ms:.0f} | "
                      f"{max(r['mb'] for r in results):.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    sys.exit(main())
