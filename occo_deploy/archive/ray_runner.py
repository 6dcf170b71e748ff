"""Archive tasks on Ray Data: actors that each hold one ``Fuser`` for their life.

``ray.init(address="local")`` starts a new Ray instance sized to this machine (never a stray one a
previous run left registered), or ``ray.init(address=...)`` connects to a running cluster
(``ray start --head`` on one node, ``ray start --address=HEAD:6379`` on the others). The task list
becomes a Ray dataset; ``map_batches`` runs it on a pool of ``workers`` actors, each reserving
``threads`` CPUs (its inference threads) or ``gpus`` GPUs, opening the engine once in its constructor
and writing outputs straight to OUT_ROOT, which on a cluster must be a filesystem every node
mounts at the same path (as must the engine and the inputs). Results stream back as tasks finish.

A worker process that dies is restarted by Ray and its task retried (Ray Data's defaults: actors
restart and tasks retry without a limit); outputs are atomic, so a retried item writes the same
whole file, and the driver removes the temporary files a killed worker left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from occo_deploy import backends
from occo_deploy.archive.items import Item
from occo_deploy.archive.tasks import ItemResult, RunSettings, Started, run_task
from occo_deploy.errors import InputError, require


@dataclass
class RayOptions:
    address: str | None = None  # None: start a local Ray instance
    workers: int | None = None  # default: one per GPU share, else one per node
    threads_per_worker: int | None = None  # default: the cluster's CPUs / workers
    gpus_per_worker: float | None = None


class _Worker:
    """A Ray Data actor: one ``Fuser`` for its life; each call runs tasks and returns their results."""

    #: Set on the subclass ``run_on_ray`` makes, so nothing rides in the object store.
    settings: ClassVar[RunSettings]

    def __init__(self) -> None:
        import cv2

        self._settings = self.settings
        if self._settings.threads:
            cv2.setNumThreads(self._settings.threads)
        self._fuser = self._settings.fuser()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = []
        for task in batch["task"]:
            items = [Item.from_dict(d) for d in json.loads(task)]
            out.append(json.dumps([r.__dict__ for r in run_task(self._fuser, items, self._settings)]))
        return {"result": np.array(out, dtype=object)}


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 on /dev/null for the block: what C++ code (and the processes it starts)
    writes there goes nowhere; Python's own errors still arrive as exceptions."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def connect(ray: Any, address: str | None) -> bool:
    """Connect (or start a local instance); True when this call started it. Ray's own logging stays quiet."""
    if ray.is_initialized():
        return False
    # Ray's C++ core logs warnings of its own to stderr (e.g. about Ray Data's actor arguments);
    # errors reach us as Python exceptions. Users can still set the variable to see them. Setting
    # it makes the core print a line saying so ("logging.cc:303: Set ray log level from environment
    # variable ...") as it starts: the start writes to /dev/null instead of the terminal.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    # ray.init puts in a SIGTERM handler of its own that exits 15 at once: the caller's (the CLI's
    # drain, its cleanup of partial outputs) is put back.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        with _native_stderr_silenced():
            ray.init(address=address or "local", include_dashboard=False, logging_level=logging.ERROR,
                     log_to_driver=False, configure_logging=True)
    except ConnectionError as exc:
        raise InputError(f"cannot connect to the Ray cluster at {address}: {str(exc).splitlines()[0][:200]}; "
                         "start it with: ray start --head") from exc
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return True


def _pool_size(resources: dict[str, float], opts: RayOptions, nodes: int) -> tuple[int, int, float | None]:
    """(workers, threads per worker, GPUs per worker) for this cluster."""
    cpus = max(1, int(resources.get("CPU", 1)))
    gpus = float(resources.get("GPU", 0))
    if opts.gpus_per_worker:
        if opts.gpus_per_worker > gpus:
            raise InputError(f"--gpus-per-worker {opts.gpus_per_worker:g} but the Ray cluster has {gpus:g} GPUs")
        workers = opts.workers or max(1, math.floor(gpus / opts.gpus_per_worker))
    else:
        workers = opts.workers or max(1, nodes)
    threads = opts.threads_per_worker or max(1, cpus // workers)
    if not opts.gpus_per_worker and workers * threads > cpus:
        raise InputError(f"{workers} workers x {threads} threads need {workers * threads} CPUs; the Ray cluster "
                         f"has {cpus}: lower --workers or --threads-per-worker")
    return workers, threads, opts.gpus_per_worker


def run_on_ray(tasks: list[list[Item]], settings: RunSettings, opts: RayOptions) -> Started:
    """Tasks run on a pool of Ray Data actors; the engine is described here, before any actor opens it."""
    ray = require("ray", "ray", "archive --ray")
    ray_data = require("ray.data", "ray", "archive --ray")
    started = connect(ray, opts.address)
    resources = {k: v for k, v in ray.cluster_resources().items() if not k.startswith("node:")}
    nodes = len([n for n in ray.nodes() if n.get("Alive")])
    workers, threads, gpus = _pool_size(resources, opts, nodes)
    context = ray_data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI draws its own
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    worker_settings = dataclasses.replace(settings, run=settings.run.replace(threads=threads))
    worker_cls = type("OccoArchiveWorker", (_Worker,), {"settings": worker_settings})
    info = {"version": ray.__version__, "address": opts.address or "local instance (ray.init)",
            "nodes": nodes, "cluster_resources": resources}
    pool = {"count": workers, "threads": threads, "gpus": gpus}

    def results() -> Iterator[ItemResult]:
        try:
            if not tasks:
                return
            rows = [{"task": json.dumps([i.as_dict() for i in task])} for task in tasks]
            dataset = ray_data.from_items(rows, override_num_blocks=len(rows)).map_batches(
                worker_cls, batch_size=1, compute=ray_data.ActorPoolStrategy(size=workers), num_cpus=threads,
                num_gpus=gpus or None)
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                for text in batch["result"]:
                    for r in json.loads(text):
                        yield ItemResult(**r)
        finally:
            if started:
                ray.shutdown()

    return Started(backends.describe(Path(settings.engine), settings.run.provider), results(), pool, info)
