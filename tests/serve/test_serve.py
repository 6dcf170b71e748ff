"""``occo-deploy serve`` as a service runs it: a process with piped stdout, real RTSP cameras
(GStreamer's gst-rtsp-server), an API a VMS or an operator calls, SIGTERM to stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.conftest import run_cli
from tests.support import NO_GST_RTSP, free_port, have_gst_rtsp, one_line_error, rtsp_ingest, rtsp_server

TOKEN = "t0ken-for-tests"
PASSWORD = "hunter2"


def _call(base: str, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = TOKEN
          ) -> tuple[int, Any]:
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            kind = response.headers.get("Content-Type", "")
            return response.status, json.loads(raw) if "json" in kind else raw.decode()
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _bytes(url: str, limit: int | None = None) -> bytes:
    """The body of a GET (its first ``limit`` bytes: a stream does not end), with the token."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return response.read(limit) if limit else response.read()


def _until(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except KeyError:  # a rig between its removal and its start again (a restart, a reload)
            found = None
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout:g} s: {what}")


def _rigs(base: str) -> dict[str, dict[str, Any]]:
    status, body = _call(base, "GET", "/rigs")
    assert status == 200, body
    return {rig["name"]: rig for rig in body["rigs"]}


@pytest.mark.slow
@pytest.mark.skipif(not have_gst_rtsp(), reason=NO_GST_RTSP)
def test_four_rigs_on_real_cameras_one_engine_an_api_metrics_and_sigterm(exported: Path, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    ports = [free_port() for _ in range(4)]
    api_port, ingest_port, wide_port = free_port(), free_port(), free_port()
    # gate-0 records segments and pushes its fused stream to an RTSP server (a VMS's ingest, MediaMTX).
    rigs = "".join(f'''
[rigs.gate-{k}]
infrared = "rtsp://admin:${{CAM_PASSWORD}}@127.0.0.1:{port}/cam"
visible = "rtsp://admin:${{CAM_PASSWORD}}@127.0.0.1:{port}/cam"
record = {"true" if k == 0 else "false"}
{f'publish = "rtsp://127.0.0.1:{ingest_port}/gate-0"' if k == 0 else ""}
''' for k, port in enumerate(ports))
    hooks, hook_url = _receiver()
    (tmp_path / "rigs.toml").write_text(f'[serve]\nmax_batch = 4\nsegment_s = 2\nwebhook = "{hook_url}"\n{rigs}')
    env = {**os.environ, "CAM_PASSWORD": PASSWORD, "OCCO_SERVE_TOKEN": TOKEN}
    base = f"http://127.0.0.1:{api_port}"
    with ExitStack() as stack:
        cameras = [stack.enter_context(rtsp_server(port, password=PASSWORD)) for port in ports]
        ingest = stack.enter_context(rtsp_ingest(ingest_port, "/gate-0"))
        stack.enter_context(rtsp_server(wide_port, password=PASSWORD, width=320))  # another view's aspect
        out, err = (tmp_path / "stdout.log").open("w"), (tmp_path / "stderr.log").open("w")
        service = subprocess.Popen([sys.executable, "-m", "occo_deploy", "--log-format", "json", "serve", "rigs.toml",
                                    "--listen", f"0.0.0.0:{api_port}", "--engine", str(exported)],
                                   cwd=tmp_path, env=env, stdout=out, stderr=err, text=True)
        try:
            _until("the service is ready", lambda: _ready(base))
            # Beyond loopback every request needs the token.
            assert _call(base, "GET", "/rigs", token=None)[0] == 401
            assert _call(base, "GET", "/rigs", token="wrong")[0] == 401
            rigs_now = _until("four rigs live and fusing", lambda: (r := _rigs(base)) and all(
                rig["state"] == "live" and rig["fused"] >= 3 for rig in r.values()) and r)
            assert set(rigs_now) == {f"gate-{k}" for k in range(4)}
            # gate-0's fused stream reached the RTSP server as H.264 frames.
            _until("the ingest server receives gate-0", lambda: _rigs(base)["gate-0"]["publishing"]["sent"] >= 10)
            # One engine for all: its calls took frames of several rigs at once.
            status, text = _call(base, "GET", "/metrics")
            assert status == 200
            families = {f.name: f for f in text_string_to_metric_families(text)}
            fused = {s.labels["rig"]: s.value for s in families["occo_fused_frames"].samples
                     if s.name == "occo_fused_frames_total"}
            assert set(fused) == set(rigs_now) and min(fused.values()) >= 3
            batch = {s.name: s.value for s in families["occo_engine_batch_frames"].samples}
            assert batch["occo_engine_batch_frames_sum"] > batch["occo_engine_batch_frames_count"]  # > 1 per call
            live = [s for s in families["occo_rig_state"].samples if s.labels["state"] == "live" and s.value == 1]
            assert len(live) == 4
            # Each rig's preview: its newest fused frame, and an MJPEG stream of them.
            frame = cv2.imdecode(np.frombuffer(_bytes(base + "/rigs/gate-3/frame.jpg"), np.uint8), cv2.IMREAD_COLOR)
            assert frame is not None and frame.shape == (120, 160, 3)
            stream = _bytes(base + "/rigs/gate-3/preview.mjpg", limit=20_000)
            assert stream.startswith(b"--occoframe\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8")
            # A rig added with a wrong password: said once per camera, tried at most every 30 s.
            wrong = {"name": "intruder", "infrared": f"rtsp://admin:nope@127.0.0.1:{ports[0]}/cam",
                     "visible": f"rtsp://admin:nope@127.0.0.1:{ports[0]}/cam"}
            status, body = _call(base, "POST", "/rigs", wrong)
            assert status == 201 and "nope" not in json.dumps(body)
            assert _call(base, "POST", "/rigs", wrong)[0] == 409
            assert _call(base, "POST", "/rigs", {"name": "bad name", "infrared": "x", "visible": "y"})[0] == 400
            # The service's environment is not for callers to read: no ${...} through the API.
            status, body = _call(base, "POST", "/rigs", {"name": "probe", "infrared": "rtsp://u:${CAM_PASSWORD}@h/x",
                                                          "visible": "camera:0"})
            assert status == 400 and "rigs file only" in body["error"] and PASSWORD not in json.dumps(body)
            _until("the wrong password is named", lambda: "401" in str(
                _rigs(base)["intruder"]["cameras"]["visible"]["cause"]), timeout=20)
            # One camera goes away (a reboot): its rig goes down, said once with its cause; the others fuse on.
            cameras[1].kill()
            _until("gate-1 is down", lambda: _rigs(base)["gate-1"]["state"] == "down", timeout=20)
            _until("the webhook told", lambda: any(h["event"] == "rig_down" and h["rig"] == "gate-1" for h in hooks))
            before = {name: rig["fused"] for name, rig in _rigs(base).items()}
            time.sleep(2.0)
            after = _rigs(base)
            assert all(after[f"gate-{k}"]["fused"] > before[f"gate-{k}"] for k in (0, 2, 3)), after
            # A rig whose cameras do not share a view (no align): its frames are refused, said once, counted.
            misfit = {"name": "misfit", "infrared": f"rtsp://admin:{PASSWORD}@127.0.0.1:{ports[0]}/cam",
                      "visible": f"rtsp://admin:{PASSWORD}@127.0.0.1:{wide_port}/cam"}
            assert _call(base, "POST", "/rigs", misfit)[0] == 201
            _until("the misfit's frames are refused", lambda: _rigs(base)["misfit"]["dropped"]["failed"] >= 5)
            assert _call(base, "DELETE", "/rigs/misfit")[0] == 200
            # Remove and restart through the API.
            assert _call(base, "DELETE", "/rigs/intruder")[0] == 200
            assert _call(base, "GET", "/rigs/intruder")[0] == 404
            status, body = _call(base, "POST", "/rigs/gate-2/restart")
            assert status == 200 and body["name"] == "gate-2"
            _until("gate-2 live again", lambda: _rigs(base)["gate-2"]["state"] == "live", timeout=20)
            # SIGHUP reloads the file: a rig removed stops, a changed one restarts, the others are not touched.
            text = (tmp_path / "rigs.toml").read_text()
            text = text[: text.index("[rigs.gate-3]")].replace("[rigs.gate-2]\n", "[rigs.gate-2]\nfps = 5\n")
            (tmp_path / "rigs.toml").write_text(text)
            kept = _rigs(base)["gate-0"]["fused"]
            service.send_signal(signal.SIGHUP)
            reloaded = _until("the file reloaded", lambda: (r := _rigs(base)) and "gate-3" not in r and
                              r["gate-2"]["fps"] == 5 and r)
            assert reloaded["gate-0"]["fused"] >= kept  # not restarted: its count goes on
            # No response carries a camera password.
            assert PASSWORD not in json.dumps(_rigs(base)) and PASSWORD not in _call(base, "GET", "/metrics")[1]
            # SIGTERM: drained within 3 s, exit 0, every recorded segment playable.
            service.send_signal(signal.SIGTERM)
            began = time.monotonic()
            code = service.wait(timeout=30)
            took = time.monotonic() - began
        finally:
            if service.poll() is None:
                service.kill()
            out.close()
            err.close()
        ingest.kill()
        received = ingest.communicate()[0]
    assert "received 11" in received, received  # the server depayloaded at least 11 H.264 frames
    logs = (tmp_path / "stderr.log").read_text() + (tmp_path / "stdout.log").read_text()
    assert code == 0, logs[-3000:]
    assert took <= 3.0, took
    events = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert PASSWORD not in logs and "nope" not in logs
    down = [(e["source"], e["cause"]) for e in events if e.get("event") == "source_down" and
            str(ports[1]) in str(e.get("url"))]
    # Each camera of the rig whose server went away: each cause once, not once per retry.
    assert {what for what, _ in down} == {"infrared", "visible"} and len(down) == len(set(down)), down
    refused = [e for e in events if e.get("event") == "source_down" and "401" in str(e.get("cause"))]
    assert 1 <= len(refused) <= 2 and all("every 30 s" in e["message"] for e in refused), refused
    assert any(e.get("event") == "serve_stopped" for e in events)
    refusals = [e for e in events if e.get("event") == "frames_failed"]
    assert len(refusals) == 1 and refusals[0]["rig"] == "misfit", refusals
    assert "do not share a view" in refusals[0]["cause"]
    reload = next(e for e in events if e.get("event") == "serve_reloaded")
    assert reload["removed"] == ["gate-3"] and reload["restarted"] == ["gate-2"] and "gate-0" in reload["unchanged"]
    segments = sorted((tmp_path / "recordings" / "gate-0").glob("gate-0-*.mp4"))
    assert len(segments) >= 2, segments  # 2 s segments
    for segment in segments:
        cap = cv2.VideoCapture(str(segment))
        ok, _ = cap.read()
        cap.release()
        assert ok, segment


def _receiver() -> tuple[list[dict[str, Any]], str]:
    """A webhook receiver on loopback: the JSON bodies posted to it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    got: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's naming
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return got, f"http://127.0.0.1:{server.server_address[1]}/hook"


def _ready(base: str) -> bool:
    try:
        return _call(base, "GET", "/health/ready")[0] == 200
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def test_beyond_loopback_without_a_token_is_refused_before_anything_starts(exported: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCCO_SERVE_TOKEN", raising=False)
    (tmp_path / "rigs.toml").write_text('[rigs.gate]\ninfrared = "camera:0"\nvisible = "camera:1"\n')
    result = run_cli("serve", "rigs.toml", "--listen", "0.0.0.0:8090", "--engine", str(exported), cwd=tmp_path)
    one_line_error(result, "needs a token", "OCCO_SERVE_TOKEN")
    assert result.returncode == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('[rigs.gate]\ninfrared = "camera:0"\nvisible = "camera:1"\nfsp = 10\n')
    result = run_cli("serve", "bad.toml", "--engine", str(exported), cwd=tmp_path)
    one_line_error(result, "bad.toml:4 (rigs.gate.fsp): unknown key 'fsp'")
