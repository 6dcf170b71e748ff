"""The service: one engine, any number of rigs, one loop that batches their frames.

Every few milliseconds the engine loop asks each rig, in a rotating order (fair: no rig is always
first), for its newest pair. The first pair found opens a batch; the batch waits at most
``batch_wait_ms`` for other rigs' pairs (as DeepStream's batched-push-timeout and Triton's
max_queue_delay do) and closes at ``max_batch`` frames. Pairs of one frame size go into one engine
call, each stretched over its own rig's held range; each rig gets its frame back. A rig whose
frames come faster than the engine fuses them has the older ones dropped (newest first), counted
per rig. The engine's threads are the process's: one engine, not one per rig.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from occo_deploy import log
from occo_deploy.errors import InputError
from occo_deploy.fusing.fuser import Fuser
from occo_deploy.fusing.options import RunOptions
from occo_deploy.runtime.stats import LIVE_WINDOW, LatencyStats
from occo_deploy.serve.config import RigConfig, ServeConfig
from occo_deploy.serve.metrics import Metrics
from occo_deploy.serve.rig import Pending, RigRunner
from occo_deploy.serve.webhook import Webhook

_log = log.get("serve")

#: How often the engine loop looks for new pairs when none was there (s).
POLL_S = 0.003
#: The window of the engine's busy share (s).
BUSY_WINDOW_S = 5.0


class ServedRig(Protocol):
    """A rig as the API sees it, on this machine (``RigRunner``) or on a cluster's worker."""

    @property
    def closed(self) -> bool: ...

    def figures(self) -> dict[str, Any]: ...

    def next_preview(self, after: int, timeout: float) -> tuple[int, bytes | None]: ...


class Exposition(Protocol):
    def exposition(self) -> bytes: ...


class Serving(Protocol):
    """What the API and the CLI drive: ``Service`` on one machine, ``cluster.ClusterService`` on Ray."""

    config: ServeConfig
    error: str | None

    @property
    def rigs(self) -> Mapping[str, ServedRig]: ...

    @property
    def metrics(self) -> Exposition: ...

    @property
    def ready(self) -> bool: ...

    def start(self) -> Serving: ...

    def stop(self) -> None: ...

    def add(self, rig: RigConfig) -> ServedRig: ...

    def remove(self, name: str) -> None: ...

    def restart(self, name: str) -> ServedRig: ...

    def reload(self, config: ServeConfig) -> dict[str, list[str]]: ...

    def status(self) -> dict[str, Any]: ...


