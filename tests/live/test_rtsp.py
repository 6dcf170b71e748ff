"""Cameras as users meet them: a real RTSP server (GStreamer's gst-rtsp-server, H.264, a password),
and what goes wrong with one: a wrong password, a wrong path, a closed port, a server that accepts
and never answers, an outage (issue 24)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from occo_deploy import Fuser
from occo_deploy.live import open_source
from occo_deploy.live.job import run_live
from tests.conftest import run_cli

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def _have_gst_rtsp() -> bool:
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = pytest.mark.skipif(not _have_gst_rtsp(), reason="needs GStreamer's RTSP server for the system Python "
                                "(apt: gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-ugly; .ci/run "
                                "installs them)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def rtsp_server(port: int, user: str | None = "admin", password: str = "hunter2") -> Iterator[subprocess.Popen[str]]:
    args = [SYSTEM_PYTHON, str(SERVER), "--port", str(port), "--path", "/cam"]
    if user:
        args += ["--user", user, "--password", password]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _cause_within(url: str, seconds: float) -> tuple[str | None, float]:
    start = time.monotonic()
    with open_source(url, "visible", reconnect_timeout_s=30) as source:
        while time.monotonic() - start < seconds and not source.cause:
            time.sleep(0.05)
        return source.cause, time.monotonic() - start


def test_each_cause_is_named_as_soon_as_the_transport_knows() -> None:
    port = _free_port()
    with rtsp_server(port):
        base = f"127.0.0.1:{port}"
        cause, took = _cause_within(f"rtsp://admin:wrong@{base}/cam", 5)
        assert cause == "401 unauthorized: wrong user or password" and took < 2.5
        cause, _ = _cause_within(f"rtsp://{base}/cam", 5)
        assert cause is not None and "needs a user and password" in cause
        cause, _ = _cause_within(f"rtsp://admin:hunter2@{base}/nope", 5)
        assert cause == "404 not found: no stream at /nope on this server"
    cause, took = _cause_within(f"rtsp://admin:hunter2@127.0.0.1:{_free_port()}/cam", 5)  # never up
    assert cause is not None and cause.startswith("connection refused") and took < 2.0
    with socket.socket() as mute:  # accepts, never answers
        mute.bind(("127.0.0.1", 0))
        mute.listen()
        cause, _ = _cause_within(f"rtsp://127.0.0.1:{mute.getsockname()[1]}/cam", 15)
    assert cause is not None and "accepted the connection but did not answer" in cause


def test_a_camera_with_a_password_fuses_and_the_password_stays_in_the_url(workspace: Path) -> None:
    port = _free_port()
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
def test_an_outage_is_said_while_it_lasts_and_counted_once(exported: Path) -> None:
    port = _free_port()
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
            report = run_live(fuser, url, url, duration_s=22, reconnect_timeout_s=15, on_figures=watch)
        finally:
            for s in ([server] if server is not None else []) + back:
                s.__exit__(None, None, None)
    down = [f["sources"]["visible"]["status"] for f in seen if f["sources"]["visible"]["state"] == "reconnecting"]
    assert down and any("connection refused" in d for d in down), down
    assert all(d.startswith("reconnecting (") for d in down)
    sources = report.figures["sources"]
    assert sources["visible"]["reconnects"] == 1 and sources["infrared"]["reconnects"] == 1, sources
    late = [f for f in seen if f["elapsed_s"] > restart_at[0] + 8] if restart_at else []
    assert late and late[-1]["fused"] > late[0]["fused"] - 1
