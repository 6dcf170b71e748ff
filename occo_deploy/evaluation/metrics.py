"""Image-fusion quality metrics of the infrared-visible fusion (IVIF) literature, and engine fidelity.

Papers compute the same ten names differently (MI in nats or bits, SSIM windows and data range,
PSNR's peak, Qabf's angle and borders, colour handled band by band or as luma), so a number only
compares with a table made by the same evaluator. ``fusion_metrics`` therefore takes a
*convention*, each reproducing one evaluator value for value:

* ``cddfuse`` (default): MMIF-CDDFuse's ``utils/Evaluator.py``, which most recent IVIF papers
  report with (module ``cddfuse``);
* ``vifb``: the VIFB toolbox's MATLAB ``metrics/*.m`` (module ``vifb``; no SCD or VIF there);
* ``textbook``: each metric as its paper defines it, consistently (module ``textbook``); matches no
  published table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from occo_deploy.errors import InputError
from occo_deploy.evaluation import cddfuse, textbook, vifb

FUSION_METRICS = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "PSNR")

MetricsFn = Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, "float | None"]]

#: name -> (function, what it reproduces: said in reports and tables).
CONVENTIONS: dict[str, tuple[MetricsFn, str]] = {
    "cddfuse": (cddfuse.metrics, "MMIF-CDDFuse utils/Evaluator.py (fd8da1f; numpy 1.21.5, scikit-image 0.19.2, "
                                 "scikit-learn 1.1.3); MI in nats, SSIM by scikit-image defaults"),
    "vifb": (vifb.metrics, "VIFB metrics/*.m (22b2ea9); colour fused images scored per band; MI in nats; "
                           "no SCD or VIF (null)"),
    "textbook": (textbook.metrics, "each paper's definition on luma; MI in bits; matches no published table"),
}


def fusion_metrics(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray,
                   convention: str = "cddfuse") -> dict[str, float | None]:
    """The ten metrics for one pair (uint8; infrared gray, visible BGR, fused gray or BGR) in
    ``convention``'s definitions; a metric the convention lacks is None."""
    if convention not in CONVENTIONS:
        raise InputError(f"unknown metrics convention {convention!r}; use one of {', '.join(CONVENTIONS)}")
    values = CONVENTIONS[convention][0](ir, vis, fused)
    return {name: values[name] for name in FUSION_METRICS}


def fidelity(reference: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    """How far an engine's fused frame is from the reference's (both uint8, same shape, BGR).

    PSNR over all channels (null when identical), SSIM of the luma, the largest absolute error and the
    share of values off by more than 1 and more than 8 grey levels.
    """
    diff = np.abs(reference.astype(np.int16) - candidate.astype(np.int16))
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    return {
        "psnr": None if mse == 0 else 10 * math.log10(255.0**2 / mse),
        "ssim": textbook.ssim(textbook.gray(reference), textbook.gray(candidate)),
        "max_abs": int(diff.max()),
        "off_by_more_than_1": float((diff > 1).mean()),
        "off_by_more_than_8": float((diff > 8).mean()),
    }
