"""A small preview server: one page with the fused stream (MJPEG) and the live figures.

Standard library only (``http.server``), one thread per viewer. The fusion loop only hands over
its newest frame and figures (``publish`` never blocks on a viewer); each viewer's thread encodes
the newest frame it has not sent (once per frame, shared) and writes it, so a slow viewer sees fewer
frames and a viewer that disconnects just ends its thread. Bound to 127.0.0.1 unless told otherwise.

    GET /             the page
    GET /stream.mjpg  multipart/x-mixed-replace JPEG stream
    GET /frame.jpg    the newest fused frame
    GET /stats.json   the live figures
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from occo_deploy.errors import InputError
from occo_deploy.urls import mask_all

BOUNDARY = "occoframe"
JPEG_QUALITY = 85

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>occo-deploy live</title>
<style>
body { margin: 0; background: #111; color: #ddd; font: 14px system-ui, sans-serif; }
header { padding: 8px 12px; }
img { display: block; max-width: 100%; background: #000; }
#figures { padding: 8px 12px; font-family: ui-monospace, monospace; white-space: pre; }
</style></head>
<body>
<header>occo-deploy: fused infrared + visible, live</header>
<img id="stream" src="/stream.mjpg" alt="fused stream">
<div id="figures">waiting for figures...</div>
<script>
async function refresh() {
  try {
    const s = await (await fetch("/stats.json", {cache: "no-store"})).json();
    if (!s.fps_in) { document.getElementById("figures").textContent = "waiting for figures..."; return; }
    const l = s.latency_ms || {};
    const ms = v => (v === undefined ? "-" : v.toFixed(0));
    document.getElementById("figures").textContent =
      `in ${s.fps_in.visible.toFixed(1)} / ${s.fps_in.infrared.toFixed(1)} fps (visible / infrared)   ` +
      `out ${s.fps_out.toFixed(1)} fps\\n` +
      `fused ${s.fused}   dropped ${s.dropped}   unpaired ${s.unpaired}   ` +
      `latency p50 ${ms(l.p50_ms)} ms  p99 ${ms(l.p99_ms)} ms` +
      Object.entries(s.sources || {}).map(([what, src]) => `\n${what}: ${src.status}`).join("");
  } catch (e) { document.getElementById("figures").textContent = "fusion stopped"; }
}
setInterval(refresh, 500); refresh();
</script>
</body></html>
"""


def parse_address(text: str, option: str = "--preview", default_host: str | None = "127.0.0.1") -> tuple[str, int]:
    """``PORT`` or ``HOST:PORT`` (HOST defaults to 127.0.0.1: not reachable from other machines);
    ``HOST:PORT`` only when there is no ``default_host``. An IPv6 host may come in brackets."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535 or not (host or default_host):
        forms, example = ("PORT or HOST:PORT", "8080 or 0.0.0.0:8080") if default_host else \
            ("HOST:PORT", "127.0.0.1:8090")
        raise InputError(f"{option} {text!r} is not {forms} (e.g. {example})")
    return host.strip("[]") or str(default_host), number


class PreviewServer:
    """Serves the newest fused frame and figures; ``publish`` them from the fusion loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._frame_id = 0
        self._jpeg: tuple[int, bytes] = (0, b"")
        self._figures: dict[str, Any] = {}
        self._closed = False
        try:
            self._server = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as exc:
            raise InputError(f"cannot serve the preview on {host}:{port}: {exc.strerror}; choose another --preview "
                             "port") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="preview", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}/"

    @property
    def exposed(self) -> bool:
        """Whether other machines can reach the page (bound to anything but a loopback address)."""
        import ipaddress

        host = str(self._server.server_address[0])
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:  # a host name: localhost is loopback, anything else is not
            return host != "localhost"

    def start(self) -> PreviewServer:
        self._thread.start()
        return self

    def publish(self, frame: np.ndarray, figures: dict[str, Any]) -> None:
        """The newest fused frame (kept by reference: do not write into it afterwards) and figures."""
        with self._cond:
            self._frame, self._figures = frame, figures
            self._frame_id += 1
            self._cond.notify_all()

    def publish_figures(self, figures: dict[str, Any]) -> None:
        """New figures without a new frame: while a source is down the page still says so."""
        with self._cond:
            self._figures = figures

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():  # shutdown() waits for serve_forever: never call it on a server not started
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> PreviewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- for the handler ------------------------------------------------------------------------
    def figures_json(self) -> bytes:
        with self._cond:
            return json.dumps(mask_all(self._figures), default=str).encode()

    def jpeg_after(self, seen: int, timeout: float) -> tuple[int, bytes] | None:
        """The newest frame newer than ``seen`` as JPEG (encoded once, shared), or None on timeout/close."""
        import cv2

        with self._cond:
            if self._frame_id <= seen and not self._closed:
                self._cond.wait(timeout)
            if self._closed or self._frame is None or self._frame_id <= seen:
                return None
            frame_id, frame = self._frame_id, self._frame
            if self._jpeg[0] == frame_id:
                return self._jpeg
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return None
        with self._cond:
            if frame_id >= self._jpeg[0]:
                self._jpeg = (frame_id, data.tobytes())
            return frame_id, data.tobytes()

    @property
    def closed(self) -> bool:
        return self._closed


def stream_mjpeg(handler: BaseHTTPRequestHandler, next_jpeg: Callable[[int], tuple[int, bytes] | None],
                 closed: Callable[[], bool]) -> None:
    """Answer ``handler``'s request with an MJPEG stream (multipart/x-mixed-replace) until ``closed()``
    or the viewer leaves. ``next_jpeg(seen)``: the newest frame's (id, JPEG) newer than ``seen``, or
    None after waiting a while (so that ``closed`` is asked again)."""
    handler.send_response(HTTPStatus.OK)
    handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
    handler.send_header("Cache-Control", "no-store")
    handler.send_header("Connection", "close")  # no length: the stream ends with the connection
    handler.end_headers()
    handler.close_connection = True
    seen = 0
    try:
        # Each part is followed at once by the next part's boundary and headers: a browser shows a
        # part only once the next one has begun, so a boundary sent before each part instead kept the
        # page one frame behind, and blank until the second frame.
        part = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n".encode()
        handler.wfile.write(part)
        while not closed():
            jpeg = next_jpeg(seen)
            if jpeg is None:
                continue
            seen, data = jpeg
            handler.wfile.write(data + b"\r\n" + part)
            handler.wfile.flush()
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        return  # the viewer left; fusion never noticed


def _handler(preview: PreviewServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "occo-deploy-preview"
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # the base class's signature
            return None  # library code never prints

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # http.server's naming
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/stats.json":
                self._send(HTTPStatus.OK, preview.figures_json(), "application/json")
            elif path == "/frame.jpg":
                jpeg = preview.jpeg_after(-1, 0)
                if jpeg is None:
                    self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "no fused frame yet")
                else:
                    self._send(HTTPStatus.OK, jpeg[1], "image/jpeg")
            elif path == "/stream.mjpg":
                self._stream()
            else:
                self.send_error(HTTPStatus.NOT_FOUND, "the preview has /, /stream.mjpg, /frame.jpg and /stats.json")

        def _stream(self) -> None:
            stream_mjpeg(self, lambda seen: preview.jpeg_after(seen, timeout=1.0), lambda: preview.closed)

        def _not_allowed(self) -> None:
            self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, "the preview only answers GET")

        do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

        def do_HEAD(self) -> None:
            self._not_allowed()

    return Handler
