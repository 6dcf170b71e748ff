#!/usr/bin/env python3
"""Live fusion under real-time load: two loopback cameras at 30 fps, latency and drops per engine.

    python benchmarks/live_latency.py [--engine export/occo.onnx] [--engine engines/occo_int8_openvino.onnx]
                                      [--seconds 60] [--sizes 640x480,320x240]

Two senders (tests/live/sender.py: the M3SVD sequence, MPEG-2 in MPEG-TS over TCP on loopback, paced
at 30 fps) feed ``occo_deploy.live.LiveFusion`` for each engine and size, one after another. Per run:
frames in (visible, infrared), fused out per second, dropped and unpaired visible frames, and
capture-to-output latency p50/p99, also for the first and the last third of the run: a queue would
make the last third's latency grow; newest-first fusion keeps it flat. The senders encode on the
same CPU, as cameras would not: their share is the price of testing without cameras.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from occo_deploy.runtime.cpu import cpu_description  # noqa: E402

SENDER = ROOT / "tests" / "live" / "sender.py"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(engine: Path, size: str, seconds: float) -> dict[str, Any]:
    from occo_deploy.fusing.fuser import Fuser
    from occo_deploy.live import LiveFusion, open_source

    ports = _port(), _port()
    senders = [subprocess.Popen([sys.executable, str(SENDER), f"tcp://127.0.0.1:{p}?listen=1", "--what", what,
                                 "--fps", "30", "--size", size], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for p, what in zip(ports, ("ir", "vis"))]
    try:
        time.sleep(0.5)
        with Fuser(engine) as fuser, open_source(f"tcp://127.0.0.1:{ports[0]}", "infrared") as ir, \
                open_source(f"tcp://127.0.0.1:{ports[1]}", "visible") as vis:
            live = LiveFusion(fuser, ir, vis, duration_s=seconds)
            latencies = [(f.t_capture - live.started, f.latency_ms) for f in live]
            # How long past --duration the run ended: a frame that cannot end in time must not be begun.
            overrun_ms = (time.monotonic() - live.started - seconds) * 1000
            figures = live.figures()
            name = fuser.info().get("precision", "?") + " " + fuser.info().get("backend", "?")
    finally:
        for s in senders:
            s.kill()
            s.wait()
    lat = np.array([v for _, v in latencies])
    thirds = [np.array([v for t, v in latencies if k * seconds / 3 <= t < (k + 1) * seconds / 3]) for k in range(3)]
    return {"engine": name, "size": size, "in_vis": figures["fps_in"]["visible"],
            "in_ir": figures["fps_in"]["infrared"],
            "out": figures["fps_out_overall"], "dropped": figures["dropped"], "unpaired": figures["unpaired"],
            "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
            "first_p50": float(np.median(thirds[0])) if thirds[0].size else float("nan"),
            "last_p50": float(np.median(thirds[2])) if thirds[2].size else float("nan"), "overrun": overrun_ms}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", type=Path, action="append")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--sizes", default="640x480,320x240")
    args = ap.parse_args()
    engines = args.engine or [ROOT / "export" / "occo.onnx"]
    print(f"CPU: {cpu_description()}; two 30 fps senders on loopback; {args.seconds:g} s per run")
    rows = [run(engine, size, args.seconds) for engine in engines for size in args.sizes.split(",")]
    print("\n| engine | size | in fps (vis / ir) | out fps | dropped | unpaired | latency p50 / p99 ms | "
          "p50 first / last third ms | past duration ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['engine']} | {r['size']} | {r['in_vis']:.1f} / {r['in_ir']:.1f} | {r['out']:.2f} | "
              f"{r['dropped']} | {r['unpaired']} | {r['p50']:.0f} / {r['p99']:.0f} | "
              f"{r['first_p50']:.0f} / {r['last_p50']:.0f} | {r['overrun']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
