"""The textbook convention's metrics against values worked out by hand on tiny arrays, and their
known properties; engine fidelity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from occo_deploy.evaluation import metrics
from occo_deploy.evaluation import textbook as m
from tests.conftest import bgr, load_case

A2 = np.array([[0, 0], [255, 255]], np.float64)


def test_entropy_by_hand() -> None:
    assert m.entropy(np.full((4, 4), 77.0)) == 0.0  # constant image
    assert m.entropy(A2) == pytest.approx(1.0)  # two values, half each: 1 bit
    assert m.entropy(np.array([[0, 1], [2, 3]], np.float64)) == pytest.approx(2.0)


def test_sd_sf_ag_by_hand() -> None:
    assert m.std_dev(np.array([[0, 2], [4, 6]], np.float64)) == pytest.approx(math.sqrt(5))  # var (9+1+1+9)/4
    ramp = np.array([[0, 1], [2, 3]], np.float64)
    assert m.spatial_frequency(ramp) == pytest.approx(math.sqrt(1 + 4))  # RF^2 = 1, CF^2 = 4
    assert m.average_gradient(ramp) == pytest.approx(math.sqrt((4 + 1) / 2))  # d/drow = 2, d/dcol = 1


def test_mutual_information_by_hand_and_mi_aa_is_en_a() -> None:
    cols = np.array([[0, 255], [0, 255]], np.float64)
    assert m.mutual_information(A2, A2) == pytest.approx(1.0)
    assert m.mutual_information(A2, cols) == pytest.approx(0.0, abs=1e-12)  # independent halves
    assert m.mutual_information(A2, np.zeros((2, 2))) == pytest.approx(0.0, abs=1e-12)
    case = load_case("tno_07")
    ir = case["ir"].astype(np.float64)
    assert m.mutual_information(ir, ir) == pytest.approx(m.entropy(ir))


def test_scd_by_hand() -> None:
    a = np.array([[1, 2], [3, 4]], np.float64)
    b = np.array([[4, 3], [2, 1]], np.float64)
    assert m.scd(a, b, a + b) == pytest.approx(2.0)  # F - B = A and F - A = B: both correlations 1
    # F = B: F - B is flat (correlation 0 by convention), F - A = B - A = [3, 1, -1, -3] rises with B.
    assert m.scd(a, b, b) == pytest.approx(1.0)


def test_psnr_fusion_by_hand() -> None:
    zeros = np.zeros((2, 2))
    f = zeros.copy()
    f[0, 0] = 255  # each MSE = 255^2 / 4
    assert m.psnr_fusion(zeros, zeros, f) == pytest.approx(10 * math.log10(4))
    assert m.psnr_fusion(zeros, zeros, zeros) == math.inf


@pytest.mark.shared
def test_qabf_by_hand_for_perfect_and_for_lost_edges() -> None:
    case = load_case("roadscene_FLIR_07504")
    a = case["ir"].astype(np.float64)
    perfect = 0.9994 / (1 + math.exp(-15 * 0.5)) * 0.9879 / (1 + math.exp(-22 * 0.2))
    assert m.qabf(a, a, a) == pytest.approx(perfect, rel=1e-9)  # about 0.975 with these constants
    assert m.qabf(a, a, np.full_like(a, 128.0)) < 0.01  # a flat fused image transfers no edge
    assert m.qabf(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 8))) == 0.0


@pytest.mark.shared
def test_ssim_and_vif_properties() -> None:
    case = load_case("msrs_00016N")
    vis = m.gray(bgr(case["vis"]))
    assert m.ssim(vis, vis) == pytest.approx(1.0)
    checker = np.where((np.indices((64, 64)).sum(0) % 2) == 0, 228.0, 28.0)  # +-100 around 128
    assert m.ssim(checker, 256.0 - checker) < -0.9  # same means and contrast, opposite structure
    assert m.vif_pixel(vis, vis) == pytest.approx(1.0)
    assert m.vif_pixel(vis, np.full_like(vis, vis.mean())) == pytest.approx(0.0, abs=1e-9)
    noisy = np.clip(vis + np.random.default_rng(0).normal(0, 20, vis.shape), 0, 255)
    assert 0.0 < m.vif_pixel(vis, noisy) < 1.0 and m.ssim(vis, noisy) < 1.0


@pytest.mark.shared
def test_all_metrics_on_a_real_fused_frame_are_in_their_ranges() -> None:
    case = load_case("msrs_00537D")
    values = metrics.fusion_metrics(case["ir"], bgr(case["vis"]), bgr(case["fused"]), "textbook")
    assert list(values) == list(metrics.FUSION_METRICS)
    assert 0 < values["EN"] <= 8 and values["SD"] > 0 and values["SF"] > 0 and values["AG"] > 0
    assert 0 < values["MI"] <= 16 and 0 < values["Qabf"] < 0.975 and 0 < values["SSIM"] < 2
    assert values["VIF"] > 0 and -2 <= values["SCD"] <= 2 and 0 < values["PSNR"] < 100


def test_fidelity() -> None:
    a = np.zeros((8, 8, 3), np.uint8)
    same = metrics.fidelity(a, a.copy())
    assert same["psnr"] is None and same["max_abs"] == 0 and same["off_by_more_than_1"] == 0.0
    b = a.copy()
    b[0, 0, 0] = 9
    b[1, 1, 1] = 2
    d = metrics.fidelity(a, b)
    assert d["max_abs"] == 9
    assert d["off_by_more_than_1"] == pytest.approx(2 / a.size) and d["off_by_more_than_8"] == pytest.approx(1 / a.size)
    assert d["psnr"] == pytest.approx(10 * math.log10(255**2 / ((81 + 4) / a.size)))
