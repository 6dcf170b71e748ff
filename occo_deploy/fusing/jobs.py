"""The three things ``fuse`` does: an image pair, two folders of pairs, two videos.

Library code: no printing. Progress goes to an optional callback, notices and counts into the
returned report, which the CLI renders.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from occo_deploy.errors import InputError, OutputError, option
from occo_deploy.files import atomic_output, check_writable
from occo_deploy.fusing.fuser import Fuser
from occo_deploy.progress import Progress
from occo_deploy.runtime.frames import check_same_scene
from occo_deploy.video.encode import VideoEncoding
from occo_deploy.video.media import is_image, pair_folders, read_image, write_image
from occo_deploy.video.pairing import PairingReport, pair_streams
from occo_deploy.video.streams import Frame, ThreadedReader, ThreadedWriter, VideoInfo, cut_short, probe

TIMESTAMP_JITTER_MS = 1.0
T = TypeVar("T")


@dataclass
class JobReport:
    """What a fuse job did; ``as_dict`` is the ``--report`` JSON."""

    kind: str  # "image" | "folder" | "video"
    output: Path
    frames: int = 0
    wall_s: float = 0.0
    notices: list[str] = field(default_factory=list)
    pairing: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    #: Pairs skipped with ``keep_going``: {"name", "error"} each.
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "output": str(self.output), "frames": self.frames,
            "wall_s": self.wall_s, "fps": self.fps, "engine": self.engine, "pairing": self.pairing,
            "notices": self.notices, "latency": self.latency, "failures": self.failures,
        }


def input_kind(ir: Path, vis: Path) -> str:
    """"image", "folder" or "video" from the two inputs, which must be of one kind."""
    for path, what in ((ir, "infrared"), (vis, "visible")):
        if not path.exists():
            raise InputError(f"{what} input not found: {path}")
    kinds = {"folder" if p.is_dir() else "image" if is_image(p) else "video" for p in (ir, vis)}
    if len(kinds) != 1:
        raise InputError(f"infrared {ir} and visible {vis} must both be images, both folders or both videos")
    return kinds.pop()


def default_output(kind: str) -> Path:
    return Path({"image": "fused.png", "folder": "fused", "video": "fused.mp4"}[kind])


def _check_batch(batch: int) -> None:
    if batch < 1:
        raise InputError(f"--batch must be at least 1 (got {batch})")


def _finish(report: JobReport, fuser: Fuser, start: float) -> JobReport:
    """Wall time, engine and latency (each job resets the fuser's stats, so they are this job's)."""
    report.wall_s = time.perf_counter() - start
    report.engine = fuser.info()
    report.latency = fuser.stats.summary()
    report.notices.extend(fuser.notices)
    fuser.notices.clear()  # said once, in this job's report
    if fuser.ir_resized_from is not None:
        report.notices.append(
            f"infrared frames of {fuser.ir_resized_from[1]}x{fuser.ir_resized_from[0]} were resized to the visible size"
        )
    return report


def fuse_image(fuser: Fuser, ir: Path, vis: Path, output: Path, force: bool = False) -> JobReport:
    check_writable(output, force)
    fuser.stats.reset()
    start = time.perf_counter()
    ir_img = read_image(ir, "infrared")
    vis_img = read_image(vis, "visible")
    fused = fuser.fuse(ir_img, vis_img)
    write_image(output, fused, force)
    report = JobReport("image", output, frames=1, pairing={"pairs": 1})
    return _finish(report, fuser, start)


def fuse_image_pairs(fuser: Fuser, pairs: Iterable[tuple[T, Path, Path, Path]], *, batch: int = 1,
                     force: bool = False, keep_going: bool = False,
                     on_done: Callable[[T], None] | None = None, stretch: str | None = None) -> list[tuple[T, str]]:
    """``(tag, ir, vis, target)`` image pairs -> fused images at ``target``, batched and pipelined.

    ``stretch`` as ``Fuser.fuse_stream`` takes it: "steady" only where the pairs are frames of one
    scene in order (a folder of frames); an archive's pairs are not, and say "frame".

    With ``keep_going`` a pair that cannot be read or fused (unreadable, too small, not the same
    scene) is skipped and returned with its one-line error, checked before it joins a batch, so it
    never takes others down with it; without, its error ends the job.
    """
    failures: list[tuple[T, str]] = []

    def decoded() -> Iterable[tuple[tuple[T, Path], Any, Any]]:
        for tag, ir_path, vis_path, target in pairs:
            try:
                ir, vis = read_image(ir_path, "infrared"), read_image(vis_path, "visible")
                fuser.check_pair(ir, vis)
            except InputError as exc:
                if not keep_going:
                    # Same error, plus the way past it: a folder job can skip bad pairs.
                    exc.args = (f"{exc}; to skip pairs that cannot be fused and fuse the rest: "
                                f"{option('keep_going', True)}",)
                    raise
                failures.append((tag, str(exc)))
                continue
            yield (tag, target), ir, vis

    for (tag, target), frame in fuser.fuse_stream(decoded(), batch, stretch):
        write_image(target, frame, force)
        if on_done:
            on_done(tag)
    return failures


def fuse_folder(fuser: Fuser, ir_dir: Path, vis_dir: Path, output: Path, *, batch: int = 1,
                force: bool = False, progress: Progress | None = None, keep_going: bool = False) -> JobReport:
    """Every pair matched by stem -> ``output/<stem>.png``; each file written whole or not at all.

    ``keep_going``: a bad pair is reported in ``failures`` and skipped; the others are fused.
    """
    _check_batch(batch)
    found = pair_folders(ir_dir, vis_dir)
    if output.exists() and not output.is_dir():
        raise InputError(f"output {output} is a file; folder inputs need an output folder")
    targets = [(stem, ir, vis, output / f"{stem}.png") for stem, ir, vis in found.pairs]
    if not force:
        clashes = [t for _, _, _, t in targets if t.exists()]
        if clashes:
            raise InputError(
                f"{len(clashes)} outputs exist in {output} (first {clashes[0].name}); pass --force to overwrite"
            )
    fuser.stats.reset()
    start = time.perf_counter()
    report = JobReport("folder", output, pairing={
        "pairs": len(found.pairs), "ir_unpaired": len(found.ir_only), "vis_unpaired": len(found.vis_only),
        "ir_only": found.ir_only[:10], "vis_only": found.vis_only[:10]})

    def done(_stem: str) -> None:
        report.frames += 1
        if progress:
            progress(report.frames, len(targets))

    failed = fuse_image_pairs(fuser, targets, batch=batch, force=force, keep_going=keep_going, on_done=done)
    report.failures = [{"name": stem, "error": error} for stem, error in failed]
    return _finish(report, fuser, start)


def stamped(encoding: VideoEncoding | None, fuser: Fuser) -> VideoEncoding:
    """The encoding with the container's comment naming what made the video (engine, precision), for
    every video a Fuser's frames go into (files and live recordings)."""
    encoding = encoding or VideoEncoding()
    from occo_deploy._version import __version__

    info = fuser.info()
    return encoding.with_metadata(comment=f"fused by occo-deploy {__version__}: {fuser.engine.name} "
                                          f"({info.get('backend')}, {info.get('precision')})")


