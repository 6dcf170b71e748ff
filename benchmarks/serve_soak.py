"""A soak of ``serve`` as the field runs it: 4 rigs for 10 minutes on real RTSP cameras, one camera
restarted every minute (a reboot), one rig with a wrong password.

    python benchmarks/serve_soak.py [--engine export/occo.onnx] [--minutes 10]

Every half second ``GET /rigs`` is read. Printed: for each rig whose cameras stay up, the longest
time its fused count did not grow (the stall: 2 s at most expected), and the fused frames; the
restarted rig's outages and reconnections; how often the wrong password was tried (at most once a
30 s per camera); the service's resident memory after the first minute and at the end (growth
under 50 MB expected); and whether every recording segment plays. Names the CPU.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from tests.support import free_port  # noqa: E402
from tests.support import start_camera as camera  # noqa: E402  (the tests' cameras, Basic auth)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", type=Path, default=ROOT / "export" / "occo.onnx")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--restart-every", type=float, default=60.0,
                        help="seconds between r2's camera reboots; 0: never (to tell memory growth apart)")
    args = parser.parse_args()

    import cv2

    from occo_deploy.runtime.cpu import cpu_description

    print(f"CPU: {cpu_description()}; engine {args.engine}; {args.minutes:g} min, 4 rigs (160x120, 10 fps)")
    ports = [free_port() for _ in range(4)]
    cams = {port: camera(port) for port in ports}
    api = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rigs = "".join(f'[rigs.r{k}]\ninfrared = "rtsp://admin:hunter2@127.0.0.1:{p}/cam"\n'
                       f'visible = "rtsp://admin:hunter2@127.0.0.1:{p}/cam"\nrecord = true\n\n'
                       for k, p in enumerate(ports[:3]))
        rigs += (f'[rigs.locked]\ninfrared = "rtsp://admin:wrong@127.0.0.1:{ports[3]}/cam"\n'
                 f'visible = "rtsp://admin:wrong@127.0.0.1:{ports[3]}/cam"\n')
        (folder / "rigs.toml").write_text(f"[serve]\nsegment_s = 60\n\n{rigs}")
        log = (folder / "serve.log").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "occo_deploy", "--log-format", "json", "serve", "rigs.toml",
                                 "--engine", str(args.engine.resolve()), "--listen", f"127.0.0.1:{api}"], cwd=folder,
                                stdout=log, stderr=log)
        last_fused: dict[str, tuple[int, float]] = {}
        stalls: dict[str, float] = {"r0": 0.0, "r1": 0.0}
        start = time.monotonic()
        end = start + args.minutes * 60
        next_restart = start + args.restart_every if args.restart_every > 0 else float("inf")
        memory_at_1min = None
        restarts = 0
        final: dict[str, dict[str, object]] = {}
        try:
            while time.monotonic() < end:
                time.sleep(0.5)
                if proc.poll() is not None:
                    log.flush()
                    raise SystemExit(f"serve ended ({proc.returncode}):\n{(folder / 'serve.log').read_text()[-2000:]}")
                now = time.monotonic()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{api}/rigs", timeout=5) as response:
                        rigs_now = {r["name"]: r for r in json.load(response)["rigs"]}
                except OSError:
                    continue
                final = rigs_now
                for name in stalls:
                    fused = int(rigs_now[name]["fused"])
                    if fused == 0:
                        continue  # still starting
                    seen, since = last_fused.get(name, (-1, now))
                    if fused > seen:
                        last_fused[name] = (fused, now)
                    else:
                        stalls[name] = max(stalls[name], now - since)
                if memory_at_1min is None and now - start >= 60:
                    memory_at_1min = rss_mb(proc.pid)
                if now >= next_restart:  # r2's camera reboots: down 5 s, then back
                    cams[ports[2]].kill()
                    cams[ports[2]].wait()
                    time.sleep(5)
                    cams[ports[2]] = camera(ports[2])
                    restarts += 1
                    next_restart += args.restart_every
            memory_end = rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            log.close()
            for cam in cams.values():
                cam.kill()
        events = [json.loads(line) for line in (folder / "serve.log").read_text().splitlines()
                  if line.startswith("{")]
        leaked = "hunter2" in (folder / "serve.log").read_text() or ":wrong@" in (folder / "serve.log").read_text()
        segments = sorted((folder / "recordings").rglob("*.mp4"))
        playable = 0
        for segment in segments:
            cap = cv2.VideoCapture(str(segment))
            playable += bool(cap.read()[0])
            cap.release()
    print("\n| what | measured |\n|---|---|")
    for name, stall in stalls.items():
        # Polls 0.5 s apart: a gap of 1 s or more between fused frames leaves a poll without one.
        said = f"{stall:.1f} s" if stall else "under 1 s (every 0.5 s poll saw a new frame)"
        print(f"| {name} (cameras up) longest stall | {said} ({final.get(name, {}).get('fused')} fused) |")
    r2 = final.get("r2", {})
    cameras = r2.get("cameras", {}) if isinstance(r2, dict) else {}
    print(f"| r2 camera restarts / reconnections seen | {restarts} / "
          f"{[c.get('reconnects') for c in cameras.values()] if isinstance(cameras, dict) else '?'} |")
    attempts = [e for e in events if e.get("event") == "source_down" and str(ports[3]) in str(e.get("url"))]
    print(f"| locked rig: source_down lines (one per camera and cause) | {len(attempts)} |")
    print(f"| a password in the log | {'yes' if leaked else 'no'} |")
    if memory_at_1min is not None:
        print(f"| resident memory after 1 min / at the end | {memory_at_1min:.0f} / {memory_end:.0f} MB "
              f"({memory_end - memory_at_1min:+.0f} MB) |")
    print(f"| recording segments playable | {playable} of {len(segments)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
