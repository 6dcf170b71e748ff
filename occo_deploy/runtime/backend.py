"""The one small interface every backend implements, and the registry that picks one.

Backends are keyed by (artifact format, provider), as Polygraphy keys its runners: ``("onnx", "cpu")``
is ONNX Runtime's CPU provider, later ``("onnx", "cuda")`` or ``("plan", "tensorrt")``. The registry
holds import paths, not classes, so choosing a backend imports only that backend's library.
"""

from __future__ import annotations

import abc
import importlib
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from occo_deploy.errors import EngineError, InputError
from occo_deploy.runtime.shapes import ShapeRange
from occo_deploy.runtime.staging import BufferPlan, Slot, numpy_slot

__all__ = ["Backend", "ShapeRange", "StageTimes", "open_backend", "register_backend", "resolve_backend"]

#: Seconds per engine stage of one batch, as ``Backend.wait`` reports them ("h2d", "infer", "d2h").
StageTimes = dict[str, float]


class Backend(abc.ABC):
    """Runs the fusion graph: uint8 visible N x H x W x 3 + infrared N x H x W -> fused N x H x W x 3.

    Implementations open an artifact (and its sidecar, possibly None) in ``__init__``, never print, and
    raise ``EngineError`` subclasses with a message that says what to do.

    Two ways in: ``run`` (numpy in, numpy out) and the staged one the pipeline uses, ``acquire`` a slot,
    write frames into it, ``submit`` it, later ``wait`` for it. The base class implements the staged
    calls on top of ``run`` with one pageable slot; GPU backends override them to keep ``in_flight``
    batches moving through pinned buffers, copies and compute on CUDA streams.
    """

    #: Short name for reports, e.g. "onnxruntime-cpu".
    name: ClassVar[str] = "backend"
    #: Whether ``options["cuda_graph"]`` means anything here (GPU backends only).
    cuda_graphs: ClassVar[bool] = False
    #: ``run`` calls that may execute at once from different threads (an ONNX Runtime session is
    #: thread-safe; an OpenVINO infer request is not). Sizes the slot pool with ``in_flight``.
    concurrent_runs: ClassVar[int] = 1

    def __init__(self, artifact: Path, sidecar: dict[str, Any] | None, provider: str, threads: int | None,
                 options: Mapping[str, Any] | None = None) -> None:
        self.artifact = artifact
        self.sidecar = sidecar
        self.provider = provider
        self.threads = threads
        #: Backend-specific knobs (``in_flight``, ``cuda_graph``, ``batch``); unknown ones are ignored.
        self.options: dict[str, Any] = dict(options or {})
        self._slots: list[Slot] = []
        self._slot_lock = threading.Condition()
        self._worker: ThreadPoolExecutor | None = None

    @property
    def shapes(self) -> ShapeRange:
        """What this backend accepts; dynamic ONNX takes anything from MIN_SIDE up."""
        return ShapeRange()

    @abc.abstractmethod
    def run(self, visible: np.ndarray, infrared: np.ndarray) -> np.ndarray:
        """Fuse one batch; inputs are C-contiguous uint8 arrays of the contract's shapes."""

    # -- staged API -------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Batches that may be submitted before the oldest must be waited for.

        For ``run``-based backends more than one means a worker thread runs the batches one after
        another while the caller fills the next slot (ONNX Runtime releases the GIL while it runs).
        """
        return max(1, int(self.options.get("in_flight", 1)))

    @property
    def capacity(self) -> int:
        """Slots in the pool: batches in flight for one stream, or calls overlapping from several threads."""
        return max(self.in_flight, self.concurrent_runs)

    def acquire(self, n: int, h: int, w: int, block: bool = True) -> Slot | None:
        """A free slot shaped for an n x h x w batch (grown only when too small). When all are busy:
        wait for one, or return None when ``block`` is false (the caller has slots of its own to retire)."""
        with self._slot_lock:
            while True:
                slot = self._take_free(n, h, w)
                if slot is not None or not block:
                    return slot
                self._slot_lock.wait()

    def _take_free(self, n: int, h: int, w: int) -> Slot | None:
        free = [s for s in self._slots if not s.busy]
        slot = next((s for s in free if s.plan.fits(n, h, w)), free[0] if free else None)
        if slot is None and len(self._slots) < self.capacity:
            slot = self._slot_for(len(self._slots), None, n, h, w)
            self._slots.append(slot)
        elif slot is not None and not slot.plan.fits(n, h, w):
            k = self._slots.index(slot)
            slot = self._slots[k] = self._slot_for(k, slot, n, h, w)
        if slot is None:
            return None
        slot.shape(n, h, w)
        slot.busy = True
        return slot

    def _slot_for(self, index: int, old: Slot | None, n: int, h: int, w: int) -> Slot:
        plan = BufferPlan.for_engine(self.shapes, int(self.options.get("batch", n)), n, h, w)
        return self._new_slot(index, plan, old)

    def release(self, slot: Slot) -> None:
        """Give a slot back to the pool: after its output was taken, or when its batch failed."""
        with self._slot_lock:
            slot.busy = False
            self._slot_lock.notify_all()

    def _new_slot(self, index: int, plan: BufferPlan, old: Slot | None) -> Slot:
        """Allocate slot ``index`` (freeing ``old`` first); GPU backends pin it and add device buffers."""
        return numpy_slot(index, plan)

    def submit(self, slot: Slot) -> None:
        """Start fusing the slot's batch: here when one is in flight, else on the worker thread."""
        if self.in_flight == 1:
            self._run_slot(slot)
            return
        if self._worker is None:
            # One worker: batches still run one at a time, as on one engine; only the host work overlaps.
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="occo-infer")
        slot.device["future"] = self._worker.submit(self._run_slot, slot)

    def _run_slot(self, slot: Slot) -> None:
        start = time.perf_counter()
        slot.output = np.asarray(self.run(slot.visible(), slot.infrared()))
        slot.staged = False
        slot.device["times"] = {"infer": time.perf_counter() - start}

    def wait(self, slot: Slot) -> StageTimes:
        """Block until the slot's batch is fused, into ``slot.output``; its stage times. The slot stays
        taken until ``release``: its output may live in the slot's buffer (GPU backends)."""
        future = slot.device.pop("future", None)
        try:
            if future is not None:
                future.result()  # re-raises the worker's error here, in the caller's thread
        except BaseException:
            self.release(slot)
            raise
        times: StageTimes = slot.device.pop("times", {})
        return times

    def describe(self) -> dict[str, Any]:
        """What a report says about this backend (name, provider, versions)."""
        return {"backend": self.name, "provider": self.provider, "artifact": str(self.artifact)}

    def close(self) -> None:
        """Release sessions and device memory (subclasses call this too)."""
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None


