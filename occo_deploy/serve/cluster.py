"""``serve --ray``: the same rigs file, API and outputs, with the rigs spread over a Ray cluster.

Each node runs engine workers (Ray actors, one per ``occo_engine`` resource the node declares, else
one per node). A worker is a whole one-machine ``Service``: its engine, its engine loop, and the
rigs placed on it with their cameras, batching, recordings and published streams, so frames never
cross the network. The head (the process ``serve --ray`` runs in) places rigs, serves the API, one
``/metrics`` for the cluster and the health endpoints, and asks every worker for its state each
second: only control, figures and (while someone watches one) a preview cross the network.

A rig goes to the worker with the fewest rigs among those with room (``rigs_per_engine``). A worker
that dies (its node lost, its process killed) is noticed at the next poll Ray answers for it; its
rigs restart on the others, said once in the log and counted in the metrics. Its recordings stay
where they were, playable up to their last fragment. Rigs for which no worker has room wait, and
``GET /rigs`` says so; they are placed as soon as room appears (a node joins, a rig is removed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import Any

from occo_deploy import log
from occo_deploy.errors import InputError, require
from occo_deploy.fusing.options import RunOptions
from occo_deploy.serve.config import RigConfig, ServeConfig
from occo_deploy.serve.service import ConflictError, NotFoundError, reload_rigs

_log = log.get("serve")

#: The Ray resource that says how many engine workers a node runs: ``ray start --resources
#: '{"occo_engine": 2}'``. A node that declares none runs one.
ENGINE_RESOURCE = "occo_engine"
#: Seconds between the head's polls of every worker (state, figures, lost workers, new nodes).
POLL_S = 1.0
#: A worker that has not answered for this long is given up: killed, its rigs placed elsewhere.
UNANSWERED_S = 10.0
#: How long a new worker may take to load its engine before it is given up.
STARTING_S = 300.0


class EngineWorker:
    """One engine on one node, as a Ray actor: a one-machine ``Service`` whose rigs the head places."""

    def __init__(self, config: ServeConfig, engine: str, run: RunOptions, name: str) -> None:
        import logging

        from occo_deploy.serve.service import Service

        os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
        # This actor's process is the worker's own: its lines go to stderr, which Ray keeps in the
        # node's log files (worker-*.err); the head says the state changes that matter.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        package = logging.getLogger(log.NAME)
        package.addHandler(handler)
        package.setLevel(logging.INFO)

        self.name = name
        self.service = Service(dataclasses.replace(config, rigs={}), Path(engine), run).start()

    def ping(self) -> str:
        return self.name

    def add(self, rig: RigConfig) -> dict[str, Any]:
        return self.service.add(rig).figures()

    def remove(self, name: str) -> None:
        if name in self.service.rigs:
            self.service.remove(name)

    def status(self) -> dict[str, Any]:
        return {**self.service.status(), "ready": self.service.ready, "error": self.service.error}

    def metrics(self) -> list[Any]:
        self.service.status()  # refreshes the rate gauges
        return list(self.service.metrics.registry.collect())

    def preview(self, name: str, after: int, timeout: float) -> tuple[int, bytes | None, bool]:
        rig = self.service.rigs.get(name)
        if rig is None:
            return after, None, True
        seq, jpeg = rig.next_preview(after, timeout)
        return seq, jpeg, rig.closed

    def stop(self) -> None:
        self.service.stop()


@dataclasses.dataclass
class _Worker:
    name: str  # "NODE_IP/k"
    node_id: str
    actor: Any
    rigs: set[str] = dataclasses.field(default_factory=set)
    #: Its engine loaded and its loop running: rigs are placed on ready workers only.
    ready: bool = False
    last_answer: float = dataclasses.field(default_factory=time.monotonic)
    status: dict[str, Any] = dataclasses.field(default_factory=dict)


class RemoteRig:
    """A rig on a worker, as the API sees it: its figures from the last poll, its preview on demand."""

    def __init__(self, cluster: ClusterService, name: str) -> None:
        self.cluster, self.name = cluster, name

    @property
    def closed(self) -> bool:
        return self.name not in self.cluster.placed and self.name not in self.cluster.waiting

    def figures(self) -> dict[str, Any]:
        return self.cluster.figures(self.name)

    def next_preview(self, after: int, timeout: float) -> tuple[int, bytes | None]:
        worker = self.cluster.worker_of(self.name)
        if worker is None:
            time.sleep(min(timeout, POLL_S))
            return after, None
        try:
            seq, jpeg, _ = self.cluster.ray.get(worker.actor.preview.remote(self.name, after, timeout),
                                                timeout=timeout + 5)
        except Exception:  # noqa: BLE001 - the worker is gone or slow: the poll deals with it
            return after, None
        return seq, jpeg


class ClusterService:
    """The head of ``serve --ray``: what ``Service`` offers the API and the CLI, over engine workers."""

    def __init__(self, config: ServeConfig, engine: Path, run: RunOptions | None, address: str | None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        from occo_deploy.archive.ray_runner import connect

        self.ray = require("ray", "ray", "serve --ray")
        # Ray's driver prints the cluster's notices (a node marked dead) on stdout itself, prefixed
        # "(raylet)": in a service's log they come without terminal colour codes.
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
        self.address = address or "a local Ray instance"
        self._started_ray = connect(self.ray, address)
        self.config, self.engine, self.run = config, engine, run or RunOptions()
        self.workers: dict[str, _Worker] = {}
        self.placed: dict[str, str] = {}  # rig -> worker name
        self.waiting: dict[str, RigConfig] = {}
        self.configs: dict[str, RigConfig] = {}
        self._states: dict[str, str] = {}
        #: Nodes whose worker was lost: never given a worker again (Ray still lists a node that lost
        #: power as alive for some seconds; a machine that comes back joins under a new node id).
        self._gone: set[str] = set()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="serve-cluster", daemon=True)
        self.error: str | None = None
        self.registry = CollectorRegistry()
        self.registry.register(_WorkerMetrics(self))
        r = self.registry
        self.node_losses = Counter("occo_engine_workers_lost", "Engine workers lost (a node died or a worker was "
                                   "killed)", registry=r)
        self.moves = Counter("occo_rig_moves", "Times a rig was restarted on another worker after its worker was "
                             "lost", ["rig"], registry=r)
        self.waiting_gauge = Gauge("occo_rigs_waiting", "Rigs no engine worker has room for", registry=r)
        self.workers_gauge = Gauge("occo_engine_workers", "Engine workers serving", registry=r)
        self.metrics = self  # the API reads service.metrics.exposition()

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> ClusterService:
        self._discover()
        if not self.workers:
            raise InputError(f"{self.address} has no node to run an engine on; start one "
                             "with: ray start --address HEAD:PORT")
        # Every worker loads its engine before rigs are placed: a broken engine is said once, here.
        for worker in list(self.workers.values()):
            self._await_ready(worker)
        for rig in self.config.rigs.values():
            self.add(rig)
        self._thread.start()
        _log.info("serving %d rig(s) on %d engine worker(s) of Ray (%s)", len(self.configs),
                  len(self.workers), self.address,
                  extra={"fields": {"event": "serve_started", "rigs": len(self.configs), "workers": len(self.workers),
                                    "engine": str(self.engine)}})
        return self

    def stop(self) -> None:
        """Every worker stops its rigs (recordings closed whole) and goes; a Ray this process started ends."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        with self._lock:
            workers = list(self.workers.values())
        refs = [w.actor.stop.remote() for w in workers]
        try:
            if refs:
                self.ray.wait(refs, num_returns=len(refs), timeout=10)
        finally:
            for worker in workers:
                self.ray.kill(worker.actor)
            if self._started_ray:
                self.ray.shutdown()

    @property
    def ready(self) -> bool:
        return self._thread.is_alive() and self.error is None and bool(self.workers)

    # -- rigs -----------------------------------------------------------------------------------------
    @property
    def rigs(self) -> dict[str, RemoteRig]:
        with self._lock:
            return {name: RemoteRig(self, name) for name in self.configs}

    def add(self, rig: RigConfig) -> RemoteRig:
        with self._lock:
            if rig.name in self.configs:
                raise ConflictError(f"a rig named '{rig.name}' is already served; remove or restart it")
            self.configs[rig.name] = rig
        self._place(rig)
        return RemoteRig(self, rig.name)

    def remove(self, name: str) -> None:
        with self._lock:
            self._known(name)
            del self.configs[name]
            self.waiting.pop(name, None)
            self._states.pop(name, None)
            worker = self.worker_of(name)
            self.placed.pop(name, None)
            if worker is not None:
                worker.rigs.discard(name)
        if worker is not None:
            try:
                self.ray.get(worker.actor.remove.remote(name), timeout=30)
            except Exception as exc:  # noqa: BLE001 - its worker is gone or stuck: the poll gives it up
                _log.warning("rig %s: its worker %s did not confirm the removal: %s", name, worker.name,
                             _last_line(exc), extra={"fields": {"event": "remove_unconfirmed", "rig": name}})
        self._place_waiting()

    def restart(self, name: str) -> RemoteRig:
        with self._lock:
            config = self.configs[self._known(name)]
        self.remove(name)
        return self.add(config)

    def reload(self, config: ServeConfig) -> dict[str, list[str]]:
        with self._lock:
            current = dict(self.configs)
        return reload_rigs(self, current, config)

    def worker_of(self, rig: str) -> _Worker | None:
        with self._lock:
            name = self.placed.get(rig)
            return self.workers.get(name) if name else None

    def figures(self, rig: str) -> dict[str, Any]:
        with self._lock:
            config = self.configs[self._known(rig)]
            worker = self.worker_of(rig)
            if worker is None:
                return {**config.public(), "state": "waiting", "worker": None, "node": None,
                        "cause": self._no_room()}
            for figures in worker.status.get("rigs", []):
                if figures.get("name") == rig:
                    return {**figures, "worker": worker.name, "node": worker.node_id}
            return {**config.public(), "state": "placing", "worker": worker.name, "node": worker.node_id}

    def status(self) -> dict[str, Any]:
        with self._lock:
            names = sorted(self.configs)
            workers = [{"name": w.name, "node": w.node_id, "rigs": sorted(w.rigs),
                        "busy_ratio": w.status.get("busy_ratio"), "batches": w.status.get("batches")}
                       for w in self.workers.values()]
            return {"engine": str(self.engine), "ray": self.address, "workers": workers,
                    "rigs_per_engine": self.config.rigs_per_engine, "waiting": sorted(self.waiting),
                    "rigs": [self.figures(n) for n in names]}

    def _known(self, name: str) -> str:
        if name not in self.configs:
            raise NotFoundError(f"no rig named '{name}' (serving: {', '.join(sorted(self.configs)) or 'none'})")
        return name

    # -- placement ------------------------------------------------------------------------------------
    def _no_room(self) -> str:
        ready = [w for w in self.workers.values() if w.ready]
        loading = len(self.workers) - len(ready)
        return (f"no engine worker has room: {len(ready)} worker(s) x rigs_per_engine = "
                f"{self.config.rigs_per_engine}" + (f", {loading} more loading its engine" if loading else "")
                + "; add a node or raise rigs_per_engine")

    def _place(self, rig: RigConfig) -> bool:
        """Onto the worker with the fewest rigs among those with room; else the rig waits."""
        with self._lock:
            room = [w for w in self.workers.values() if w.ready and len(w.rigs) < self.config.rigs_per_engine]
            if not room:
                if rig.name not in self.waiting:
                    _log.warning("rig %s: waiting, %s", rig.name, self._no_room(),
                                 extra={"fields": {"event": "rig_waiting", "rig": rig.name}})
                self.waiting[rig.name] = rig
                self.waiting_gauge.set(len(self.waiting))
                return False
            worker = min(room, key=lambda w: (len(w.rigs), w.name))
            worker.rigs.add(rig.name)
            self.placed[rig.name] = worker.name
            self.waiting.pop(rig.name, None)
            self.waiting_gauge.set(len(self.waiting))
        try:
            self.ray.get(worker.actor.add.remote(rig), timeout=30)
        except InputError as exc:  # the rig itself (its align file on that node, say): not served, said to the caller
            with self._lock:
                worker.rigs.discard(rig.name)
                self.placed.pop(rig.name, None)
                self.configs.pop(rig.name, None)
            # Ray's error is also an InputError, its text the worker's traceback: the cause is the one line.
            cause = getattr(exc, "cause", None)
            raise (cause if isinstance(cause, InputError) else exc) from None
        except Exception:  # noqa: BLE001 - the worker died meanwhile: the poll re-places its rigs
            return False
        _log.info("rig %s: placed on engine worker %s", rig.name, worker.name,
                  extra={"fields": {"event": "rig_placed", "rig": rig.name, "worker": worker.name,
                                    "node": worker.node_id}})
        return True

    def _place_waiting(self) -> None:
        with self._lock:
            waiting = list(self.waiting.values())
        for rig in waiting:
            if not self._place(rig):
                break

    # -- workers --------------------------------------------------------------------------------------
    def _discover(self) -> None:
        """Start the engine workers of every live node that has none yet."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        remote = self.ray.remote(EngineWorker)
        for node in self.ray.nodes():
            if not node.get("Alive"):
                continue
            node_id, ip = node["NodeID"], node.get("NodeManagerAddress", "?")
            resources = node.get("Resources", {})
            count = max(1, int(resources.get(ENGINE_RESOURCE, 1)))
            gpus = float(resources.get("GPU", 0)) / count
            with self._lock:
                if node_id in self._gone or any(w.node_id == node_id for w in self.workers.values()):
                    continue
            for k in range(count):
                name = f"{ip}/{node_id[:6]}/{k}"
                actor = remote.options(
                    # Pinned to its node, never restarted by Ray: the head re-places a lost worker's rigs.
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False), num_cpus=0,
                    num_gpus=gpus or None, max_restarts=0, max_concurrency=16, name=f"occo-engine-{name}",
                ).remote(self.config, str(self.engine), self.run, name)
                with self._lock:
                    self.workers[name] = _Worker(name, node_id, actor)
                _log.info("engine worker %s starting on node %s", name, ip,
                          extra={"fields": {"event": "worker_started", "worker": name, "node": node_id}})
        self.workers_gauge.set(len(self.workers))

    def _await_ready(self, worker: _Worker) -> None:
        try:
            self.ray.get(worker.actor.ping.remote(), timeout=STARTING_S)
        except Exception as exc:  # the engine failed to load there: the whole service stops
            raise InputError(f"engine worker {worker.name} did not start: {_last_line(exc)}; check that "
                             f"{self.engine} exists on every node at the same path") from exc
        worker.ready, worker.last_answer = True, time.monotonic()

    def _poll(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self._poll_once()
            except Exception as exc:  # noqa: BLE001 - the poll must go on; said, not fatal
                _log.warning("cluster poll failed: %s", _last_line(exc),
                             extra={"fields": {"event": "poll_failed"}})

    def _poll_once(self) -> None:
        with self._lock:
            workers = list(self.workers.values())
        refs = {w.name: w.actor.status.remote() for w in workers}
        ready, _ = self.ray.wait(list(refs.values()), num_returns=len(refs), timeout=POLL_S * 2) if refs else ([], [])
        alive = {n["NodeID"] for n in self.ray.nodes() if n.get("Alive")}
        now = time.monotonic()
        for worker in workers:
            ref = refs[worker.name]
            lost = worker.node_id not in alive
            if not lost and ref in ready:
                try:
                    worker.status, worker.last_answer = self.ray.get(ref), now
                    if not worker.ready:
                        worker.ready = True
                        _log.info("engine worker %s ready", worker.name,
                                  extra={"fields": {"event": "worker_ready", "worker": worker.name}})
                except Exception:  # noqa: BLE001 - RayActorError: the worker died (its engine did not load, say)
                    lost = True
            allowance = UNANSWERED_S if worker.ready else STARTING_S
            if lost or now - worker.last_answer > allowance:
                self._lose(worker, "its node is gone" if worker.node_id not in alive else "it stopped answering")
        self._log_states()
        self._discover()
        self._place_waiting()

    def _lose(self, worker: _Worker, why: str) -> None:
        with self._lock:
            if self.workers.pop(worker.name, None) is None:
                return
            self._gone.add(worker.node_id)
            rigs = sorted(worker.rigs)
            for rig in rigs:
                self.placed.pop(rig, None)
        self.workers_gauge.set(len(self.workers))
        self.node_losses.inc()
        _log.error("engine worker %s lost (%s): restarting its rig(s) %s elsewhere", worker.name, why,
                   ", ".join(rigs) or "(none)",
                   extra={"fields": {"event": "worker_lost", "worker": worker.name, "node": worker.node_id,
                                     "why": why, "rigs": rigs}})
        with contextlib.suppress(Exception):
            self.ray.kill(worker.actor)  # a worker that stopped answering might still fuse: never twice
        for rig in rigs:
            config = self.configs.get(rig)
            if config is not None:
                self.moves.labels(rig).inc()
                self._states.pop(rig, None)
                self._place(config)

    def _log_states(self) -> None:
        """Each rig's state change, said once by the head (the workers' own lines stay on their nodes)."""
        with self._lock:
            names = list(self.configs)
        for name in names:
            try:
                figures = self.figures(name)
            except NotFoundError:
                continue
            state = str(figures.get("state"))
            was = self._states.get(name)
            if state == was or state == "placing":
                continue
            self._states[name] = state
            causes = {k: c.get("cause") for k, c in (figures.get("cameras") or {}).items()
                      if state == "down" and c.get("cause")}
            said = "; ".join(f"{k}: {v}" for k, v in causes.items())
            where = f" on {figures['worker']}" if figures.get("worker") else ""
            _log.info("rig %s: %s%s%s", name, state, where, f" ({said})" if said else "",
                      extra={"fields": {"event": "rig_state", "rig": name, "state": state, "was": was,
                                        "worker": figures.get("worker"), "causes": causes}})

    # -- metrics --------------------------------------------------------------------------------------
    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


class _WorkerMetrics:
    """The workers' own metrics, gathered at each scrape, each sample labelled with its ``worker``."""

    def __init__(self, cluster: ClusterService) -> None:
        self.cluster = cluster

    def describe(self) -> list[Any]:
        return []  # gathered at scrape time only: prometheus_client must not call collect() on register

    def collect(self) -> list[Any]:
        from prometheus_client.core import Metric

        cluster = self.cluster
        with cluster._lock:
            workers = list(cluster.workers.values())
        refs = {w.name: w.actor.metrics.remote() for w in workers if w.ready}
        if not refs:
            return []
        ready, _ = cluster.ray.wait(list(refs.values()), num_returns=len(refs), timeout=5)
        merged: dict[str, Any] = {}
        for worker in workers:
            if worker.name not in refs or refs[worker.name] not in ready:
                continue
            try:
                families = cluster.ray.get(refs[worker.name])
            except Exception:  # noqa: BLE001 - a worker lost during the scrape: the poll deals with it
                continue
            for family in families:
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                for sample in family.samples:
                    into.samples.append(sample._replace(labels={**sample.labels, "worker": worker.name}))
        return list(merged.values())


def _last_line(exc: BaseException) -> str:
    """One line for an error a Ray call brought back: its text ends with the worker's own exception
    (an actor that died in ``__init__`` keeps only that text, not the exception), hence the last line."""
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]