@dataclass
class VideoPairs:
    """Two videos probed and checked for pairing: equal frame rates pair by index, others by timestamp
    (``offset_ms`` shifts the infrared stream). ``frames()`` decodes them and yields the pairs."""

    ir: VideoInfo
    vis: VideoInfo
    offset_ms: float = 0.0
    pairing: PairingReport = field(default_factory=PairingReport)
    notices: list[str] = field(default_factory=list)
    #: Frames decoded from each video, once ``frames()`` ended.
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def open(cls, ir: Path, vis: Path, offset_ms: float = 0.0) -> VideoPairs:
        vis_info, ir_info = probe(vis, "visible"), probe(ir, "infrared")
        if (ir_info.height, ir_info.width) != (vis_info.height, vis_info.width):
            check_same_scene((ir_info.height, ir_info.width), (vis_info.height, vis_info.width))
        pairs = cls(ir_info, vis_info, offset_ms)
        for info, what in ((vis_info, "visible"), (ir_info, "infrared")):
            if info.fps_guessed:
                pairs.notices.append(f"{what} video reports no frame rate; assumed {info.fps:g} fps")
        pairs.pairing.mode = "index" if pairs.same_rate else "timestamp"
        return pairs

    @property
    def same_rate(self) -> bool:
        return abs(self.ir.fps - self.vis.fps) <= 1e-3 * self.vis.fps

    @property
    def tolerance_ms(self) -> float:
        # Half the longer frame period: every frame of the faster stream finds its nearest partner. Plus
        # the jitter of container timestamps (often whole milliseconds), or frames exactly between two
        # partners would be lost to rounding.
        return 0.5 * 1000.0 / min(self.ir.fps, self.vis.fps) + TIMESTAMP_JITTER_MS

    @contextlib.contextmanager
    def frames(self, decode: Callable[[float], None] | None = None) -> Iterator[Iterator[tuple[Frame, Frame]]]:
        """(visible, infrared) frame pairs, decoded on two threads; ``decode`` gets each frame's seconds."""
        with ThreadedReader(self.vis, "visible", decode, synthetic_time=self.same_rate) as vis_frames, \
                ThreadedReader(self.ir, "infrared", decode, synthetic_time=self.same_rate) as ir_frames:
            try:
                yield pair_streams(vis_frames, ir_frames, tolerance_ms=self.tolerance_ms, offset_ms=self.offset_ms,
                                   report=self.pairing)
            finally:
                self.counts.update(vis_frames=vis_frames.frames_read, ir_frames=ir_frames.frames_read)

    def none_paired(self, ir: Path, vis: Path) -> InputError:
        return InputError(
            f"no visible frame of {vis} found an infrared partner in {ir} within {self.tolerance_ms:.0f} ms "
            f"(offset {self.offset_ms:g} ms); check the files and --offset-ms"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**self.pairing.as_dict(), "vis_fps": self.vis.fps, "ir_fps": self.ir.fps, **self.counts}


