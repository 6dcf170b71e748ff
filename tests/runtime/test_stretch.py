"""The steady stretch: the held range's rules, the engine's steering, old engines, a real crossing car."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from occo_deploy.contract import OWN_RANGE, RANGE, STRETCH, own_range
from occo_deploy.errors import InputError
from occo_deploy.evaluation.temporal import luma, stability
from occo_deploy.runtime.stretch import MAX_STEP, SteadyStretch
from tests.conftest import FULL_SHARED, require_shared
from tests.support import logged


# -- the held range, without an engine -----------------------------------------------------------------
def test_a_stream_starts_on_its_first_frames_own_range_then_follows_slowly() -> None:
    held = SteadyStretch()
    lag = SteadyStretch.LAG
    assert held.priming and np.array_equal(held.rows(1), own_range(1))  # frame 0: its own range
    held.update([(-6.0, 4.0)])
    assert held.held == (-6.0, 4.0) and not held.priming
    # Frames 1 .. LAG: frame 0's range, held.
    assert held.rows(lag) == pytest.approx(np.tile([-6.0, 4.0, *held.knees], (lag, 1)))
    held.update([(-6.0, 4.0)] * (lag - 1))
    held.update([(-6.0, 6.0)])  # frame LAG: a hot object, the maximum jumps by 20% of the range
    lo, hi = held.held
    assert lo == -6.0 and hi == pytest.approx(4.0 + MAX_STEP * 10.0)  # one capped step, not the jump
    # Frame 2 LAG holds what frame LAG left.
    assert held.rows(lag)[-1].tolist() == pytest.approx([lo, hi, *held.knees])
    fixed = SteadyStretch.fixed(-1.0, 2.0)
    fixed.update([(-9.0, 9.0)])
    assert fixed.rows(1)[0].tolist() == pytest.approx([-1.0, 2.0, *fixed.knees])


def test_frames_that_say_nothing_about_the_range_are_skipped() -> None:
    held = SteadyStretch()
    held.update([(1.0, 1.0), (np.nan, 2.0)])
    assert held.held is None and held.frames == 2
    with pytest.raises(InputError, match="knees"):
        SteadyStretch(knees=(0.7, 0.3))


# -- the engine's steering -----------------------------------------------------------------------------
def _pair() -> tuple[np.ndarray, np.ndarray]:
    from occo_deploy.demo import clip_pairs

    return clip_pairs(1)[0]


def test_a_held_range_equal_to_the_frames_own_is_the_reference_and_a_narrower_one_rolls_off(fuser: object) -> None:
    from occo_deploy.fusing.fuser import Fuser

    assert isinstance(fuser, Fuser) and fuser.backend.steerable
    ir, vis = _pair()
    own, ranges = fuser.backend.infer(vis[None], ir[None], own_range(1))
    assert ranges is not None and ranges.shape == (1, 2) and ranges[0, 0] < ranges[0, 1]
    assert np.array_equal(own[0], fuser.fuse(ir, vis))
    # Held at exactly its own range: the same operations on the same values, bit for bit.
    same = np.array([[ranges[0, 0], ranges[0, 1], 0.4, 0.6]], np.float32)
    assert np.array_equal(fuser.backend.infer(vis[None], ir[None], same)[0], own)
    # Held 20% narrower at the top: the frame exceeds it, and the values above the knee are compressed
    # instead of clipped: as few pixels reach white as before, and the darker half is brighter.
    lo, hi = float(ranges[0, 0]), float(ranges[0, 1])
    narrow = np.array([[lo, hi - 0.2 * (hi - lo), 0.4, 0.6]], np.float32)
    rolled = fuser.backend.infer(vis[None], ir[None], narrow)[0][0]
    y_own, y_rolled = luma(own[0]), luma(rolled)
    assert (y_rolled >= 254).mean() <= (y_own >= 254).mean() + 0.002
    dark = y_own < np.percentile(y_own, 30)
    assert (y_rolled[dark] - y_own[dark]).mean() > 1.0


def test_fuse_stream_holds_the_range_only_when_asked(fuser: object) -> None:
    from occo_deploy.demo import clip_pairs
    from occo_deploy.fusing.fuser import Fuser

    assert isinstance(fuser, Fuser)
    import cv2

    # Half size: four passes over the clip stay a few seconds on 2 cores.
    pairs = [(cv2.resize(ir, (320, 240), interpolation=cv2.INTER_AREA),
              cv2.resize(vis, (320, 240), interpolation=cv2.INTER_AREA)) for ir, vis in clip_pairs(12)]
    per_frame = [fuser.fuse(ir, vis) for ir, vis in pairs]
    tagged = [(k, ir, vis) for k, (ir, vis) in enumerate(pairs)]
    assert all(np.array_equal(a, b) for a, (_, b) in zip(per_frame, fuser.fuse_stream(tagged)))
    holder = SteadyStretch()
    steady = [f for _, f in fuser.fuse_stream(tagged, stretch=holder)]
    assert np.array_equal(steady[0], per_frame[0])  # the first frame: its own range
    assert holder.frames == 12 and holder.held is not None
    # The clip's range differs between its frames, so holding it changes the later ones.
    assert any(not np.array_equal(a, b) for a, b in zip(steady[1:], per_frame[1:]))
    # Batches do not change which range a steady stream's frames take (ONNX Runtime's batched
    # kernels round a few pixels by a grey level otherwise).
    again = [f for _, f in fuser.fuse_stream(tagged, batch=3, stretch="steady")]
    assert max(np.abs(a.astype(int) - b.astype(int)).max() for a, b in zip(again, steady)) <= 1


def _frame_only(exported: Path, target: Path) -> Path:
    """The exported ONNX with the I/O of an export made before the steering (frames in, fused out): its
    steering input becomes a constant asking for each frame's own range, its range output goes."""
    import onnx

    from occo_deploy.sidecar import read_sidecar, write_sidecar

    model = onnx.load(str(exported))
    graph = model.graph
    graph.input.remove(next(i for i in graph.input if i.name == STRETCH))
    graph.output.remove(next(o for o in graph.output if o.name == RANGE))
    row = onnx.helper.make_tensor(STRETCH, onnx.TensorProto.FLOAT, [1, 4], list(OWN_RANGE))
    graph.node.insert(0, onnx.helper.make_node("Constant", [], [STRETCH], value=row))
    onnx.save(model, str(target))
    info = read_sidecar(exported)
    assert info is not None
    info.pop("sha256", None)  # its bytes changed
    write_sidecar(target, info, force=True)
    return target


