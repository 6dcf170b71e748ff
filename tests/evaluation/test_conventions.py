"""The cddfuse and vifb metric conventions: values worked out by hand, their quirks, and the original
evaluators' own values on real crops (``tests/data/evaluators/goldens.json``, made by
``tools/evaluator_goldens.py`` with MMIF-CDDFuse's Evaluator.py in its pinned environment and VIFB's
.m files in GNU Octave)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from occo_deploy import InputError
from occo_deploy.evaluation import cddfuse, textbook, vifb
from occo_deploy.evaluation.metrics import CONVENTIONS, FUSION_METRICS, fusion_metrics
from tests.conftest import PAIRS, bgr, load_case
from tools.evaluator_goldens import crop_pair, fuse_rule

GOLDENS = json.loads((Path(__file__).parents[1] / "data" / "evaluators" / "goldens.json").read_text())
A2 = np.array([[0, 0], [255, 255]], np.float64)
RAMP = np.array([[0, 1], [2, 3]], np.float64)


@pytest.mark.parametrize("case", GOLDENS["cases"], ids=lambda c: f"{c['dataset']}-{c['rule']}")
@pytest.mark.shared
def test_both_conventions_give_the_original_evaluators_values(case: dict) -> None:
    ir, vis = crop_pair(case["dataset"], case["pair"], PAIRS)
    fused = fuse_rule(case["rule"], ir, vis)
    got = fusion_metrics(ir, vis, fused, "cddfuse")
    for name, want in case["cddfuse"].items():  # the original computes in float32
        assert got[name] == pytest.approx(want, rel=1e-4), name
    # VIFB ran in GNU Octave, whose rgb2gray weights are MATLAB's to six digits: with those, every
    # value matches to the 12 digits Octave printed.
    octave = vifb.metrics(ir, vis, fused, weights=vifb.OCTAVE_RGB2GRAY)
    for name, want in case["vifb"].items():
        assert octave[name] == pytest.approx(want, rel=1e-9), name
    # With MATLAB's weights (the convention's default) only a gray fusion's Qabf moves, and by < 1%:
    # its unrounded visible luma makes atan(Sy / Sx) follow rounding noise (see vifb._conv2_same).
    default = fusion_metrics(ir, vis, fused, "vifb")
    assert default["SCD"] is None and default["VIF"] is None  # VIFB has no SCD or VIF
    for name, want in case["vifb"].items():
        assert default[name] == pytest.approx(want, rel=1e-2 if name == "Qabf" else 1e-6), name


def test_cddfuse_by_hand() -> None:
    assert cddfuse.entropy(np.full((4, 4), 77.0)) == 0.0 and cddfuse.entropy(A2) == pytest.approx(1.0)  # bits
    assert cddfuse.average_gradient(RAMP) == pytest.approx(math.sqrt((1 + 4) / 2))
    assert cddfuse.spatial_frequency(RAMP) == pytest.approx(math.sqrt(1 + 4))
    # MI in nats: two equally likely values share ln 2 with themselves (1 bit).
    assert cddfuse.mutual_information(A2, np.zeros((2, 2)), A2) == pytest.approx(math.log(2))
    # PSNR's peak is the fused image's own maximum: 100 here, not 255.
    f = np.zeros((2, 2))
    f[0, 0] = 100
    assert cddfuse.psnr(np.zeros((2, 2)), np.zeros((2, 2)), f) == pytest.approx(10 * math.log10(4))
    assert cddfuse.psnr(f, f, f) == math.inf  # documented: identical images (the original divides by 0)
    # SSIM with scikit-image 0.19's float defaults: data range 2, so C1 = (0.01 * 2)^2 on 0..255 values.
    c1 = (0.01 * 2) ** 2
    flat = cddfuse._ssim_skimage(np.full((16, 16), 10.0), np.full((16, 16), 20.0))
    assert flat == pytest.approx((2 * 10 * 20 + c1) / (10**2 + 20**2 + c1))


@pytest.mark.shared
def test_vifb_by_hand() -> None:
    assert vifb.entropy(np.full((4, 4), 77.0)) == 0.0 and vifb.entropy(A2) == pytest.approx(1.0)
    assert vifb.std_dev(np.array([[0, 2], [4, 6]], np.float64)) == pytest.approx(math.sqrt(5))
    # SF divides both sums by m n; AG divides its sum by (r - 1)(c - 1).
    assert vifb.spatial_frequency(RAMP) == pytest.approx(math.sqrt((1 + 1) / 4 + (4 + 4) / 4))
    assert vifb.average_gradient(RAMP) == pytest.approx(4 * math.sqrt((1 + 4) / 2) / 1)
    # MI stretches each image to 0..255 first: {10, 20} carries ln 2 nats like {0, 255}.
    two = np.array([[10, 10], [20, 20]], np.float64)
    assert vifb._mutinf(two, two) == pytest.approx(math.log(2)) and vifb._mutinf(two, np.full((2, 2), 5.0)) == 0
    # "mse" is sqrt(SSE) / (m n): one pixel off by 255 in 2x2 gives 63.75, PSNR 20 log10(255 / sqrt(63.75)).
    f = np.zeros((2, 2))
    f[0, 0] = 255
    assert vifb._psnr(np.zeros((2, 2)), np.zeros((2, 2)), f) == pytest.approx(20 * math.log10(255 / math.sqrt(63.75)))
    assert vifb.rgb2gray(np.array([[[0, 0, 255]]], np.uint8), rounded=True)[0, 0] == 76  # 0.298936 * 255
    case = load_case("msrs_00016N")
    vis = vifb.rgb2gray(bgr(case["vis"]), rounded=False)
    assert vifb._ssim(vis, vis) == pytest.approx(1.0)


def test_vifb_scores_a_colour_fused_image_band_by_band() -> None:
    # Bands of constant 0, 10, 20: each band has EN 0 and SD 0, but SF walks R, G, B side by side and
    # meets two steps of 10 in each row: RF = 2 rows * 2 steps * 100 / (2 * 6).
    fused = np.zeros((2, 2, 3), np.uint8)
    fused[:, :, 2], fused[:, :, 1], fused[:, :, 0] = 0, 10, 20  # BGR: R = 0, G = 10, B = 20
    values = vifb.metrics(np.zeros((2, 2), np.uint8), fused.copy(), fused)
    assert values["EN"] == 0 and values["SD"] == 0
    assert values["SF"] == pytest.approx(math.sqrt(2 * 2 * 100 / 12))
    gray_fused = vifb.metrics(np.zeros((2, 2), np.uint8), fused.copy(), fused[:, :, 1].copy())
    assert gray_fused["SF"] == 0


def test_the_quirks_that_set_conventions_apart() -> None:
    case = load_case("tno_07")
    ir, vis, fused = case["ir"], bgr(case["vis"]), bgr(case["fused"])
    a, b, f = (cddfuse.read_gray(x) for x in (ir, vis, fused))
    # nats vs bits differ by ln 2 exactly (integer images: the same partition of the pixels).
    bits = textbook.mutual_information(a, f) + textbook.mutual_information(b, f)
    assert cddfuse.mutual_information(a, b, f) == pytest.approx(bits * math.log(2), rel=1e-12)
    # Zero-filled (cddfuse, vifb) vs replicated (textbook) borders: flat bright frames have edges
    # only at their border when it is filled with zeros.
    bright, dimmer = np.full((32, 32), 200.0), np.full((32, 32), 100.0)
    assert textbook.qabf(bright, bright, dimmer) == 0.0
    assert cddfuse.qabf(bright, bright, dimmer) > 0.4 and vifb._qabf(bright, bright, dimmer) > 0.4  # G = 1/2
    # Orientation is not taken modulo pi: near-vertical edges of opposite sign disagree fully.
    g = np.array([10.0])
    up, down = np.array([math.pi / 2 - 0.01]), np.array([-math.pi / 2 + 0.01])
    assert cddfuse.qabf_transfer(up, g, down, g)[0] < 0.01 and vifb._q_transfer(g, up, g, down)[0] < 0.01
    assert cddfuse.qabf_transfer(up, g, up, g)[0] > 0.97


@pytest.mark.shared
def test_conventions_are_selectable_and_complete() -> None:
    case = load_case("msrs_00537D")
    ir, vis, fused = case["ir"], bgr(case["vis"]), bgr(case["fused"])
    results = {c: fusion_metrics(ir, vis, fused, c) for c in CONVENTIONS}
    assert all(list(r) == list(FUSION_METRICS) for r in results.values())
    assert results["vifb"]["VIF"] is None and results["cddfuse"]["VIF"] is not None
    assert fusion_metrics(ir, vis, fused) == results["cddfuse"]  # the default
    with pytest.raises(InputError, match="cddfuse, vifb, textbook"):
        fusion_metrics(ir, vis, fused, "matlab")
