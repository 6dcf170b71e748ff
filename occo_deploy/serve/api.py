"""The service's HTTP API, metrics, health and previews (standard library ``http.server``).

    GET    /                         this list, as JSON
    GET    /rigs                     every rig: state, cameras, counters, rates
    GET    /rigs/NAME                one rig
    POST   /rigs                     add a rig: {"name", "infrared", "visible"[, "align", "fps", "record"]}
    DELETE /rigs/NAME                stop and remove a rig
    POST   /rigs/NAME/restart        reconnect a rig's cameras
    GET    /rigs/NAME/preview.mjpg   the rig's fused frames, MJPEG
    GET    /rigs/NAME/frame.jpg      its newest fused frame
    GET    /metrics                  Prometheus text format
    GET    /health/live              200 while the process answers
    GET    /health/ready             200 once the engine is loaded and its loop runs, else 503

Errors are JSON ``{"error": "..."}`` with 400 (a bad rig), 401 (no or a wrong token), 404, 409 (a
name taken). On loopback no token is needed; on any other address every request needs
``Authorization: Bearer TOKEN`` (health checks too: put a reverse proxy in front for TLS and for
unauthenticated probes). No response carries a camera password: URLs are masked.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from occo_deploy import log
from occo_deploy.errors import InputError
from occo_deploy.live.preview import parse_address, stream_mjpeg
from occo_deploy.serve.config import ConfigError, rig_from
from occo_deploy.serve.service import ConflictError, NotFoundError, Serving
from occo_deploy.urls import mask_all

_log = log.get("serve")

ROUTES = {
    "GET /": "this list",
    "GET /rigs": "every rig: state, cameras, counters, rates",
    "GET /rigs/NAME": "one rig",
    "POST /rigs": 'add a rig: {"name", "infrared", "visible"[, "align", "fps", "record"]}',
    "DELETE /rigs/NAME": "stop and remove a rig",
    "POST /rigs/NAME/restart": "reconnect a rig's cameras",
    "GET /rigs/NAME/preview.mjpg": "the rig's fused frames, MJPEG",
    "GET /rigs/NAME/frame.jpg": "its newest fused frame",
    "GET /metrics": "Prometheus text format",
    "GET /health/live": "200 while the process answers",
    "GET /health/ready": "200 once the engine is loaded and its loop runs, else 503",
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_guarded(host: str, token: str | None) -> None:
    """Beyond loopback, nobody else gets in without the token."""
    if not is_loopback(host) and not token:
        raise InputError(f"listening on {host} (beyond this machine) needs a token: set OCCO_SERVE_TOKEN or give "
                         "--token-file FILE; or listen on 127.0.0.1 behind a reverse proxy")


def parse_listen(text: str) -> tuple[str, int]:
    """``--listen HOST:PORT``: the preview's address rule, with the host required."""
    return parse_address(text, "--listen", default_host=None)


class ApiServer:
    """The HTTP side of a ``Service``, on a thread of its own per request."""

    def __init__(self, service: Serving, host: str, port: int, token: str | None) -> None:
        check_guarded(host, token)
        self.service, self.token = service, token
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self.host, self.port = host, self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="serve-api", daemon=True)
        self.closing = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ApiServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.closing = True
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def authorized(self, header: str | None) -> bool:
        if not self.token:
            return True
        scheme, _, given = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())


def _handler(api: ApiServer) -> type[BaseHTTPRequestHandler]:
    service = api.service

    class Handler(BaseHTTPRequestHandler):
        server_version = "occo-deploy-serve"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # the base class's signature
            return None  # requests are not logged line by line; state changes are

        def _json(self, status: HTTPStatus, body: Any) -> None:
            data = json.dumps(mask_all(body), default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            if status == HTTPStatus.UNAUTHORIZED:
                self.send_header("WWW-Authenticate", 'Bearer realm="occo-deploy"')
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: HTTPStatus, message: str) -> None:
            self._json(status, {"error": message})

        def _route(self, method: str) -> None:
            if not api.authorized(self.headers.get("Authorization")):
                self._error(HTTPStatus.UNAUTHORIZED, "this service needs Authorization: Bearer TOKEN")
                return
            parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
            try:
                self._dispatch(method, parts)
            except NotFoundError as exc:
                self._error(HTTPStatus.NOT_FOUND, str(exc))
            except ConflictError as exc:
                self._error(HTTPStatus.CONFLICT, str(exc))
            except (ConfigError, InputError) as exc:
                self._error(HTTPStatus.BAD_REQUEST, str(exc))
            except (BrokenPipeError, ConnectionResetError):
                return

        def _dispatch(self, method: str, parts: list[str]) -> None:
            if method == "GET" and not parts:
                self._json(HTTPStatus.OK, {"service": "occo-deploy serve", "routes": ROUTES})
            elif method == "GET" and parts == ["metrics"]:
                service.status()  # refreshes the rate gauges
                data = service.metrics.exposition()
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif method == "GET" and parts == ["health", "live"]:
                self._json(HTTPStatus.OK, {"status": "live"})
            elif method == "GET" and parts == ["health", "ready"]:
                ready = service.ready
                self._json(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE,
                           {"status": "ready" if ready else "not ready", "error": service.error})
            elif method == "GET" and parts == ["rigs"]:
                self._json(HTTPStatus.OK, service.status())
            elif method == "POST" and parts == ["rigs"]:
                body = self._body()
                name = body.pop("name", None)
                if not isinstance(name, str):
                    raise InputError('the rig needs a "name" (letters, digits, - and _)')
                base = service.config.path.parent if service.config.path else Path.cwd()
                rig = rig_from(name, body, base, expand=False)
                runner = service.add(rig)
                self._json(HTTPStatus.CREATED, runner.figures())
            elif len(parts) == 2 and parts[0] == "rigs" and method in ("GET", "DELETE"):
                if method == "GET":
                    self._json(HTTPStatus.OK, self._rig(parts[1]).figures())
                else:
                    service.remove(parts[1])
                    self._json(HTTPStatus.OK, {"removed": parts[1]})
            elif len(parts) == 3 and parts[0] == "rigs" and method == "POST" and parts[2] == "restart":
                self._json(HTTPStatus.OK, service.restart(parts[1]).figures())
            elif len(parts) == 3 and parts[0] == "rigs" and method == "GET" and parts[2] == "frame.jpg":
                _, jpeg = self._rig(parts[1]).next_preview(-1, 0)
                if jpeg is None:
                    self._error(HTTPStatus.SERVICE_UNAVAILABLE, "no fused frame yet")
                else:
                    self._bytes(jpeg, "image/jpeg")
            elif len(parts) == 3 and parts[0] == "rigs" and method == "GET" and parts[2] == "preview.mjpg":
                self._mjpeg(parts[1])
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no route {method} {self.path}; GET / lists them")

        def _rig(self, name: str) -> Any:
            rig = service.rigs.get(name)
            if rig is None:
                raise NotFoundError(f"no rig named '{name}'")
            return rig

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError as exc:
                raise InputError(f"the body is not JSON: {exc}") from exc
            if not isinstance(body, dict):
                raise InputError("the body must be a JSON object")
            return body

        def _bytes(self, data: bytes, content_type: str) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def _mjpeg(self, name: str) -> None:
            rig = self._rig(name)

            def newer(seen: int) -> tuple[int, bytes] | None:
                frame_id, jpeg = rig.next_preview(seen, timeout=1.0)
                return (frame_id, jpeg) if jpeg is not None and frame_id != seen else None

            stream_mjpeg(self, newer, lambda: rig.closed or api.closing)

        def do_GET(self) -> None:  # http.server's naming
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler

