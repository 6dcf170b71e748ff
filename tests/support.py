"""Helpers the test modules share (not tests themselves): how a one-line error looks, and what the
package logged during a block."""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from occo_deploy import log


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A failed verb: non-zero exit, exactly one ``error:`` line on stderr naming every needle, no traceback."""
    assert result.returncode != 0, result.stdout
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


@contextlib.contextmanager
def logged() -> Iterator[list[str]]:
    """What the package logs inside the block, one message each, as the CLI's text shows them (a
    warning as ``note: ...``)."""
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(("note: " if record.levelno >= logging.WARNING else "") + record.getMessage())

    logger = logging.getLogger(log.NAME)
    handler, level = Keep(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """``cv2.imread`` that fails the test, naming the file, instead of returning None."""
    image = cv2.imread(str(path), flags)
    assert image is not None, f"cannot read {path}"
    return image


# -- real RTSP cameras: GStreamer's gst-rtsp-server on the system Python (tests/live/rtsp_server.py) --------
RTSP_SERVER = Path(__file__).parent / "live" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
NO_GST_RTSP = ("needs GStreamer's RTSP server for the system Python (apt: gir1.2-gst-rtsp-server-1.0 python3-gi "
               "gstreamer1.0-plugins-ugly; .ci/run installs them)")


def have_gst_rtsp() -> bool:
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_camera(port: int, user: str | None = "admin", password: str = "hunter2", width: int = 160,
                 height: int = 120, fps: int = 10) -> subprocess.Popen[str]:
    """A camera, started and serving: H.264 ``width`` x ``height`` at ``fps`` on rtsp://127.0.0.1:PORT/cam,
    behind Basic auth unless ``user`` is None. The caller kills it (the benchmarks restart cameras)."""
    args = [SYSTEM_PYTHON, str(RTSP_SERVER), "--port", str(port), "--path", "/cam", "--width", str(width),
            "--height", str(height), "--fps", str(fps)]
    if user:
        args += ["--user", user, "--password", password]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.stdout is None or proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError(f"the RTSP server on port {port} did not start: {proc.communicate()[1]}")
    return proc


@contextlib.contextmanager
def rtsp_server(port: int, user: str | None = "admin", password: str = "hunter2", width: int = 160
                ) -> Iterator[subprocess.Popen[str]]:
    """A camera (``start_camera``) for the length of the block."""
    proc = start_camera(port, user, password, width)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def rtsp_ingest(port: int, path: str) -> Iterator[subprocess.Popen[str]]:
    """An RTSP server that takes a stream pushed to rtsp://127.0.0.1:PORT/PATH and counts its H.264
    frames on stdout ("received N"); the caller kills it and reads the count."""
    proc = subprocess.Popen([SYSTEM_PYTHON, str(RTSP_SERVER), "--port", str(port), "--path", path, "--record"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
