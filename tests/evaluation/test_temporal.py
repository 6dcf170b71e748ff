"""The temporal stability measure: a frame that pumps is caught, a still one is not, on real frames."""

from __future__ import annotations

import numpy as np
import pytest

from occo_deploy.demo import clip_pairs
from occo_deploy.errors import InputError
from occo_deploy.evaluation.temporal import stability


def test_a_whole_frame_brightening_on_a_static_scene_is_the_shift() -> None:
    # Real frames of the bundled clip, held still (the same pair three times): a fused frame that
    # brightens by 6 then darkens by 2 on every pixel is a +6 and a -2 shift; a faithful one is 0.
    ir, vis = clip_pairs(1)[0]
    still_ir, still_vis = [ir] * 3, [vis] * 3
    pumping = [vis, *(np.clip(vis.astype(int) + k, 0, 255).astype(np.uint8) for k in (6, 4))]
    found = stability(pumping, still_ir, still_vis)
    assert [round(s.fused_shift) for s in found.steps] == [6, -2] and found.worst_shift == pytest.approx(6, abs=0.3)
    assert all(s.static_share == 1.0 and s.inputs_abs == 0.0 for s in found.steps)
    assert stability([vis] * 3, still_ir, still_vis).worst_shift == 0.0


def test_only_what_holds_still_in_both_inputs_counts() -> None:
    ir, vis = clip_pairs(1)[0]
    moved = ir.copy()
    top = ir.shape[0] // 2
    moved[:top] = ((ir[:top].astype(int) + 128) % 256).astype(np.uint8)  # a hot object over the top half
    fused_next = vis.copy()
    fused_next[:top] = 0  # the fusion changes there, as it should
    found = stability([vis, fused_next], [ir, moved], [vis, vis])
    step = found.steps[0]
    assert step.static_share == pytest.approx(0.5, abs=0.01) and step.fused_shift == pytest.approx(0.0, abs=1e-6)


def test_bad_sequences_are_refused() -> None:
    ir, vis = clip_pairs(1)[0]
    with pytest.raises(InputError, match="two or more"):
        stability([vis], [ir], [vis])
    with pytest.raises(InputError, match="different sizes"):
        stability([vis, vis], [ir, ir[:-2]], [vis, vis])
