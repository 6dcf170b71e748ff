"""``eval``: fidelity of engines against a reference, and the fusion metrics, on real pairs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from occo_deploy.errors import InputError
from occo_deploy.evaluation.metrics import fidelity, fusion_metrics
from occo_deploy.runtime.frames import infrared_gray, match_size, visible_bgr
from occo_deploy.video.media import is_image, pair_folders, read_image

Pair = tuple[str, np.ndarray, np.ndarray]  # name, infrared gray, visible BGR (same size)
FuseFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def load_pairs(ir: Path, vis: Path, limit: int | None = None) -> list[Pair]:
    """Two images or two folders (pairs by file name) -> pairs in contract form, IR at the visible size."""
    if ir.is_dir() and vis.is_dir():
        sources = [(stem, i, v) for stem, i, v in pair_folders(ir, vis).pairs]
    elif ir.is_file() and vis.is_file() and is_image(ir) and is_image(vis):
        sources = [(vis.stem, ir, vis)]
    else:
        raise InputError(f"eval takes two images or two folders of images (got {ir} and {vis})")
    pairs = []
    for name, i, v in sources[:limit]:
        visible = visible_bgr(read_image(v, "visible"))
        pairs.append((name, match_size(infrared_gray(read_image(i, "infrared")), visible.shape[:2]), visible))
    return pairs


def reference_runner(reference: Path) -> tuple[FuseFn, str]:
    """A checkpoint runs the PyTorch pipeline (needs the export extra); anything else is an engine."""
    if reference.suffix in (".pth", ".pt", ".ckpt"):
        from occo_deploy.errors import require

        torch = require("torch", "export", "a PyTorch reference")
        from occo_deploy.model.checkpoint import load_model
        from occo_deploy.model.pipeline import FusionPipeline

        pipeline = FusionPipeline(load_model(reference)).eval()

        def run(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return pipeline(torch.from_numpy(np.ascontiguousarray(vis))[None],
                                torch.from_numpy(np.ascontiguousarray(ir))[None])[0].numpy()

        return run, f"pytorch eager ({reference})"
    from occo_deploy.runtime.fuser import Fuser

    fuser = Fuser(reference)
    return fuser.fuse, f"{reference} [{fuser.info().get('backend')}, {fuser.info().get('precision')}]"


@dataclass
class EngineEval:
    label: str
    info: dict[str, Any]
    per_pair: list[dict[str, Any]] = field(default_factory=list)

    def mean(self, group: str) -> dict[str, float | None]:
        keys = list(self.per_pair[0][group]) if self.per_pair else []
        out: dict[str, float | None] = {}
        for key in keys:
            values = [p[group][key] for p in self.per_pair]
            finite = [float(v) for v in values if v is not None and np.isfinite(v)]
            out[key] = float(np.mean(finite)) if finite else None
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "engine": self.info, "mean": {"fidelity": self.mean("fidelity"),
                                                                    "metrics": self.mean("metrics")},
                "pairs": self.per_pair}


def evaluate(pairs: list[Pair], engines: list[tuple[str, dict[str, Any], FuseFn]], reference: FuseFn,
             progress: Callable[[int, int], None] | None = None) -> tuple[list[EngineEval], dict[str, list[np.ndarray]]]:
    """Per engine and pair: fidelity to the reference and the fusion metrics. Also returns the fused
    frames (reference first) for the picture grid."""
    if not pairs:
        raise InputError("no pairs to evaluate")
    results = [EngineEval(label, info) for label, info, _ in engines]
    frames: dict[str, list[np.ndarray]] = {"reference": []} | {label: [] for label, _, _ in engines}
    for k, (name, ir, vis) in enumerate(pairs):
        want = reference(ir, vis)
        frames["reference"].append(want)
        for result, (label, _, fuse) in zip(results, engines):
            got = fuse(ir, vis)
            frames[label].append(got)
            metrics = fusion_metrics(ir, vis, got)
            result.per_pair.append({"pair": name, "fidelity": fidelity(want, got),
                                    "metrics": {m: (None if not np.isfinite(v) else v) for m, v in metrics.items()}})
        if progress:
            progress(k + 1, len(pairs))
    return results, frames
