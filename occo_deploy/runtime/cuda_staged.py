"""GPU backends' common half: pinned slots, device buffers, streams, events and CUDA graphs.

Each slot owns page-locked host buffers, device buffers of the same size, a stream and four timing
events. ``submit`` enqueues on the slot's stream: event, H2D (visible, infrared), event, compute
(the subclass's ``_enqueue``), event, D2H (fused), event, and returns at once. With two or more slots
in flight, batch k+1's copies run on the copy engines while batch k computes, and the host decodes
and fills batch k+2 meanwhile. ``wait`` blocks on the last event and reads the stage times
off the events, which is how trtexec reports H2D, GPU compute and D2H.

Stage times of overlapping batches overlap too: with two in flight a batch's "infer" can include
time spent behind the other batch's kernels, so the sum of stages exceeds wall time per batch.
Throughput is what the pipeline delivers.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from occo_deploy.errors import EngineError
from occo_deploy.runtime.backend import Backend, StageTimes
from occo_deploy.runtime.cuda import Cuda, host_view
from occo_deploy.runtime.staging import BufferPlan, Slot
from occo_deploy.sidecar import Sidecar


class GraphPlan:
    """Whether a slot's next batch runs plainly, is captured as a CUDA graph, or replays its graph.

    trtexec's order: after a slot is bound to a shape, one plain enqueue (engines finish
    shape-dependent setup on it, which must not land inside a capture), then a capture, then replays.
    Binding the slot to another shape makes its graph stale (it holds the old shape's launches). A
    capture that fails leaves that slot and shape on plain enqueues, counted in ``fallbacks``.
    """

    def __init__(self) -> None:
        self.graphs: dict[int, Any] = {}  # slot -> graph captured for its current binding
        self._plain: dict[int, int] = {}  # slot -> plain runs since it was bound
        self._shape: dict[int, tuple[int, int, int]] = {}
        self._failed: set[tuple[int, tuple[int, int, int]]] = set()
        self.fallbacks = 0

    def bound(self, slot: int, shape: tuple[int, int, int]) -> Any | None:
        """``slot`` now runs ``shape``; returns its stale graph, if any, for the caller to destroy."""
        self._shape[slot] = shape
        self._plain[slot] = 0
        return self.graphs.pop(slot, None)

    def forget(self, slot: int) -> Any | None:
        """``slot`` is freed; returns its graph, if any, for the caller to destroy."""
        self._plain.pop(slot, None)
        self._shape.pop(slot, None)
        return self.graphs.pop(slot, None)

    def next(self, slot: int) -> str:
        """"replay", "capture" or "plain"."""
        if slot in self.graphs:
            return "replay"
        if self._plain.get(slot, 0) == 0 or (slot, self._shape.get(slot)) in self._failed:
            return "plain"
        return "capture"

    def ran_plain(self, slot: int) -> None:
        self._plain[slot] = self._plain.get(slot, 0) + 1

    def captured(self, slot: int, graph: Any) -> None:
        self.graphs[slot] = graph

    def capture_failed(self, slot: int) -> None:
        self._failed.add((slot, self._shape[slot]))
        self.fallbacks += 1


class CudaStagedBackend(Backend):
    """Base of backends whose engine reads and writes device memory on a CUDA stream."""

    #: Whether slots get their own stream (TensorRT: one execution context per stream). ONNX Runtime
    #: binds one compute stream per session, so its slots share it.
    stream_per_slot = True
    #: Batches in flight unless the caller says: two, so one computes while the next is copied in.
    default_in_flight = 2
    run_options: ClassVar[Mapping[str, str]] = {
        "cuda_graph": "replay the engine as a CUDA graph, for a fixed frame size",
        "device": "the CUDA device's index",
    }

    def __init__(self, artifact: Path, sidecar: Sidecar | None, provider: str, threads: int | None,
                 options: Mapping[str, Any] | None = None) -> None:
        super().__init__(artifact, sidecar, provider, threads, options)
        self.cuda = Cuda(int(self.options.get("device", 0)))
        self._in_flight = max(1, int(self.options.get("in_flight") or self.default_in_flight))
        self.cuda_graph = bool(self.options.get("cuda_graph", False))
        self._shared_stream: Any = None if self.stream_per_slot else self.cuda.stream()
        self._graph_plan = GraphPlan()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # -- hooks --------------------------------------------------------------------------------
    @abc.abstractmethod
    def _enqueue(self, slot: Slot) -> None:
        """Enqueue the engine on ``slot.device['stream']``: read the slot's device inputs, write its output."""

    def _slot_ready(self, slot: Slot) -> None:
        """Called once per new slot, e.g. to give it an execution context."""

    def _slot_freed(self, slot: Slot) -> None:
        """Called before a slot's memory is released."""

    def _bind(self, slot: Slot) -> None:
        """Tell the engine the slot's batch shape and buffer addresses; called when the shape changes
        (a slot's addresses never move: a regrown slot is a new slot)."""

    # -- staged API ---------------------------------------------------------------------------
    def _new_slot(self, index: int, plan: BufferPlan, old: Slot | None) -> Slot:
        if old is not None:
            self._free_slot(old)
        cuda = self.cuda
        sizes = {"visible": plan.visible_bytes, "infrared": plan.infrared_bytes, "fused": plan.fused_bytes,
                 "stretch": plan.stretch_bytes, "range": plan.range_bytes}
        host = {name: cuda.malloc_host(size) for name, size in sizes.items()}
        slot = Slot(index, plan, host_view(host["visible"], sizes["visible"]),
                    host_view(host["infrared"], sizes["infrared"]), host_view(host["fused"], sizes["fused"]),
                    host_view(host["stretch"], sizes["stretch"]).view(np.float32),
                    host_view(host["range"], sizes["range"]).view(np.float32))
        slot.device.update(
            host=host,
            ptr={name: cuda.malloc(size) for name, size in sizes.items()},
            stream=cuda.stream() if self.stream_per_slot else self._shared_stream,
            events=[cuda.event() for _ in range(4)],
        )
        self._slot_ready(slot)
        return slot

    def infer(self, visible: np.ndarray, infrared: np.ndarray, stretch: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """One batch through a slot, synchronously (what the build gate uses)."""
        n, h, w = infrared.shape
        slot = self.acquire(n, h, w)
        slot.visible()[...] = visible
        slot.infrared()[...] = infrared
        if stretch is not None:
            slot.stretch()[...] = stretch
        self.submit(slot)
        self.wait(slot)
        try:
            assert slot.output is not None
            return slot.output.copy(), None if slot.ranges is None else slot.ranges.copy()
        finally:
            self.release(slot)

    def submit(self, slot: Slot) -> None:
        try:
            self._submit(slot)
        except BaseException:
            self.cuda.sync(slot.device["stream"])
            self.release(slot)  # the caller gets the error; the slot must not stay marked in flight
            raise

    def _submit(self, slot: Slot) -> None:
        cuda, dev = self.cuda, slot.device
        stream, ev, ptr, host = dev["stream"], dev["events"], dev["ptr"], dev["host"]
        n_vis, n_ir = slot.visible().nbytes, slot.infrared().nbytes
        if dev.get("bound") != (slot.n, slot.h, slot.w):
            self._bind(slot)
            dev["bound"] = (slot.n, slot.h, slot.w)
            stale = self._graph_plan.bound(slot.index, dev["bound"])
            if stale is not None:  # the slot is idle (acquired), so its graph is not running
                self.cuda.destroy_graph(*stale)
        cuda.record(ev[0], stream)
        cuda.h2d(ptr["visible"], host["visible"], n_vis, stream)
        cuda.h2d(ptr["infrared"], host["infrared"], n_ir, stream)
        if self.steerable:
            cuda.h2d(ptr["stretch"], host["stretch"], slot.stretch().nbytes, stream)
        cuda.record(ev[1], stream)
        self._compute(slot)
        cuda.record(ev[2], stream)
        cuda.d2h(host["fused"], ptr["fused"], slot.fused().nbytes, stream)
        if self.steerable:
            cuda.d2h(host["range"], ptr["range"], slot.range().nbytes, stream)
        cuda.record(ev[3], stream)

    def wait(self, slot: Slot) -> StageTimes:
        ev = slot.device["events"]
        try:
            self.cuda.wait_event(ev[3])
        except BaseException:
            self.release(slot)
            raise
        slot.output, slot.staged = slot.fused(), True
        slot.ranges = slot.range().copy() if self.steerable else None
        return {"h2d": self.cuda.elapsed_s(ev[0], ev[1]), "infer": self.cuda.elapsed_s(ev[1], ev[2]),
                "d2h": self.cuda.elapsed_s(ev[2], ev[3])}

    def _compute(self, slot: Slot) -> None:
        """The engine: plainly, or as a CUDA graph when graphs are on (see ``GraphPlan`` for when).

        A capture that fails (an engine that cannot be captured, a driver that refuses) is not an
        error: the batch runs plainly, and so does every later one of that slot and shape.
        """
        if not self.cuda_graph:
            self._enqueue(slot)
            return
        plan, stream = self._graph_plan, slot.device["stream"]
        action = plan.next(slot.index)
        if action == "replay":
            self.cuda.launch(plan.graphs[slot.index][1], stream)
            return
        if action == "plain":
            self._enqueue(slot)
            plan.ran_plain(slot.index)
            return
        graph = None
        try:
            self.cuda.begin_capture(stream)
            try:
                self._enqueue(slot)
            finally:
                graph = self.cuda.end_capture(stream)  # always end, or the stream stays in capture mode
        except EngineError:
            if graph is not None:
                self.cuda.destroy_graph(*graph)
            plan.capture_failed(slot.index)
            self._enqueue(slot)
            return
        plan.captured(slot.index, graph)
        self.cuda.launch(graph[1], stream)

    # -- teardown -----------------------------------------------------------------------------
    def _free_slot(self, slot: Slot) -> None:
        self.cuda.sync(slot.device["stream"])
        graph = self._graph_plan.forget(slot.index)
        if graph is not None:
            self.cuda.destroy_graph(*graph)
        self._slot_freed(slot)
        dev = slot.device
        for p in dev["ptr"].values():
            self.cuda.free(p)
        for p in dev["host"].values():
            self.cuda.free_host(p)
        for e in dev["events"]:
            self.cuda.destroy_event(e)
        if self.stream_per_slot:
            self.cuda.destroy_stream(dev["stream"])
        dev.clear()

    def close(self) -> None:
        super().close()
        for slot in self._slots:
            if slot.device:
                self._free_slot(slot)
        self._slots.clear()
        if self._shared_stream is not None:
            self.cuda.destroy_stream(self._shared_stream)
            self._shared_stream = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "gpu": self.cuda.info["name"],
                "compute_capability": self.cuda.info["compute_capability"],
                "in_flight": self._in_flight, "cuda_graph": self.cuda_graph,
                "cuda_graph_fallbacks": self._graph_plan.fallbacks}