def test_an_engine_exported_before_the_steering_runs_per_frame_and_says_how_to_rebuild(
        exported: Path, tmp_path: Path) -> None:
    from occo_deploy.demo import clip_pairs
    from occo_deploy.fusing.fuser import Fuser

    old = _frame_only(exported, tmp_path / "old.onnx")
    pairs = clip_pairs(2)
    with Fuser(old) as fuser, Fuser(exported) as current:
        assert not fuser.backend.steerable
        with logged() as said:
            fused = [f for _, f in fuser.fuse_stream(((k, i, v) for k, (i, v) in enumerate(pairs)), stretch="steady")]
            fused += [f for _, f in fuser.fuse_stream([(0, *pairs[0])], stretch="steady")]
        assert all(np.array_equal(f, current.fuse(i, v)) for f, (i, v) in zip(fused, [*pairs, pairs[0]]))
    notes = [m for m in said if "exported before the steady stretch" in m]
    assert len(notes) == 1 and "re-export and rebuild" in notes[0]
    with pytest.raises(InputError, match="re-export"):
        Fuser(old).backend.run(pairs[0][1][None], pairs[0][0][None], own_range(1))


# -- a real crossing car -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.shared
def test_a_lit_car_crossing_a_still_scene_pumps_per_frame_but_not_steadily(fuser: object) -> None:
    # Real frames: the still LLVIP scene, the lit car of MSRS 00012N crossing it (benchmarks/clips.py),
    # at 320x256. The per-frame stretch darkens the whole scene as the car enters; the steady one stays
    # within 0.5 grey level of one range fixed over the whole clip (which only hindsight knows).
    from benchmarks.clips import crossing_clip
    from occo_deploy.fusing.fuser import Fuser

    require_shared("the LLVIP sequence and the MSRS pairs")
    assert isinstance(fuser, Fuser)
    clip = crossing_clip(FULL_SHARED / "data", size_wh=(320, 256), frames=40, enter=12, cross=24)
    ir = [i for i, _ in clip]
    vis = [v for _, v in clip]
    tagged = [(k, i, v) for k, (i, v) in enumerate(clip)]
    ranges = [fuser.backend.infer(v[None], i[None], own_range(1))[1] for i, v in clip]
    lo = min(float(r[0, 0]) for r in ranges if r is not None)
    hi = max(float(r[0, 1]) for r in ranges if r is not None)
    fixed = SteadyStretch.fixed(lo, hi)
    worst = {name: stability([f for _, f in fuser.fuse_stream(tagged, stretch=stretch)], ir, vis).worst_shift
             for name, stretch in (("frame", "frame"), ("steady", "steady"), ("fixed", fixed))}
    assert worst["frame"] > 3.0, worst  # the clip does pump per frame
    assert worst["steady"] <= worst["fixed"] + 0.5, worst
