"""Loading OCCO checkpoints in the official formats, with errors that name the first mismatches."""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from occo_deploy.errors import CheckpointError, cli_names
from occo_deploy.model.net import OCCO

#: Where each width of ``nb_filter`` can be read: output channels of the first conv of each visible stage.
_WIDTH_KEYS = tuple(f"v{k}.Conv_BN_ReLU_2.0.weight" for k in range(1, 5))
_SHOW = 3  # how many offending keys a message names


def _read(path: Path, trusted: bool) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # weights_only refuses arbitrary pickled objects; official checkpoints hold only tensors,
        # dicts and numbers, so this is the safe default.
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except Exception as exc:
        # torch's own messages run to paragraphs (a cut one ends mid-word): say it in our words, and
        # name the objects a weights-only load refused, which is all its message adds.
        if not trusted and isinstance(exc, pickle.UnpicklingError):
            found = sorted(set(re.findall(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))))
            what = f" ({', '.join(found[:_SHOW])})" if found else ""
            raise CheckpointError(
                f"{path} holds Python objects besides weights{what}, which a weights-only load refuses; "
                f"if you trust its source, pass {'--trust-checkpoint' if cli_names() else 'trusted=True'}"
            ) from exc
        raise CheckpointError(
            f"cannot read {path}: not a PyTorch checkpoint, or truncated; "
            "re-download it or re-save it with torch.save"
        ) from exc


def extract_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The network weights from an official checkpoint dict or a bare state dict, ``module.`` removed."""
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source} holds no state dict (found {type(obj).__name__})")
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{source} is not a state dict: entry {key!r} is {type(value).__name__}")
        state[key.removeprefix("module.")] = value
    return state


def infer_widths(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> tuple[int, int, int, int]:
    """``nb_filter`` from the weights' shapes, so checkpoints of other widths load too."""
    missing = [k for k in _WIDTH_KEYS if k not in state]
    if missing:
        raise CheckpointError(
            f"{source} is not an OCCO checkpoint: missing {', '.join(missing[:_SHOW])}"
        )
    a, b, c, d = (int(state[k].shape[0]) for k in _WIDTH_KEYS)
    return a, b, c, d


def _mismatch_message(
    model: OCCO, state: Mapping[str, torch.Tensor], source: str
) -> str | None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} (model {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            more = f" and {len(keys) - _SHOW} more" if len(keys) > _SHOW else ""
            parts.append(f"{len(keys)} {label}: {', '.join(keys[:_SHOW])}{more}")
    if not parts:
        return None
    return f"{source} does not match the OCCO network ({'; '.join(parts)})"


def load_model(path: str | Path, trusted: bool = False) -> OCCO:
    """An ``OCCO`` in eval mode with the checkpoint's weights; raises ``CheckpointError`` otherwise."""
    path = Path(path)
    state = extract_state_dict(_read(path, trusted), str(path))
    try:
        model = OCCO(infer_widths(state, str(path)))
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        raise CheckpointError(f"{path}: widths read from the weights make no OCCO network ({exc})") from exc
    problem = _mismatch_message(model, state, str(path))
    if problem:
        raise CheckpointError(problem)
    model.load_state_dict(state, strict=True)
    return model.eval()