def fuse_video(fuser: Fuser, ir: Path, vis: Path, output: Path, *, batch: int = 1, offset_ms: float = 0.0,
               force: bool = False, progress: Progress | None = None,
               encoding: VideoEncoding | None = None) -> JobReport:
    """Two videos -> one fused video at the visible frame rate and size.

    Decoding (two threads), inference (this thread) and encoding (one thread) overlap. Equal frame
    rates pair by index, others by timestamp; ``offset_ms`` shifts the infrared stream.
    """
    _check_batch(batch)
    videos = VideoPairs.open(ir, vis, offset_ms)
    check_writable(output, force)
    report = JobReport("video", output)
    report.notices += videos.notices
    vis_info = videos.vis
    stats = fuser.stats
    stats.reset()
    expected = vis_info.frame_count or None
    start = time.perf_counter()
    with atomic_output(output, force) as tmp:
        writer = ThreadedWriter(tmp, vis_info.fps, (vis_info.width, vis_info.height), output.suffix,
                                on_encode=lambda s: stats.add("encode", s), encoding=stamped(encoding, fuser))
        try:
            with writer, videos.frames(lambda s: stats.add("decode", s)) as pairs:
                for _, frame in fuser.fuse_stream(((None, i.image, v.image) for v, i in pairs), batch,
                                                  fuser.stretch or "steady"):
                    writer.write(frame)
                    report.frames += 1
                    if progress:
                        progress(report.frames, expected)
        except OutputError as exc:
            failure = cut_short(writer, tmp, output, force, exc)
            if failure is exc:
                raise
            raise failure from exc
        if report.frames == 0:
            raise videos.none_paired(ir, vis)
    report.pairing = videos.as_dict()
    return _finish(report, fuser, start)