class Service:
    def __init__(self, config: ServeConfig, engine: Path, run: RunOptions | None = None) -> None:
        self.config = config
        self.metrics = Metrics()
        self.fuser = Fuser(engine, **(run or RunOptions()).kwargs())
        # A service runs for days: its per-stage timings keep the last calls, not every one.
        self.fuser.stats = LatencyStats(window=LIVE_WINDOW)
        self.engine = engine
        self.rigs: dict[str, RigRunner] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._loop = threading.Thread(target=self._run, name="serve-engine", daemon=True)
        self._turn = 0
        self._busy: deque[tuple[float, float]] = deque()
        self._calling: float | None = None  # when the engine call in flight began
        self.batches = 0
        self.started = time.monotonic()
        self.error: str | None = None
        self.webhook = Webhook(config.webhook) if config.webhook else None

    @property
    def max_batch(self) -> int:
        """The config's, else on a CPU engine one frame a call: a batch of N runs no faster than N
        calls there, and costs N times the activations (8 rigs at 1032x720 on OpenVINO INT8 peaked at
        12.4 GB batched, benchmarks/README.md "Serving"). On a GPU, batches of 4 ran 1.3x the frames
        of single calls."""
        return self.config.max_batch or (1 if self.fuser.on_cpu else 4)

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> Service:
        for rig in self.config.rigs.values():
            self.add(rig)
        self._loop.start()
        _log.info("serving %d rig(s) with %s", len(self.rigs), self.engine,
                  extra={"fields": {"event": "serve_started", "rigs": len(self.rigs), "engine": str(self.engine)}})
        return self

    def stop(self) -> None:
        """Stop the loop (the batch in flight finishes), then every rig: recordings are closed whole."""
        self._stop.set()
        if self._loop.is_alive():
            self._loop.join(timeout=10)
        with self._lock:
            rigs = list(self.rigs.values())
        closers = [threading.Thread(target=rig.close, daemon=True) for rig in rigs]
        for closer in closers:  # cameras close in parallel: each may wait on its stream's timeout
            closer.start()
        for closer in closers:
            closer.join(timeout=10)
        if self.webhook is not None:
            self.webhook.close()
        self.fuser.close()

    @property
    def ready(self) -> bool:
        """Ready to serve: the engine is loaded and its loop runs (rigs may still be connecting)."""
        return self._loop.is_alive() and self.error is None

    # -- rigs -----------------------------------------------------------------------------------------
    def add(self, rig: RigConfig) -> RigRunner:
        with self._lock:
            if rig.name in self.rigs:
                raise ConflictError(f"a rig named '{rig.name}' is already served; remove or restart it")
            c = self.config
            runner = RigRunner(rig, self.fuser, self.metrics, recordings=c.recordings if rig.record else None,
                               segment_s=c.segment_s, keep_hours=c.keep_hours, keep_gb=c.keep_gb,
                               decoder_threads=c.decoder_threads, on_state=self._state_changed).start()
            self.rigs[rig.name] = runner
            self.metrics.rigs.set(len(self.rigs))
            return runner

    def _state_changed(self, rig: str, state: str, was: str, causes: dict[str, str]) -> None:
        if self.webhook is not None:
            self.webhook.state_changed(rig, state, was, causes)

    def remove(self, name: str) -> None:
        with self._lock:
            runner = self.rigs.pop(self._known(name))
            self.metrics.rigs.set(len(self.rigs))
        runner.close()
        self.metrics.forget(name)

    def restart(self, name: str) -> RigRunner:
        with self._lock:
            config = self.rigs[self._known(name)].config
        self.remove(name)
        return self.add(config)

    def reload(self, config: ServeConfig) -> dict[str, list[str]]:
        with self._lock:
            current = {name: rig.config for name, rig in self.rigs.items()}
        return reload_rigs(self, current, config)

    def _known(self, name: str) -> str:
        if name not in self.rigs:
            raise NotFoundError(f"no rig named '{name}' (serving: {', '.join(sorted(self.rigs)) or 'none'})")
        return name

    def status(self) -> dict[str, Any]:
        with self._lock:
            rigs = list(self.rigs.values())
        return {"engine": self.fuser.info(), "batches": self.batches, "busy_ratio": round(self.busy_ratio(), 3),
                "max_batch": self.max_batch, "batch_wait_ms": self.config.batch_wait_ms,
                "rigs": [rig.figures() for rig in rigs]}

    # -- the engine loop --------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._collect()
            if not batch:
                self._stop.wait(POLL_S)
                continue
            by_size: dict[tuple[int, int], list[Pending]] = {}
            for pending in batch:
                by_size.setdefault(pending.hw, []).append(pending)
            for group in by_size.values():
                self._fuse(group)

    def _collect(self) -> list[Pending]:
        """Pairs of up to ``max_batch`` rigs: one newest pair per rig, in a rotating order, waiting at most
        ``batch_wait_ms`` after the first for the others."""
        with self._lock:
            rigs = list(self.rigs.values())
        if not rigs:
            return []
        self._turn = (self._turn + 1) % len(rigs)
        order = rigs[self._turn:] + rigs[: self._turn]
        batch: list[Pending] = []
        waiting = list(order)
        deadline: float | None = None
        while waiting and len(batch) < self.max_batch:
            for rig in list(waiting):
                pending = rig.take() if not rig.closed else None
                if pending is not None:
                    batch.append(pending)
                    waiting.remove(rig)
                    if len(batch) == self.max_batch:
                        break
            if not batch:
                return []
            deadline = deadline or time.monotonic() + self.config.batch_wait_ms / 1e3
            if time.monotonic() >= deadline or self._stop.is_set():
                break
            self._stop.wait(min(POLL_S, max(0.0, deadline - time.monotonic())))
        return batch

    def _fuse(self, group: list[Pending]) -> None:
        began = self._calling = time.monotonic()
        try:
            fused = self.fuser.fuse_batch([p.ir for p in group], [p.vis for p in group],
                                          stretch=[p.rig.stretch for p in group])
        except InputError as exc:  # frames the engine cannot take (size, aspect): said once per rig and cause
            for pending in group:
                pending.rig.failed(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the engine failed: said, and the service is not ready
            self.error = str(exc)
            _log.error("the engine failed: %s", exc, extra={"fields": {"event": "engine_failed"}})
            self._stop.set()
            return
        finally:
            self._calling = None
        ended = time.monotonic()
        self._busy.append((began, ended))
        self.batches += 1
        self.metrics.batch.observe(len(group))
        self.metrics.busy.set(self.busy_ratio())
        for pending, frame in zip(group, fused):
            pending.rig.deliver(frame, pending.t_capture)

    def busy_ratio(self) -> float:
        now = time.monotonic()
        while self._busy and self._busy[0][1] < now - BUSY_WINDOW_S:
            self._busy.popleft()
        window = min(BUSY_WINDOW_S, max(1e-9, now - self.started))
        spans = list(self._busy)
        calling = self._calling
        if calling is not None:  # a call of seconds (a CPU engine, large frames) counts while it runs
            spans.append((calling, now))
        return min(1.0, sum(end - max(start, now - window) for start, end in spans) / window)


def reload_rigs(service: Serving, current: Mapping[str, RigConfig], config: ServeConfig) -> dict[str, list[str]]:
    """Serve ``config``'s rigs, ``current`` being those served: new ones start, removed ones stop,
    changed ones restart, unchanged ones are not touched (their cameras stay connected). One
    machine's ``Service`` and the cluster's head both reload this way."""
    gone = [n for n in current if n not in config.rigs]
    new = [n for n in config.rigs if n not in current]
    changed = [n for n in config.rigs if n in current and config.rigs[n] != current[n]]
    for name in gone + changed:
        service.remove(name)
    service.config = config
    for name in new + changed:
        service.add(config.rigs[name])
    said = {"added": new, "removed": gone, "restarted": changed,
            "unchanged": [n for n in config.rigs if n in current and n not in changed]}
    _log.info("reloaded %s: %d added, %d removed, %d restarted, %d unchanged", config.path, len(new), len(gone),
              len(changed), len(said["unchanged"]), extra={"fields": {"event": "serve_reloaded", **said}})
    return said


class NotFoundError(InputError):
    """An API request names a rig that is not served."""


class ConflictError(InputError):
    """An API request adds a rig whose name is taken."""

