"""The network and pipeline against the reference implementation's golden outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occo_deploy.model import reference_form
from occo_deploy.model.checkpoint import load_model
from occo_deploy.model.pipeline import FusionPipeline
from tests.conftest import CHECKPOINT, bgr, golden_cases, golden_params, load_case


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return load_model(CHECKPOINT)


@pytest.mark.shared
def test_golden_cases_cover_odd_and_tiny_sizes() -> None:
    sizes = {(c["height"], c["width"]) for c in golden_cases()}
    assert (16, 16) in sizes and (17, 23) in sizes and (481, 643) in sizes and (1024, 1280) in sizes


@pytest.mark.parametrize("form", ["ours", "reference_form"])
@pytest.mark.parametrize("name", golden_params(slow_above_pixels=200_000))  # eager PyTorch: 5-30 s a large one
def test_raw_output_matches_reference(model: torch.nn.Module, name: str, form: str) -> None:
    """Both our rewrite and the reference-form baseline that benchmarks time reproduce the goldens."""
    case = load_case(name)
    rgb = torch.from_numpy(case["vis"]).permute(2, 0, 1)[None].float() / 255.0
    y = (0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]).clamp(0, 1)
    ir = torch.from_numpy(case["ir"])[None, None].float() / 255.0
    with torch.no_grad():
        raw = (model(y, ir) if form == "ours" else reference_form.reference_forward(model, y, ir)).numpy()
    want = case["net_out"]
    assert raw.shape == want.shape
    rel = np.abs(raw - want).max() / np.abs(want).max()
    assert rel < 1e-4, f"{name}: relative error {rel:.2e}"


@pytest.mark.parametrize("name", [pytest.param("msrs_00016N", marks=pytest.mark.slow), "roadscene_FLIR_07504",
                                  "tno_01_crop37x53", "msrs_00055D_crop17x23"])
@pytest.mark.shared
def test_pipeline_matches_reference_fused_image(model: torch.nn.Module, name: str) -> None:
    case = load_case(name)
    pipeline = FusionPipeline(model)
    with torch.no_grad():
        fused = pipeline(torch.from_numpy(bgr(case["vis"]))[None], torch.from_numpy(case["ir"])[None])[0].numpy()
    diff = np.abs(fused[..., ::-1].astype(int) - case["fused"].astype(int))
    assert diff.max() <= 1, f"{name}: {diff.max()} grey levels off"


@pytest.mark.shared
def test_pipeline_normalises_each_sample_on_its_own(model: torch.nn.Module) -> None:
    a, b = load_case("tno_01_crop37x53"), load_case("msrs_00055D_crop17x23")
    crop = (slice(0, 17), slice(0, 23))
    vis = torch.from_numpy(np.stack([bgr(a["vis"])[crop], bgr(b["vis"])]))
    ir = torch.from_numpy(np.stack([a["ir"][crop], b["ir"]]))
    pipeline = FusionPipeline(model)
    with torch.no_grad():
        batch = pipeline(vis, ir).numpy()
        singles = [pipeline(vis[k : k + 1], ir[k : k + 1]).numpy()[0] for k in range(2)]
    assert np.array_equal(batch[0], singles[0]) and np.array_equal(batch[1], singles[1])
    assert not np.array_equal(batch[0], batch[1])


def test_state_dict_keys_are_the_reference_keys(model: torch.nn.Module) -> None:
    official = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)["state_dict"]
    assert list(model.state_dict().keys()) == list(official.keys())
    assert len(official) == 298


@pytest.mark.parametrize(("heads", "bias"), [(1, False), (4, False), (4, True)])
def test_attention_from_the_gram_matrix_equals_the_reference_per_head_form(heads: int, bias: bool) -> None:
    from occo_deploy.model.net import CrossAttention, tokens

    torch.manual_seed(0)
    ca = CrossAttention(32, num_heads=heads, qkv_bias=bias).double()
    x1, x2 = torch.rand(2, 32, 9, 13, dtype=torch.float64), torch.rand(2, 32, 9, 13, dtype=torch.float64)
    a1, a2 = ca(x1, x2)
    want1, want2 = reference_form._cross_attention(ca, tokens(x1), tokens(x2))
    assert torch.allclose(tokens(x1) @ a2, want1, rtol=1e-10, atol=1e-12)
    assert torch.allclose(tokens(x2) @ a1, want2, rtol=1e-10, atol=1e-12)
    if heads > 1:  # off-head blocks are exactly zero, so no head sees another's channels
        block = torch.arange(32)[:, None] // 8 != torch.arange(32)[None, :] // 8
        assert (a1[:, block] == 0).all()


@pytest.mark.parametrize("heads", [1, 4])
def test_fusion_block_equals_the_reference_order_in_float64(heads: int) -> None:
    """Pooling per branch, the spatial gate after the projection and the LayerNorm's centring folded
    into weights compute the reference's fusion block exactly (to float64 rounding), any weights."""
    from occo_deploy.model.net import Attention_fusion

    torch.manual_seed(1)
    block = Attention_fusion(dim=32, num_heads=heads).double().eval()
    for param in block.parameters():  # away from init values (LayerNorm's 1 and 0, zero biases)
        param.data.add_(0.3 * torch.randn_like(param))
    x1, x2 = torch.rand(2, 32, 11, 7, dtype=torch.float64), torch.rand(2, 32, 11, 7, dtype=torch.float64)
    with torch.no_grad():
        ours = block(x1, x2)
        want = reference_form._fusion(block, x1, x2)
    assert torch.allclose(ours, want, rtol=1e-9, atol=1e-11), (ours - want).abs().max()
