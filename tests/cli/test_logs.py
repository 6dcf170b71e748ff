"""The package logger as a service's log: with stdout and stderr piped (systemd, Docker), each live
state change is one line at once, in text or as one JSON object per line."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from occo_deploy import log
from occo_deploy.cli import logs


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: a camera that refuses


def _live_run(workspace: Path, *args: str) -> tuple[list[tuple[bool, str]], int]:
    """Run ``fuse --live`` against a refused camera as a service runs it; each stderr line with
    whether the process was still running when it was read."""
    port = _closed_port()
    camera = f"rtsp://admin:s3cret@127.0.0.1:{port}/thermal"
    command = [sys.executable, "-m", "occo_deploy", *args, "fuse", camera, camera.replace("thermal", "main"), "--live",
               "--reconnect-timeout", "3"]
    run = subprocess.Popen(command, cwd=workspace, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "80"})
    assert run.stderr is not None
    lines = [(run.poll() is None, line.rstrip("\n")) for line in run.stderr]
    return lines, run.wait(timeout=60)


def test_a_refused_camera_is_one_line_at_once_with_stdout_piped(workspace: Path) -> None:
    lines, code = _live_run(workspace)
    assert code != 0  # it stayed down past --reconnect-timeout
    for what in ("infrared", "visible"):
        down = [(running, text) for running, text in lines if text.startswith(f"note: {what} source")]
        # Said once (not once per retry), while the run still retried, with the cause, the password masked.
        assert len(down) == 1, lines
        running, text = down[0]
        assert running and text.startswith(f"note: {what} source rtsp://admin:***@127.0.0.1:")
        assert "is not live: connection refused" in text
    assert "s3cret" not in "\n".join(t for _, t in lines)
    assert lines[-1][1].startswith("error: ") and "down for more than 3 s" in lines[-1][1]


@pytest.mark.slow  # a second live process; the text test keeps the module in the default tier
def test_log_format_json_gives_one_object_per_line(workspace: Path) -> None:
    lines, code = _live_run(workspace, "--log-format", "json")
    assert code != 0
    records = [json.loads(text) for _, text in lines if text.startswith("{")]
    events = [r["event"] for r in records]
    downs = [r for r in records if r["event"] == "source_down"]
    assert sorted(r["source"] for r in downs) == ["infrared", "visible"], records  # once each, not per retry
    assert "source_failed" in events and set(events) == {"source_down", "source_failed"}
    for down in downs:
        assert "connection refused" in down["cause"] and down["level"] == "warning"
        assert down["after_s"] <= 3.0  # named within 3 s of the source's start (a refusal answers at once)
        assert "***" in down["url"]
    assert "s3cret" not in "\n".join(t for _, t in lines)


def test_embedding_apps_see_nothing_unless_they_configure_logging() -> None:
    # A fresh process, as an app that imports occo_deploy: a camera that refuses is logged, but
    # nowhere, until the app configures logging (then its own handler gets the record).
    code = """
import logging, socket, time
from occo_deploy import log
from occo_deploy.live.sources import open_source
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
def refused():
    with open_source(f"rtsp://127.0.0.1:{port}/x", "infrared") as source:
        while source.cause is None:
            time.sleep(0.05)
        time.sleep(0.2)
assert all(isinstance(h, logging.NullHandler) for h in logging.getLogger(log.NAME).handlers)
refused()
print("unconfigured done", flush=True)
logging.basicConfig(format="app: %(name)s %(message)s")
refused()
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OPENCV_LOG_LEVEL": "SILENT", "OPENCV_FFMPEG_LOGLEVEL": "-8"})
    assert done.returncode == 0, done.stderr
    app_lines = [ln for ln in done.stderr.splitlines() if "is not live" in ln]
    assert len(app_lines) == 1 and app_lines[0].startswith("app: occo_deploy.live infrared source"), done.stderr


def test_the_cli_handler_replaces_the_one_a_previous_verb_set() -> None:
    logger = logging.getLogger(log.NAME)
    saved = logger.handlers[:], logger.propagate, logger.level
    try:
        first = logs.configure("json")
        assert logs.current() is first and not logger.propagate
        second = logs.configure("text")
        assert logs.current() is second and [h for h in logger.handlers if isinstance(h, logs.CliHandler)] == [second]
    finally:
        logger.handlers[:] = saved[0]
        logger.propagate, logger.level = saved[1], saved[2]
