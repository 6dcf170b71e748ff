"""``occo-deploy serve``: fuse a fleet of camera rigs with one engine, as an unattended service."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from occo_deploy.cli.common import one_line_errors
from occo_deploy.cli.options import Engine, InferencePrecision, Provider, Ray, Threads
from occo_deploy.errors import EngineError, InputError, Terminated

if TYPE_CHECKING:
    from occo_deploy.serve.service import Serving

TOKEN_VARIABLE = "OCCO_SERVE_TOKEN"


@one_line_errors
def serve(
    rigs: Path = typer.Argument(..., metavar="RIGS.toml", help="The rigs file: [rigs.NAME] tables of cameras (see docs/serve.md)."),
    listen: str = typer.Option("127.0.0.1:8090", "--listen", metavar="HOST:PORT", help="Address of the API, /metrics, health and previews; beyond loopback a token is required."),
    engine: Engine = None,
    token_file: Path | None = typer.Option(None, "--token-file", metavar="FILE", help=f"The API's bearer token, first line of FILE [default: ${TOKEN_VARIABLE}]."),
    provider: Provider = None,
    threads: Threads = None,
    inference_precision: InferencePrecision = None,
    ray: Ray = None,
) -> None:
    """Fuse many camera rigs with one engine: batched, reconnecting, watched (API, /metrics), recorded."""
    from occo_deploy import log
    from occo_deploy.fusing.options import RunOptions
    from occo_deploy.serve.api import ApiServer, check_guarded, parse_listen
    from occo_deploy.serve.config import load
    from occo_deploy.serve.service import Service
    from occo_deploy.workspace import default_engine

    said = log.get("serve")
    config = load(rigs)
    host, port = parse_listen(listen)
    token = _token(token_file)
    check_guarded(host, token)  # before the engine loads: a refusal is at once
    run = RunOptions(provider=provider, threads=threads, inference_precision=inference_precision)
    chosen = (engine or config.engine or default_engine()).resolve()
    service: Serving
    if ray is not None:
        from occo_deploy.serve.cluster import ClusterService

        service = ClusterService(config, chosen, run, None if ray == "local" else ray)
    else:
        service = Service(config, chosen, run)
    try:
        api = ApiServer(service, host, port, token)
    except OSError as exc:
        service.stop()
        raise InputError(f"cannot listen on {listen}: {exc.strerror}; pick another --listen") from exc
    except BaseException:
        service.stop()
        raise
    reload = threading.Event()
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: reload.set())
    stopped = "stopped"
    try:
        service.start()
        api.start()
        said.info("API on %s (GET / lists the routes)", api.url, extra={"fields": {"event": "api_listening",
                                                                                   "url": api.url}})
        while service.ready or not service.error:
            if reload.wait(0.5):
                reload.clear()
                _reload(service, rigs)
            if service.error:
                break
        if service.error:
            raise EngineError(f"the engine failed: {service.error}; check the engine with occo-deploy check")
    except Terminated:
        stopped = "SIGTERM"
    except KeyboardInterrupt:
        stopped = "Ctrl-C"
    finally:
        api.close()
        service.stop()
    said.info("stopped (%s)", stopped, extra={"fields": {"event": "serve_stopped", "by": stopped}})
    # A camera's reader may still be inside an open or a read that only the stream's timeout ends;
    # the interpreter's shutdown would tear it down inside OpenCV (an abort). Everything is closed.
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _reload(service: Serving, rigs: Path) -> None:
    """SIGHUP: serve the file as it is now; a file that does not load leaves the rigs as they were."""
    from occo_deploy import log
    from occo_deploy.serve.config import ConfigError, load

    try:
        service.reload(load(rigs))
    except ConfigError as exc:
        log.get("serve").error("reload refused, still serving the rigs as they were: %s", exc,
                               extra={"fields": {"event": "reload_refused"}})


def _token(token_file: Path | None) -> str | None:
    if token_file is not None:
        try:
            lines = token_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InputError(f"cannot read --token-file {token_file}: {exc.strerror}") from exc
        if not lines or not lines[0].strip():
            raise InputError(f"--token-file {token_file} is empty; put the token on its first line")
        return lines[0].strip()
    return os.environ.get(TOKEN_VARIABLE) or None
