"""``eval``: fidelity of engines against a reference, and the fusion metrics, on real pairs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from occo_deploy.errors import InputError
from occo_deploy.evaluation.metrics import fidelity, fusion_metrics
from occo_deploy.progress import Progress
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
        infrared = infrared_gray(read_image(i, "infrared"))
        if infrared.dtype != np.uint8:
            raise InputError(f"{i}: eval scores 8-bit pairs as published tables do (got {infrared.dtype}); "
                             "fuse 16-bit frames with fuse --ir-scale and score 8-bit copies")
        pairs.append((name, match_size(infrared, visible.shape[:2]), visible))
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
    from occo_deploy.fusing.fuser import Fuser

    fuser = Fuser(reference)
    return fuser.fuse, f"{reference} [{fuser.info().get('backend')}, {fuser.info().get('precision')}]"


@dataclass
class Dataset:
    """Named pairs: one column block of a paper's table."""

    name: str
    pairs: list[Pair]


def parse_dataset(spec: str) -> tuple[str, Path, Path]:
    """``NAME=IR_DIR,VIS_DIR`` (``--dataset``) -> (name, ir, vis)."""
    name, sep, dirs = spec.partition("=")
    parts = dirs.split(",")
    if not sep or not name or len(parts) != 2 or not all(parts):
        raise InputError(f"--dataset takes NAME=IR_DIR,VIS_DIR (got {spec!r}); e.g. --dataset TNO=tno/ir,tno/vi")
    return name, Path(parts[0]), Path(parts[1])


def parse_fused(spec: str) -> tuple[str, Path]:
    """``NAME=DIR`` (``--fused``) -> (method name, folder of its fused images)."""
    name, sep, folder = spec.partition("=")
    if not sep or not name or not folder:
        raise InputError(f"--fused takes NAME=DIR (got {spec!r}); e.g. --fused CDDFuse=results/CDDFuse")
    if not Path(folder).is_dir():
        raise InputError(f"--fused {name}: {folder} is not a folder of fused images")
    return name, Path(folder)


def fused_image(folder: Path, dataset: str, pair: str, method: str) -> np.ndarray | None:
    """A method's published fused image for one pair: ``DIR/<dataset>/<pair>.*`` or ``DIR/<pair>.*``,
    read as stored (a gray file stays gray: the VIFB convention scores gray and colour differently);
    None when the folder has none (its cells then show ``-``)."""
    for where in (folder / dataset, folder):
        found = sorted(p for p in where.glob(f"{pair}.*") if is_image(p)) if where.is_dir() else []
        if found:
            image = read_image(found[0], f"{method} fused")
            if image.dtype != np.uint8:
                raise InputError(f"{found[0]}: fused images must be 8-bit (got {image.dtype})")
            return image if image.ndim == 2 or image.shape[2] == 3 else image[:, :, :3]
    return None


@dataclass
class EngineEval:
    """One row of the tables on one data set: an engine (with fidelity) or a method's fused folder."""

    label: str
    info: dict[str, Any]
    per_pair: list[dict[str, Any]] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        """Pairs a method's folder has no image for."""
        return [p["pair"] for p in self.per_pair if p.get("missing")]

    def mean(self, group: str) -> dict[str, float | None]:
        """Means over the pairs; all None when a pair is missing (a mean over fewer pairs than the
        other rows would not compare with them)."""
        rows = [p[group] for p in self.per_pair if p.get(group) is not None]
        out: dict[str, float | None] = {}
        if self.missing:
            return {key: None for key in (rows[0] if rows else {})}
        for key in (list(rows[0]) if rows else []):
            finite = [float(r[key]) for r in rows if r[key] is not None and np.isfinite(r[key])]
            out[key] = float(np.mean(finite)) if finite else None
        return out

    def as_dict(self) -> dict[str, Any]:
        has_fidelity = any(p.get("fidelity") is not None for p in self.per_pair)
        return {"label": self.label, "engine": self.info,
                "mean": {"fidelity": self.mean("fidelity") if has_fidelity else None,
                         "metrics": self.mean("metrics")},
                "pairs": self.per_pair}


def _finite(values: dict[str, float | None]) -> dict[str, float | None]:
    return {m: (None if v is None or not np.isfinite(v) else v) for m, v in values.items()}


def evaluate(datasets: list[Dataset], engines: Sequence[tuple[str, dict[str, Any], FuseFn]], reference: FuseFn | None,
             convention: str = "cddfuse", fused: Sequence[tuple[str, Path]] = (),
             progress: Progress | None = None,
             ) -> tuple[dict[str, list[EngineEval]], dict[str, list[np.ndarray]]]:
    """Per data set, engine and pair: fidelity to the reference and the fusion metrics in
    ``convention``; per method folder in ``fused``: the metrics of its images. Also returns the
    first data set's fused frames (reference first) for the picture grid."""
    if not any(d.pairs for d in datasets):
        raise InputError("no pairs to evaluate")
    total = sum(len(d.pairs) for d in datasets)
    done = 0
    results: dict[str, list[EngineEval]] = {}
    frames: dict[str, list[np.ndarray]] = {}
    for d_index, dataset in enumerate(datasets):
        rows = [EngineEval(label, info) for label, info, _ in engines]
        rows += [EngineEval(name, {"fused_folder": str(folder)}) for name, folder in fused]
        for name, ir, vis in dataset.pairs:
            want = reference(ir, vis) if reference is not None and engines else None
            if d_index == 0 and want is not None:
                frames.setdefault("reference", []).append(want)
            for row, (label, _, fuse) in zip(rows, engines):
                got = fuse(ir, vis)
                if d_index == 0:
                    frames.setdefault(label, []).append(got)
                row.per_pair.append({"pair": name, "fidelity": None if want is None else fidelity(want, got),
                                     "metrics": _finite(fusion_metrics(ir, vis, got, convention))})
            for row, (method, folder) in zip(rows[len(engines):], fused):
                image = fused_image(folder, dataset.name, name, method)
                if image is None:
                    if d_index == 0:
                        frames.setdefault(method, []).append(np.zeros_like(vis))
                    row.per_pair.append({"pair": name, "fidelity": None, "metrics": None, "missing": True})
                    continue
                if image.shape[:2] != vis.shape[:2]:
                    raise InputError(f"--fused {method}: {name} is {image.shape[1]}x{image.shape[0]}, the pair "
                                     f"{vis.shape[1]}x{vis.shape[0]}; give fused images at the pair's size")
                if d_index == 0:
                    frames.setdefault(method, []).append(image)
                row.per_pair.append({"pair": name, "fidelity": None,
                                     "metrics": _finite(fusion_metrics(ir, vis, image, convention))})
            done += 1
            if progress:
                progress(done, total)
        results[dataset.name] = rows
    return results, frames
