"""Checkpoint formats that must load, and broken ones that must fail with a one-line message."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from occo_deploy.errors import CheckpointError, cli_context
from occo_deploy.model.checkpoint import load_model
from occo_deploy.model.net import OCCO
from tests.conftest import CHECKPOINT


@pytest.fixture(scope="module")
def official() -> dict:
    return torch.load(CHECKPOINT, map_location="cpu", weights_only=True)


def _same_weights(model: torch.nn.Module, state: dict) -> bool:
    return all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_official_format_loads(official: dict) -> None:
    model = load_model(CHECKPOINT)
    assert model.widths == (32, 64, 112, 160)
    assert not model.training
    assert _same_weights(model, official["state_dict"])


@pytest.mark.parametrize("variant", ["bare", "module_prefix", "with_optimizer"])
def test_other_official_variants_load(official: dict, tmp_path: Path, variant: str) -> None:
    state = official["state_dict"]
    obj = {
        "bare": state,
        "module_prefix": {"state_dict": {f"module.{k}": v for k, v in state.items()}, "meta": {"epoch": 3}},
        "with_optimizer": {**official, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}},
    }[variant]
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    assert _same_weights(load_model(path), state)


def test_widths_are_inferred_from_the_weights(tmp_path: Path) -> None:
    small = OCCO((8, 16, 24, 32))
    path = tmp_path / "small.pth"
    torch.save({"state_dict": small.state_dict()}, path)
    loaded = load_model(path)
    assert loaded.widths == (8, 16, 24, 32)
    assert _same_weights(loaded, small.state_dict())


def _assert_one_line(exc: pytest.ExceptionInfo[CheckpointError], *needles: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_not_a_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")
    with pytest.raises(CheckpointError) as exc:
        load_model(path)
    _assert_one_line(exc, "not a PyTorch checkpoint", str(path))
    assert str(exc.value).endswith("re-save it with torch.save")  # nothing of torch's own message


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "truncated.pth"
    path.write_bytes(CHECKPOINT.read_bytes()[: 3_000_000])
    with pytest.raises(CheckpointError) as exc:
        load_model(path)
    _assert_one_line(exc, "truncated")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as exc:
        load_model(tmp_path / "nope.pth")
    _assert_one_line(exc, "not found")


def test_missing_and_unexpected_keys_are_named(official: dict, tmp_path: Path) -> None:
    state = dict(official["state_dict"])
    del state["fusion2.cross.norm1.weight"]
    state["fusion9.extra.weight"] = torch.zeros(3)
    path = tmp_path / "edited.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError) as exc:
        load_model(path)
    _assert_one_line(exc, "1 missing: fusion2.cross.norm1.weight", "1 unexpected: fusion9.extra.weight")


def test_wrong_shapes_are_named(official: dict, tmp_path: Path) -> None:
    state = dict(official["state_dict"])
    state["final.weight"] = torch.zeros(1, 16, 1, 1)
    path = tmp_path / "reshaped.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as exc:
        load_model(path)
    _assert_one_line(exc, "wrong shape: final.weight (1, 16, 1, 1) (model (1, 32, 1, 1))")


def test_another_network_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(CheckpointError) as exc:
        load_model(path)
    _assert_one_line(exc, "is not an OCCO checkpoint")


def test_pickled_objects_need_trust(official: dict, tmp_path: Path) -> None:
    path = tmp_path / "objects.pth"
    torch.save({"state_dict": official["state_dict"], "meta": {"when": Path("/tmp")}}, path)
    with pytest.raises(CheckpointError) as exc:
        load_model(path)
    _assert_one_line(exc, "pass trusted=True")  # the Python argument; the CLI's option below
    assert "\x1b[" not in str(exc.value)  # torch's terminal bold is not passed on
    # Our words and the refused object's name, not a cut paragraph of torch's ("... Re-running `torch.);").
    assert "(pathlib." in str(exc.value) and "Weights only load failed" not in str(exc.value)
    with cli_context(), pytest.raises(CheckpointError) as exc:
        load_model(path)
    _assert_one_line(exc, "pass --trust-checkpoint")
    assert load_model(path, trusted=True).widths == (32, 64, 112, 160)
