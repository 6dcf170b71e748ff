"""Make the cases for ``tests/data/evaluators/goldens.json`` and collect the original evaluators' values.

The two conventions in ``occo_deploy.evaluation`` reproduce MMIF-CDDFuse's ``utils/Evaluator.py`` and
VIFB's ``metrics/*.m``. Neither original can run in CI (CDDFuse's pins numpy 1.21 and Python <= 3.9,
VIFB is MATLAB), so their values on a few real crops are kept as goldens, like the reference
network's golden outputs. To regenerate them:

1. ``python tools/evaluator_goldens.py cases DIR`` writes the crops and fused images to DIR, with
   ``cases.json`` and ``cases.csv`` (ir,vis,fused per line).
2. CDDFuse: in a Python 3.9 venv with its requirements.txt pins (numpy 1.21.5, scikit-image 0.19.2,
   scikit-learn 1.1.3, scipy 1.7.3, opencv-python 4.5.3.56), with ``utils/Evaluator.py`` of
   github.com/Zhaozixiang1228/MMIF-CDDFuse (fd8da1f) importable, score each case as its
   ``test_IVF.py`` does (``image_read_cv2(path, 'GRAY')``, then ``Evaluator.EN(fi)`` ...
   ``Evaluator.PSNR(fi, ir, vi)``) and write ``cddfuse.json``: a list of {"fused": path,
   "metrics": {name: value}}.
3. VIFB: in GNU Octave with the image package and VIFB's ``metrics/`` (22b2ea9) on the path, for
   each line of cases.csv call ``metricsX(imread(vis), imread(ir), imread(fused))`` for Entropy,
   Variance, Spatial_frequency, Avg_gradient, Mutinf, Qabf, Ssim, Psnr (in that order) and write
   ``vifb.csv``: the fused path, then the eight values.
4. ``python tools/evaluator_goldens.py collect DIR`` writes the goldens.

The cases are centre crops of real pairs and fusion rules in integer arithmetic (mean and max of the
gray images, and a colour mean), so the test rebuilds them exactly from ``../shared/data/pairs``.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT.parent / "shared" / "data" / "pairs"
GOLDENS = ROOT / "tests" / "data" / "evaluators" / "goldens.json"
CROP_HW = (224, 256)
PAIR_FILES = (("MSRS", "00537D.png"), ("TNO", "07.png"), ("RoadScene", "FLIR_07504.jpg"), ("LLVIP", "190001.jpg"))
RULES = ("meangray", "maxgray", "meancolour")
VIFB_ORDER = ("EN", "SD", "SF", "AG", "MI", "Qabf", "SSIM", "PSNR")


def crop_pair(dataset: str, name: str, pairs: Path = PAIRS) -> tuple[np.ndarray, np.ndarray]:
    """(infrared gray, visible BGR), uint8, the centre CROP_HW of a real pair."""
    ir = cv2.imread(str(pairs / dataset / "ir" / name), cv2.IMREAD_GRAYSCALE)
    vis = cv2.imread(str(pairs / dataset / "vi" / name), cv2.IMREAD_COLOR)
    if ir is None or vis is None:
        raise SystemExit(f"cannot read the pair {dataset}/{name} under {pairs}")
    h, w = CROP_HW
    top, left = (vis.shape[0] - h) // 2, (vis.shape[1] - w) // 2
    return ir[top : top + h, left : left + w].copy(), vis[top : top + h, left : left + w].copy()


def fuse_rule(rule: str, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """Fusion rules in integer arithmetic (exact on every machine)."""
    vg = cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY).astype(np.int32)
    i = ir.astype(np.int32)
    if rule == "meangray":
        return ((vg + i) // 2).astype(np.uint8)
    if rule == "maxgray":
        return np.maximum(vg, i).astype(np.uint8)
    if rule == "meancolour":
        return ((vis.astype(np.int32) + i[:, :, None]) // 2).astype(np.uint8)
    raise ValueError(rule)


def make_cases(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for dataset, name in PAIR_FILES:
        ir, vis = crop_pair(dataset, name)
        stem = f"{dataset}_{Path(name).stem}"
        cv2.imwrite(str(folder / f"{stem}_ir.png"), ir)
        cv2.imwrite(str(folder / f"{stem}_vis.png"), vis)
        for rule in RULES:
            cv2.imwrite(str(folder / f"{stem}_{rule}.png"), fuse_rule(rule, ir, vis))
            cases.append({"dataset": dataset, "pair": name, "rule": rule, "ir": str(folder / f"{stem}_ir.png"),
                          "vis": str(folder / f"{stem}_vis.png"), "fused": str(folder / f"{stem}_{rule}.png")})
    (folder / "cases.json").write_text(json.dumps(cases, indent=1))
    (folder / "cases.csv").write_text("".join(f"{c['ir']},{c['vis']},{c['fused']}\n" for c in cases))


def collect(folder: Path) -> None:
    cases = json.loads((folder / "cases.json").read_text())
    cdd = {c["fused"]: c["metrics"] for c in json.loads((folder / "cddfuse.json").read_text())}
    with (folder / "vifb.csv").open() as fh:
        vifb = {row[0]: dict(zip(VIFB_ORDER, map(float, row[1:]))) for row in csv.reader(fh)}
    out = {"crop_hw": list(CROP_HW),
           "cddfuse_source": "MMIF-CDDFuse utils/Evaluator.py fd8da1f; Python 3.9, numpy 1.21.5, scikit-image "
                             "0.19.2, scikit-learn 1.1.3, scipy 1.7.3, opencv-python 4.5.3.56",
           "vifb_source": "VIFB metrics/*.m 22b2ea9 in GNU Octave with the image package",
           "cases": [{"dataset": c["dataset"], "pair": c["pair"], "rule": c["rule"],
                      "cddfuse": cdd[c["fused"]], "vifb": vifb[c["fused"]]} for c in cases]}
    GOLDENS.parent.mkdir(parents=True, exist_ok=True)
    GOLDENS.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    command, where = sys.argv[1], Path(sys.argv[2])
    {"cases": make_cases, "collect": collect}[command](where)
