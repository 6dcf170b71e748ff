"""The one small interface every backend's runner implements (``Backend``), and its staged calls.

Which runner opens an artifact is the registry's business (``occo_deploy.backends``): each backend
module declares its runner in its spec, keyed by the ``--provider`` values it serves, as Polygraphy
keys its runners.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Literal, overload

import numpy as np

from occo_deploy.contract import own_range
from occo_deploy.errors import InputError, option
from occo_deploy.runtime.shapes import ShapeRange
from occo_deploy.runtime.staging import BufferPlan, Slot, numpy_slot
from occo_deploy.sidecar import Sidecar

__all__ = ["COMMON_RUN_OPTIONS", "Backend", "ShapeRange", "StageTimes"]

#: Options every runner takes (the base class implements them), with what they do.
COMMON_RUN_OPTIONS: Mapping[str, str] = {
    "batch": "frames per inference call (sizes the staging buffers)",
    "in_flight": "batches in flight at once",
}

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
    #: The options this runner takes beyond ``COMMON_RUN_OPTIONS`` (``threads`` included), each with
    #: what it does, in the words help texts use: the backend module declares them here, the CLI
    #: groups them by backend, and anything else is refused, never dropped.
    run_options: ClassVar[Mapping[str, str]] = {}
    #: ``run`` calls that may execute at once from different threads (an ONNX Runtime session is
    #: thread-safe; an OpenVINO infer request is not). Sizes the slot pool with ``in_flight``.
    concurrent_runs: ClassVar[int] = 1
    #: Whether the engine takes the stretch's steering and returns each frame's range
    #: (``contract.STRETCH``, ``contract.RANGE``); engines exported before them stretch each frame over
    #: its own range. Set by the runner once it has read the engine's I/O.
    steerable: bool = False

    def __init__(self, artifact: Path, sidecar: Sidecar | None, provider: str, threads: int | None,
                 options: Mapping[str, Any] | None = None) -> None:
        self.artifact = artifact
        self.sidecar = sidecar
        self.provider = provider
        self.threads = threads
        #: ``COMMON_RUN_OPTIONS`` and the runner's own ``run_options``; any other is refused.
        self.options: dict[str, Any] = dict(options or {})
        unknown = [k for k, v in {"threads": threads, **self.options}.items()
                   if v is not None and v is not False and k not in COMMON_RUN_OPTIONS and k not in self.run_options]
        if unknown:
            raise InputError(f"{self.name} engines do not take {', '.join(option(k) for k in unknown)}; drop it")
        #: What the user should be told once about how this engine runs here (a precision other than
        #: the one its gate measured, say); the ``Fuser`` passes them on.
        self.notices: list[str] = []
        self._slots: list[Slot] = []
        self._slot_lock = threading.Condition()
        self._worker: ThreadPoolExecutor | None = None

    @property
    def shapes(self) -> ShapeRange:
        """What this backend accepts; dynamic ONNX takes anything from MIN_SIDE up."""
        return ShapeRange()

    @abc.abstractmethod
    def infer(self, visible: np.ndarray, infrared: np.ndarray, stretch: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """Fuse one batch: the fused frames, and each frame's own range when the engine is
        ``steerable``. Inputs are C-contiguous arrays of the contract's shapes; ``stretch`` (N x 4
        float32) only for a steerable engine, None otherwise."""

    def run(self, visible: np.ndarray, infrared: np.ndarray, stretch: np.ndarray | None = None) -> np.ndarray:
        """Fuse one batch (each frame over its own range unless ``stretch`` rows say otherwise)."""
        if stretch is not None and not self.steerable:
            raise InputError(f"{self.artifact} takes no stretch rows: it was exported before them; re-export it")
        if self.steerable and stretch is None:
            stretch = own_range(len(infrared))
        return self.infer(visible, infrared, stretch)[0]

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

    @overload
    def acquire(self, n: int, h: int, w: int, block: Literal[True] = ...) -> Slot: ...
    @overload
    def acquire(self, n: int, h: int, w: int, block: bool) -> Slot | None: ...
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
        slot.future = self._worker.submit(self._run_slot, slot)

    def _run_slot(self, slot: Slot) -> None:
        start = time.perf_counter()
        fused, ranges = self.infer(slot.visible(), slot.infrared(), slot.stretch() if self.steerable else None)
        slot.output, slot.ranges = np.asarray(fused), ranges
        slot.staged = False
        slot.times = {"infer": time.perf_counter() - start}

    def wait(self, slot: Slot) -> StageTimes:
        """Block until the slot's batch is fused, into ``slot.output``; its stage times. The slot stays
        taken until ``release``: its output may live in the slot's buffer (GPU backends)."""
        future, slot.future = slot.future, None
        try:
            if future is not None:
                future.result()  # re-raises the worker's error here, in the caller's thread
        except BaseException:
            self.release(slot)
            raise
        times, slot.times = slot.times, {}
        return times

    def describe(self) -> dict[str, Any]:
        """What a report says about this backend (name, provider, versions)."""
        return {"backend": self.name, "provider": self.provider, "artifact": str(self.artifact)}

    def close(self) -> None:
        """Release sessions and device memory (subclasses call this too)."""
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
