"""The bundled demo: weights and a short real infrared/visible clip pair, so a fresh machine runs.

The weights are *demo* weights, not the paper's: the reference network trained briefly on a CPU with
the paper's pixel losses only (see ``assets/demo/SOURCES.md``). Good enough to show fusion and to
give every layer realistic activation ranges; not for judging OCCO's quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ASSETS = Path(__file__).parent / "assets" / "demo"
WEIGHTS = ASSETS / "occo-demo.pth"
IR_CLIP = ASSETS / "ir.mp4"
VIS_CLIP = ASSETS / "vis.mp4"


def first_pair() -> tuple[np.ndarray, np.ndarray]:
    """(infrared gray, visible BGR) of the clips' first frames: a real 480x640 pair."""
    from occo_deploy.runtime.frames import infrared_gray
    from occo_deploy.video.streams import probe

    return infrared_gray(probe(IR_CLIP, "infrared").first_frame), probe(VIS_CLIP, "visible").first_frame


def clip_pairs(count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Up to ``count`` (infrared gray, visible BGR) pairs spread over the bundled clip: real frames
    for checks and timing when the user gives none."""
    from occo_deploy.runtime.frames import infrared_gray
    from occo_deploy.video.streams import ThreadedReader, probe

    frames: list[list[np.ndarray]] = []
    for clip, what in ((IR_CLIP, "infrared"), (VIS_CLIP, "visible")):
        with ThreadedReader(probe(clip, what), what) as reader:
            all_frames = [f.image for f in reader]
        frames.append(all_frames[:: max(1, len(all_frames) // max(count, 1))][:count])
    return [(infrared_gray(i), v) for i, v in zip(*frames)]
