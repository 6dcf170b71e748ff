"""Cameras as users meet them: a real RTSP server (GStreamer's gst-rtsp-server, H.264, a password),
and what goes wrong with one: a wrong password, a wrong path, a closed port, a server that accepts
and never answers, an outage (issue 24)."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from occo_deploy import Fuser
from occo_deploy.live import open_source
from occo_deploy.live.job import LiveOptions, run_live
from tests.conftest import run_cli
from tests.support import NO_GST_RTSP, free_port, have_gst_rtsp, rtsp_server

pytestmark = pytest.mark.skipif(not have_gst_rtsp(), reason=NO_GST_RTSP)


def _cause_within(url: str, seconds: float) -> tuple[str | None, float]:
    start = time.monotonic()
    with open_source(url, "visible", reconnect_timeout_s=30) as source:
        while time.monotonic() - start < seconds and not source.cause:
            time.sleep(0.05)
        return source.cause, time.monotonic() - start


def test_each_cause_is_named_as_soon_as_the_transport_knows() -> None:
    port = free_port()
    with rtsp_server(port):
        base = f"127.0.0.1:{port}"
        cause, took = _cause_within(f"rtsp://admin:wrong@{base}/cam", 5)
        assert cause == "401 unauthorized: wrong user or password" and took < 2.5
        cause, _ = _cause_within(f"rtsp://{base}/cam", 5)
        assert cause is not None and "needs a user and password" in cause
        cause, _ = _cause_within(f"rtsp://admin:hunter2@{base}/nope", 5)
        assert cause == "404 not found: no stream at /nope on this server"
    cause, took = _cause_within(f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/cam", 5)  # never up
    assert cause is not None and cause.startswith("connection refused") and took < 2.0
    with socket.socket() as mute:  # accepts, never answers
        mute.bind(("127.0.0.1", 0))
        mute.listen()
        cause, _ = _cause_within(f"rtsp://127.0.0.1:{mute.getsockname()[1]}/cam", 15)
    assert cause is not None and "accepted the connection but did not answer" in cause


@pytest.mark.slow  # 11-18 s of real streams; test_each_cause_... keeps the module in the default tier
def test_a_camera_with_a_password_fuses_and_the_password_stays_in_the_url(workspace: Path) -> None:
    port = free_port()
    url = f"rtsp://admin:hunter2@127.0.0.1:{port}/cam"
    with rtsp_server(port):
        done = run_cli("fuse", url, url, "--live", "--duration", "6", "-o", "live.mp4", "--report", "r.json",
                       cwd=workspace, process=True)
    assert done.returncode == 0, done.stderr
    text = (workspace / "r.json").read_text()
    report = json.loads(text)
    assert report["live"]["fused"] >= 1 and report["live"]["sources"]["visible"]["state"] in ("closed", "live")
    assert "hunter2" not in text + done.stdout + done.stderr
    # The wrong password: the first line says so, the run ends with exit 2 and still writes its report.
    with rtsp_server(port):
        failed = run_cli("fuse", url.replace("hunter2", "oops"), url, "--live", "--reconnect-timeout", "2",
                         "--report", "bad.json", cwd=workspace, process=True)
    assert failed.returncode == 2 and "401 unauthorized: wrong user or password" in failed.stderr
    assert "oops" not in failed.stderr and "admin:***@" in failed.stderr
    assert "401 unauthorized" in json.loads((workspace / "bad.json").read_text())["error"]


@pytest.mark.slow
@pytest.mark.shared
def test_an_outage_is_said_while_it_lasts_and_counted_once(exported: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"rtsp://admin:hunter2@127.0.0.1:{port}/cam"
    seen: list[dict[str, Any]] = []
    server = rtsp_server(port)
    server.__enter__()
    with Fuser(exported) as fuser:
        def watch(figures: dict[str, Any]) -> None:
            nonlocal server
            seen.append(figures)
            elapsed = figures["elapsed_s"]
            if server is not None and elapsed > 6 and figures["fused"] > 0:
                server.__exit__(None, None, None)  # the camera goes away for about 4 s
                server = None
                restart_at.append(elapsed + 4)
            elif server is None and restart_at and elapsed > restart_at[0] and len(restart_at) == 1:
                restart_at.append(-1.0)
                back.append(rtsp_server(port))
                back[0].__enter__()

        restart_at: list[float] = []
        back: list[Any] = []
        try:
            report = run_live(fuser, url, url, tmp_path / "out.mp4",
                              options=LiveOptions(duration_s=22, reconnect_timeout_s=15), on_figures=watch)
        finally:
            for s in ([server] if server is not None else []) + back:
                s.__exit__(None, None, None)
    down = [f["sources"]["visible"]["status"] for f in seen if f["sources"]["visible"]["state"] == "reconnecting"]
    assert down and any("connection refused" in d for d in down), down
    assert all(d.startswith("reconnecting (") for d in down)
    sources = report.figures["sources"]
    assert sources["visible"]["reconnects"] == 1 and sources["infrared"]["reconnects"] == 1, sources
    # The video covers the whole run in real time (the camera's 10 fps), the outage and the tail
    # included: across the outage the frame before it is held, not the one after it.
    frames = _read_all(tmp_path / "out.mp4")
    first_fused = min(f["elapsed_s"] for f in seen if f["fused"] >= 1)  # the video starts there
    covered = report.figures["elapsed_s"] - first_fused
    assert len(frames) == report.frames_written and abs(len(frames) / 10 - covered) < 1.5, (len(frames), covered)
    runs = _held_runs(frames)
    longest = max(runs)
    assert longest >= 25, runs  # about 4 s without frames: one frame held throughout
    start = sum(runs[: runs.index(longest)])
    end = start + longest

    def step(a: int, b: int) -> float:
        return float(np.abs(frames[a].astype(int) - frames[b].astype(int)).mean())

    # The held frame is the one before the outage (a small step from the frame before it), and the
    # camera's return is the big step after it, not the other way round.
    assert step(start - 1, start) < step(end - 1, end), (step(start - 1, start), step(end - 1, end))


def _read_all(path: Path) -> list[Any]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            cap.release()
            return frames
        frames.append(frame)


def _held_runs(frames: list[Any]) -> list[int]:
    """Lengths of runs of (nearly) identical consecutive frames."""
    runs, count = [], 1
    for a, b in itertools.pairwise(frames):
        if np.abs(a.astype(int) - b.astype(int)).mean() < 1.0:
            count += 1
        else:
            runs.append(count)
            count = 1
    return [*runs, count]


@pytest.mark.slow  # 11-18 s of real streams; test_each_cause_... keeps the module in the default tier
def test_an_early_ctrl_c_is_an_interruption_not_an_error(workspace: Path) -> None:
    # A camera that accepts and never answers, Ctrl-C before any frame: exit 130, nothing written, the
    # report says so (it was exit 2, an error).
    import signal
    import sys

    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen()
        url = f"rtsp://127.0.0.1:{mute.getsockname()[1]}/cam"
        run = subprocess.Popen([sys.executable, "-m", "occo_deploy", "fuse", url, url, "--live", "-o", "x.mp4",
                                "--report", "r.json", "-q"], cwd=workspace, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        time.sleep(4.0)
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    report = json.loads((workspace / "r.json").read_text())
    assert report["frames_written"] == 0 and report["ended_by"] == "Ctrl-C"
    assert any("nothing written" in n for n in report["notices"]) and not (workspace / "x.mp4").exists()
