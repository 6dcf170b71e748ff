"""The ``eval`` job: data sets and engines in, fidelity and fusion metrics out, as one result the CLI
(or a caller) renders: tables, the JSON report, the picture grid.

The verb only parses and draws; which engines run (the default one when none is named, none when only
other methods' folders are scored), the reference, and what the report holds are decided here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from occo_deploy import log
from occo_deploy.errors import EngineError, InputError, option
from occo_deploy.evaluation import evaluate as ev
from occo_deploy.evaluation.metrics import CONVENTIONS
from occo_deploy.fusing.options import RunOptions
from occo_deploy.progress import Progress
from occo_deploy.workspace import DEFAULT_ONNX

_log = log.get("evaluation")

INFRARED_FOLDER_NAMES = {"ir", "infrared", "thermal", "lwir"}


def dataset_name(ir: Path) -> str:
    """pairs/TNO/ir -> "TNO"; a folder of another name names itself."""
    folder = ir if ir.is_dir() else ir.parent
    resolved = folder.resolve()
    if resolved.name.lower() in INFRARED_FOLDER_NAMES and resolved.parent.name:
        return resolved.parent.name
    return resolved.name or "pairs"


def dataset_specs(ir: Path | None, vis: Path | None, datasets: Sequence[str]) -> list[tuple[str, Path, Path]]:
    """(name, ir, vis) per data set: IR VIS first, then each ``NAME=IR_DIR,VIS_DIR``; names must differ."""
    specs = [ev.parse_dataset(d) for d in datasets]
    if (ir is None) != (vis is None):
        raise InputError(f"give both IR and VIS (two images or two folders), or {option('dataset')} "
                         "NAME=IR_DIR,VIS_DIR")
    if ir is not None and vis is not None:
        specs.insert(0, (dataset_name(ir), ir, vis))
    if not specs:
        raise InputError(f"eval needs pairs: IR VIS (images or folders) or {option('dataset')} NAME=IR_DIR,VIS_DIR")
    if len({name for name, _, _ in specs}) != len(specs):
        raise InputError(f"two data sets share a name; name them with {option('dataset')} NAME=IR_DIR,VIS_DIR")
    return specs


@dataclass(frozen=True)
class EvalRequest:
    """What ``eval`` takes: the data sets as (name, ir, vis), the engines (none: the one ``fuse`` would
    use), other methods' folders (``NAME=DIR``), the metric convention and the reference."""

    datasets: Sequence[tuple[str, Path, Path]]
    engines: Sequence[Path] = ()
    fused: Sequence[str] = ()
    convention: str = "cddfuse"
    reference: Path = DEFAULT_ONNX
    limit: int | None = None
    run: RunOptions = field(default_factory=RunOptions)


@dataclass
class EvalResult:
    request: EvalRequest
    datasets: list[ev.Dataset]
    #: Per data set, one row per engine (with fidelity) then per method.
    results: dict[str, list[ev.EngineEval]]
    #: The first data set's fused frames per label ("reference" first), for the picture grid.
    frames: dict[str, list[np.ndarray]]
    engine_labels: list[str]
    method_labels: list[str]
    reference_label: str | None

    def means(self) -> dict[str, dict[str, dict[str, float | None]]]:
        """Data set -> row label -> mean fusion metrics (the paper-style table)."""
        return {d.name: {r.label: r.mean("metrics") for r in self.results[d.name]} for d in self.datasets}

    def as_dict(self) -> dict[str, Any]:
        """The JSON report: the convention, the reference, every data set's pairs and rows."""
        convention = self.request.convention
        return {"command": "eval", "convention": convention, "convention_matches": CONVENTIONS[convention][1],
                "reference": self.reference_label,
                "datasets": [{"name": d.name, "ir": str(i), "vis": str(v), "pairs": [p[0] for p in d.pairs],
                              "methods": [r.as_dict() for r in self.results[d.name]]}
                             for d, (_, i, v) in zip(self.datasets, self.request.datasets)]}

    def grid(self, rows: int) -> tuple[list[list[np.ndarray]], list[str], list[str]]:
        """(image rows, column titles, row names) of the first data set's first ``rows`` pairs: infrared,
        visible, then each engine and method that has frames."""
        first = self.datasets[0].pairs[:rows]
        shown = [label for label in (*self.engine_labels, *self.method_labels) if label in self.frames]
        images = [[p[1], p[2], *(self.frames[label][k] for label in shown)] for k, p in enumerate(first)]
        return images, ["infrared", "visible", *shown], [p[0] for p in first]


def run_eval(req: EvalRequest, progress: Progress | None = None) -> EvalResult:
    """Load the pairs, open the engines with ``req.run``, and score them and the method folders."""
    from occo_deploy.fusing.fuser import Fuser
    from occo_deploy.workspace import default_engine

    if req.convention not in CONVENTIONS:
        raise InputError(f"{option('convention', req.convention)} is not one of {', '.join(CONVENTIONS)}")
    methods = [ev.parse_fused(f) for f in req.fused]
    datasets = [ev.Dataset(name, ev.load_pairs(i, v, req.limit)) for name, i, v in req.datasets]
    engine_paths = list(req.engines)
    if not engine_paths:
        try:
            engine_paths = [default_engine()]
        except EngineError:
            if not methods:
                raise
            _log.warning("no engine in engines/ or export/; scoring the %s folders only", option("fused"))
    ref_fn, ref_label = ev.reference_runner(req.reference) if engine_paths else (None, None)
    fusers = [Fuser(p, **req.run.kwargs()) for p in engine_paths]
    try:
        labels = [f"{f.engine.name} [{f.info().get('precision')}]" for f in fusers]
        engines = [(label, f.info(), f.fuse) for label, f in zip(labels, fusers)]
        results, frames = ev.evaluate(datasets, engines, ref_fn, req.convention, methods, progress=progress)
    finally:
        for f in fusers:
            f.close()
    return EvalResult(req, datasets, results, frames, labels, [m[0] for m in methods], ref_label)