# (format, provider) -> "module:Class". Only imported when chosen.
_REGISTRY: dict[tuple[str, str], str] = {}
# format -> provider used when the caller names none.
_DEFAULT_PROVIDER: dict[str, str] = {}


def register_backend(fmt: str, provider: str, target: str, default: bool = False) -> None:
    """Make ``target`` ("package.module:Class") the backend for artifacts of ``fmt`` on ``provider``."""
    _REGISTRY[(fmt, provider)] = target
    if default or fmt not in _DEFAULT_PROVIDER:
        _DEFAULT_PROVIDER[fmt] = provider


def artifact_format(artifact: Path, sidecar: dict[str, Any] | None) -> str:
    """The artifact's format from its sidecar, else from its suffix."""
    if sidecar and sidecar.get("format"):
        return str(sidecar["format"])
    suffix = artifact.suffix.lower().lstrip(".")
    return {"engine": "plan", "trt": "plan"}.get(suffix, suffix)


def resolve_backend(
    artifact: Path, sidecar: dict[str, Any] | None, provider: str | None
) -> tuple[type[Backend], str]:
    """The backend class and provider for this artifact, or an error listing what exists."""
    fmt = artifact_format(artifact, sidecar)
    if provider is None:
        provider = (sidecar or {}).get("provider") or _DEFAULT_PROVIDER.get(fmt, "")
    target = _REGISTRY.get((fmt, provider))
    if target is None:
        providers = sorted({p for _, p in _REGISTRY})
        here = sorted(p for f, p in _REGISTRY if f == fmt)
        if provider not in providers:
            raise InputError(f"unknown --provider {provider!r}; use one of {', '.join(providers)}"
                             + (f" (for a .{fmt}: {', '.join(here)})" if here and fmt == "onnx" else ""))
        if here:
            raise EngineError(f"a .{fmt} artifact runs on --provider {' or '.join(here)}, not {provider!r}"
                              + ("; for the CPU, fuse the .onnx it was built from" if fmt == "plan" else ""))
        known = ", ".join(sorted({f".{f}" for f, _ in _REGISTRY}))
        raise EngineError(f"{artifact.name}: no backend runs '{fmt}' artifacts (known: {known}); "
                          "pass an exported .onnx or a built engine")
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name), provider


def open_backend(artifact: Path, sidecar: dict[str, Any] | None, provider: str | None, threads: int | None,
                 options: Mapping[str, Any] | None = None) -> Backend:
    cls, chosen = resolve_backend(artifact, sidecar, provider)
    return cls(artifact, sidecar, chosen, threads, options)


register_backend("onnx", "cpu", "occo_deploy.runtime.onnxruntime_backend:OnnxRuntimeBackend", default=True)
register_backend("onnx", "openvino", "occo_deploy.runtime.openvino_backend:OpenVinoBackend")
register_backend("onnx", "cuda", "occo_deploy.runtime.onnxruntime_gpu_backend:OnnxRuntimeGpuBackend")
register_backend("onnx", "tensorrt", "occo_deploy.runtime.onnxruntime_gpu_backend:OnnxRuntimeGpuBackend")
register_backend("plan", "tensorrt", "occo_deploy.runtime.tensorrt_backend:TensorRTBackend", default=True)
