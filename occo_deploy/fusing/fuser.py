"""``Fuser``: the runtime users embed; the CLI is built on it too."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from occo_deploy import backends, log
from occo_deploy.contract import OWN_RANGE
from occo_deploy.errors import EngineError, InputError, ShapeError, cli_names, option
from occo_deploy.registration.rig import Rig
from occo_deploy.runtime.frames import (
    check_frame_type,
    check_same_scene,
    infrared_gray,
    looks_swapped,
    match_size,
    visible_bgr,
)
from occo_deploy.runtime.gated import gate_notice
from occo_deploy.runtime.irscale import IrScale, IrScaler, finite_mask
from occo_deploy.runtime.memory import MemoryModel
from occo_deploy.runtime.staging import Slot
from occo_deploy.runtime.stats import LatencyStats
from occo_deploy.runtime.stretch import SteadyStretch, check_mode
from occo_deploy.sidecar import read_sidecar

_log = log.get("fusing")
Frames = Sequence[np.ndarray] | np.ndarray
T = TypeVar("T")


class Fuser:
    """Fuses infrared + visible frames with an exported model or a built engine.

    >>> with Fuser("export/occo.onnx") as fuser:          # doctest: +SKIP
    ...     fused = fuser.fuse(ir_frame, vis_frame)       # H x W x 3 uint8 BGR
    ...     print(fuser.stats.summary()["stages"]["infer"]["p50_ms"])

    Frames are uint8 as OpenCV gives them: visible BGR (or gray, or BGRA), infrared gray (or 3-channel).
    An infrared frame of another size is resized to the visible one (``ir_resized_from`` records it);
    one of another aspect ratio is refused. The output has the visible frame's size.

    ``fuse_stream`` is the fast path for a sequence of frames: it batches them and keeps as many
    batches in flight as the backend allows (two with TensorRT), writing each frame straight into the
    backend's (pinned) staging buffer. ``stretch="steady"`` holds the output's range steady across
    the stream's frames (``runtime.stretch``), as video needs; ``fuse`` and ``fuse_batch`` stretch
    each frame over its own range, as the reference does.
    """

    def __init__(self, engine: str | Path, *, provider: str | None = None, threads: int | None = None,
                 in_flight: int | None = None, cuda_graph: bool = False, batch: int | None = None,
                 provider_options: Mapping[str, str] | None = None, ir_scale: IrScale | str | None = None,
                 max_side: int | None = None, check_memory: bool = True,
                 inference_precision: str | None = None, align: Rig | str | Path | None = None,
                 stretch: str | None = None) -> None:
        self.engine = Path(engine)
        if not self.engine.is_file():
            raise EngineError(f"engine not found: {self.engine}; {backends.missing_hint(self.engine)}")
        if max_side is not None and max_side < 16:
            raise InputError(f"{option('max_side')} must be at least 16 (got {max_side})")
        #: The camera rig (``occo-deploy align``): every pair is registered with it before the engine.
        self.rig = align if isinstance(align, Rig) or align is None else Rig.load(align)
        self.sidecar = read_sidecar(self.engine)
        # Only what the caller set: the registry refuses an option this engine's backend does not take.
        options: dict[str, Any] = {"cuda_graph": True} if cuda_graph else {}
        if in_flight is not None:
            options["in_flight"] = in_flight
        if batch is not None:
            options["batch"] = batch  # sizes staging buffers for the batches to come
        if provider_options:
            options["provider_options"] = dict(provider_options)  # e.g. ONNX Runtime CUDA's prefer_nhwc
        if inference_precision is not None:
            options["inference_precision"] = inference_precision  # not the one its gate measured
        spec, self.backend = backends.open_backend(self.engine, self.sidecar, provider, threads, options)
        #: Whether the engine runs on the CPU (ONNX Runtime's CPU provider, OpenVINO): batching frames
        #: there buys no speed, only memory (and, on OpenVINO, a compile per batch size).
        self.on_cpu = bool(spec.cpu)
        self.stats = LatencyStats()
        #: (H, W) of the last infrared frame that had to be resized to the visible size, else None.
        self.ir_resized_from: tuple[int, int] | None = None
        #: Maps 16-bit and float infrared frames to 8 bits (see ``runtime.irscale``); uint8 passes unchanged.
        self.ir_scaler = IrScaler(ir_scale if isinstance(ir_scale, IrScale) else IrScale.parse(ir_scale))
        #: Frames whose longer side exceeds this are fused at that size and scaled back up.
        self.max_side = max_side
        #: How ``fuse_stream`` stretches unless told: "steady" or "frame"; None leaves it to the caller
        #: (a video job holds it steady, a folder of images does not).
        self.stretch = None if stretch is None else check_mode(stretch)
        #: Things worth telling the user once (inputs that look swapped, frames fused at a reduced size,
        #: an engine that runs in another precision or on a CPU class its gate did not measure): logged
        #: as a warning when they arise, and kept here for a job's report.
        self.notices: list[str] = []
        self._said: set[str] = set()
        for notice in self.backend.notices:
            self._notice(notice)
        gated = gate_notice(self.engine, self.sidecar)
        if gated:
            self._notice(gated)
        self._checked_swap = False
        #: Before a batch shape first runs on an engine host memory bounds, is its estimated peak free?
        precision = str((self.sidecar or {}).get("precision", "fp32"))
        self.memory: MemoryModel | None = backends.memory_model(spec, precision) if check_memory else None
        self._fitting: set[tuple[int, int, int]] = set()

    # -- public API -------------------------------------------------------------------------
    def fuse(self, ir: np.ndarray, vis: np.ndarray, stretch: SteadyStretch | None = None) -> np.ndarray:
        """One pair -> one fused H x W x 3 uint8 BGR frame, stretched over its own range, or over what
        ``stretch`` (from ``steady()``, one per stream) holds, which then follows this frame."""
        return self.fuse_batch([ir], [vis], stretch)[0]

    def fuse_batch(self, ir: Frames, vis: Frames, stretch: SteadyStretch | Sequence[SteadyStretch | None] | None = None
                   ) -> np.ndarray:
        """N pairs of one size -> N x H x W x 3; per-image normalisation, so equal to N ``fuse`` calls.
        ``stretch``: one held stretch for all (frames of one stream, in order), or one per pair (frames
        of several streams), None for each its own range."""
        if not isinstance(ir, (Sequence, np.ndarray)) or not isinstance(vis, (Sequence, np.ndarray)):
            raise ShapeError(f"fuse_batch takes sequences (or N x H x W arrays) of frames, got "
                             f"{type(ir).__name__} and {type(vis).__name__}")
        n = len(vis)
        if n == 0 or len(ir) != n:
            raise ShapeError(f"need as many infrared as visible frames, and at least one (got {len(ir)} and {n})")
        start = time.perf_counter()
        holders = list(stretch) if isinstance(stretch, Sequence) else [stretch] * n
        if len(holders) != n:
            raise ShapeError(f"give one stretch per pair, or one for all (got {len(holders)} for {n} pairs)")
        slot = self._launch(list(zip(ir, vis)), holders=holders)
        assert slot is not None  # blocking: it waits for a free slot
        return self._retire(slot, start)

    def fuse_stream(self, pairs: Iterable[tuple[T, np.ndarray, np.ndarray]], batch: int = 1,
                    stretch: str | SteadyStretch | None = None) -> Iterator[tuple[T, np.ndarray]]:
        """``(tag, ir, vis)`` in -> ``(tag, fused)`` out, in order, batched and pipelined.

        Consecutive pairs of one visible size form batches of up to ``batch``; a size change or the
        end of the input closes a shorter one. Up to ``backend.in_flight`` batches run at once: while
        the engine fuses batch k, this generator decodes (pulls from ``pairs``) and fills batch k+1.
        Each yielded frame is the caller's to keep.

        ``stretch``: "steady" holds the range across these frames, "frame" stretches each over its own
        (None: the Fuser's ``stretch``, else "frame"); a ``SteadyStretch`` goes on from where it held
        (a camera that reconnects keeps its brightness).
        """
        if batch < 1:
            raise InputError(f"batch must be at least 1 (got {batch})")
        holder = self.steady(stretch)
        pending: deque[tuple[Slot, list[T], float]] = deque()
        group: list[tuple[T, np.ndarray, np.ndarray]] = []
        try:
            items = iter(pairs)
            if holder is not None and holder.priming:
                # The stream's first frame alone, and back, before any other: every later frame is
                # stretched over a range held from it, whatever the batch size or batches in flight.
                first = next(items, None)
                if first is not None:
                    yield from self._send([first], pending, holder)
                    yield from self._receive(pending)
            for item in items:
                if group and (len(group) == batch or _visible_hw(item[2]) != _visible_hw(group[0][2])):
                    yield from self._send(group, pending, holder)
                    group = []
                group.append(item)
            if group:
                yield from self._send(group, pending, holder)
            while pending:
                yield from self._receive(pending)
        finally:
            # An error or a consumer that stops early: let batches in flight finish, free their slots.
            while pending:
                slot = pending.popleft()[0]
                with contextlib.suppress(Exception):
                    self.backend.wait(slot)
                    self.backend.release(slot)

    def steady(self, stretch: str | SteadyStretch | None = None) -> SteadyStretch | None:
        """The held stretch a stream asking for ``stretch`` goes on with, or None for per-frame: also
        when this engine cannot hold it (exported before the steering), which is said once."""
        if isinstance(stretch, SteadyStretch):
            holder: SteadyStretch | None = stretch
        else:
            mode = check_mode(stretch or self.stretch or "frame")
            holder = SteadyStretch() if mode == "steady" else None
        if holder is not None and not self.backend.steerable:
            self._notice(f"{self.engine.name} was exported before the steady stretch: each frame is stretched "
                         "over its own range, so a video may pump; re-export and rebuild it (occo-deploy export "
                         "CHECKPOINT, then occo-deploy build)")
            return None
        return holder

    def check_pair(self, ir: np.ndarray, vis: np.ndarray) -> None:
        """Raise the ``ShapeError`` fusing this pair would raise (dtype, channels, size, same scene,
        this engine's shape range), without running it: a job can then skip one bad pair alone
        instead of failing the batch it would have joined."""
        check_frame_type(ir, "infrared")
        vis_hw = visible_bgr(vis).shape[:2]
        registered: tuple[int, int] | None = None
        if self.rig is not None:  # both become the rig's output: its size tells, no warp needed
            self.rig.check(ir.shape[:2], vis.shape[:2])
            vis_hw = registered = (self.rig.output_size[1], self.rig.output_size[0])
        h, w = reduced_hw(vis_hw, self.max_side)
        self.backend.shapes.check(1, h, w)
        gray = infrared_gray(ir)
        finite_mask(gray)  # a frame with no finite value fails as fusing it would
        gray_hw = registered or gray.shape[:2]
        if gray_hw != (h, w):
            check_same_scene(gray_hw, (h, w))

    def info(self) -> dict[str, Any]:
        """Backend, provider, precision and artifact, and the infrared scaling: what a report says."""
        return {**self.backend.describe(), "ir_scale": self.ir_scaler.describe(),
                "steerable_stretch": self.backend.steerable}

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Fuser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------
    def _send(self, group: list[tuple[T, np.ndarray, np.ndarray]], pending: deque[tuple[Slot, list[T], float]],
              holder: SteadyStretch | None) -> Iterator[tuple[T, np.ndarray]]:
        while len(pending) >= self.backend.in_flight:
            yield from self._receive(pending)
        start = time.perf_counter()
        pairs = [(ir, vis) for _, ir, vis in group]
        holders = [holder] * len(pairs)
        # Other threads may hold the other slots: retire our own batches rather than wait on theirs.
        while (slot := self._launch(pairs, block=not pending, holders=holders)) is None:
            yield from self._receive(pending)
        pending.append((slot, [tag for tag, _, _ in group], start))

    def _receive(self, pending: deque[tuple[Slot, list[T], float]]) -> Iterator[tuple[T, np.ndarray]]:
        slot, tags, start = pending.popleft()
        yield from zip(tags, self._retire(slot, start))

    def _launch(self, pairs: list[tuple[np.ndarray, np.ndarray]], block: bool = True,
                holders: list[SteadyStretch | None] | None = None) -> Slot | None:
        """Write a batch into a free slot and submit it; None when none is free and ``block`` is false.
        ``holders``: per pair, the held stretch it is stretched over (None: its own range)."""
        with self.stats.time("prepare"):
            for ir, vis in pairs:  # what cv2.imread gives for a missing file (None) fails here, typed
                check_frame_type(ir, "infrared")
                check_frame_type(vis, "visible")
            if self.rig is not None:
                with self.stats.time("align"):
                    pairs = [self.rig.apply(ir, vis) for ir, vis in pairs]
            if not self._checked_swap:
                self._checked_swap = True
                if looks_swapped(pairs[0][0], pairs[0][1]):
                    self._notice("the visible input looks infrared and vice versa (it has no colour, the "
                                 f"infrared one has); swap them? ({_swap_hint()})")
            first = visible_bgr(pairs[0][1])
            full_hw = first.shape[:2]
            h, w = reduced_hw(full_hw, self.max_side)
            if (h, w) != full_hw:
                self._say_reduced(full_hw, (h, w))
            n = len(pairs)
            self.backend.shapes.check(n, h, w)
            if self.memory is not None and (n, h, w) not in self._fitting:
                self.memory.check(n, h, w)
                self._fitting.add((n, h, w))
            slot = self.backend.acquire(n, h, w, block)
            if slot is None:
                return None
            try:
                vis_buf, ir_buf = slot.visible(), slot.infrared()
                for k, (ir, vis) in enumerate(pairs):
                    frame = first if k == 0 else visible_bgr(vis)
                    if k and frame.shape[:2] != full_hw:
                        raise ShapeError(
                            f"visible frames in one batch must share a size ({full_hw[0]}x{full_hw[1]} and "
                            f"{frame.shape[0]}x{frame.shape[1]}); fuse them one by one"
                        )
                    if (h, w) != full_hw:
                        frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
                    vis_buf[k] = frame
                    ir_buf[k] = self._ir_frame(ir, (h, w))
                if self.backend.steerable:
                    holders = holders or [None] * n
                    rows = slot.stretch()
                    for held, frames in _by_holder(holders):  # one call per stream and batch
                        rows[frames] = OWN_RANGE if held is None else held.rows(len(frames))
                    slot.holders = holders
            except BaseException:
                self.backend.release(slot)
                raise
            slot.restore_hw = full_hw if (h, w) != full_hw else None
        self.backend.submit(slot)
        return slot

    def _retire(self, slot: Slot, start: float) -> np.ndarray:
        """Wait for a slot, record its stage times, hand out its frames and give the slot back."""
        for stage, seconds in self.backend.wait(slot).items():
            self.stats.add(stage, seconds)
        try:
            with self.stats.time("finish"):
                fused = slot.output
                expected = (slot.n, slot.h, slot.w, 3)
                if fused is None or fused.shape != expected or fused.dtype != np.uint8:
                    got = "nothing" if fused is None else f"{fused.dtype} {fused.shape}"
                    raise EngineError(
                        f"{self.engine} returned {got} for {expected}; re-export or rebuild it with this occo-deploy"
                    )
                holders, slot.holders = slot.holders, []
                if slot.ranges is not None:  # in the stream's order: each held stretch follows its frames
                    for held, frames in _by_holder(holders):
                        if held is not None:
                            held.update(slot.ranges[frames])
                restore, slot.restore_hw = slot.restore_hw, None
                if restore is not None:  # fused at a reduced size (max_side): back to the visible size
                    fused = np.stack([cv2.resize(f, (restore[1], restore[0]), interpolation=cv2.INTER_LINEAR)
                                      for f in fused])
                elif slot.staged:
                    fused = fused.copy()  # the slot's buffer is reused by the next batch
                slot.output = None
        finally:
            self.backend.release(slot)
        self.stats.add("total", time.perf_counter() - start)
        self.stats.count_frames(len(fused))
        return fused

    def _say_reduced(self, full_hw: tuple[int, int], hw: tuple[int, int]) -> None:
        note = (f"frames of {full_hw[1]}x{full_hw[0]} were fused at {hw[1]}x{hw[0]} ({option('max_side')}) and "
                "scaled back up: not the reference's output at full size")
        self._notice(note)

    def _notice(self, text: str) -> None:
        """Log ``text`` once for this Fuser and keep it for the report (a job takes and clears the list)."""
        if text not in self.notices:
            self.notices.append(text)
        if text not in self._said:
            self._said.add(text)
            _log.warning("%s", text, extra={"fields": {"event": "notice", "engine": str(self.engine)}})

    def _ir_frame(self, frame: np.ndarray, vis_hw: tuple[int, int]) -> np.ndarray:
        gray = self.ir_scaler(infrared_gray(frame))
        if gray.shape != vis_hw:
            self.ir_resized_from = (gray.shape[0], gray.shape[1])
            gray = match_size(gray, vis_hw)
        return gray


def _by_holder(holders: list[SteadyStretch | None]) -> list[tuple[SteadyStretch | None, list[int]]]:
    """The batch's frames grouped by the stream whose stretch holds them, in order of first frame."""
    groups: dict[int, tuple[SteadyStretch | None, list[int]]] = {}
    for k, held in enumerate(holders):
        groups.setdefault(id(held), (held, []))[1].append(k)
    return list(groups.values())


def _swap_hint() -> str:
    return "fuse --swap" if cli_names() else "pass them the other way round"


def reduced_hw(hw: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """``hw`` scaled so that its longer side is at most ``max_side`` (aspect kept, sides >= 16)."""
    h, w = hw
    if max_side is None or max(h, w) <= max_side:
        return h, w
    scale = max_side / max(h, w)
    return max(16, round(h * scale)), max(16, round(w * scale))


def _visible_hw(frame: np.ndarray) -> tuple[int, int]:
    return (frame.shape[0], frame.shape[1]) if isinstance(frame, np.ndarray) else (-1, -1)
