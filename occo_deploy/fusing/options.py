"""The options a fusing verb takes, one object per concern, each field a ``Fuser`` keyword.

A verb builds them once from its command line (``fuse``, ``fuse --live``, ``archive``, ``bench``,
``eval``) and hands them on whole (``Fuser(engine, **run.kwargs(), **frames.kwargs())``), so the CLI
and the Python API take the same arguments under the same names, and a job that runs elsewhere
(an archive's Ray actors) gets exactly what the verb was given. What only some backends take
(``inference_precision``, ``cuda_graph``) is refused by the registry when the engine is opened.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from occo_deploy.registration.rig import Rig
    from occo_deploy.runtime.irscale import IrScale


@dataclass(frozen=True)
class RunOptions:
    """Where and how the engine runs: ``--provider``, ``--threads``, ``--batch``, ``--in-flight``,
    ``--cuda-graph``, ``--inference-precision``."""

    provider: str | None = None
    threads: int | None = None
    #: Frames per inference call (sizes staging buffers); None: whatever the first batch is.
    batch: int | None = None
    in_flight: int | None = None
    cuda_graph: bool = False
    inference_precision: str | None = None
    provider_options: Mapping[str, str] | None = None

    def kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> RunOptions:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class FrameOptions:
    """What happens to each pair before and after the engine: ``--ir-scale`` (and ``--ir-smooth``),
    ``--max-side``, ``--align``, ``--stretch``."""

    ir_scale: IrScale | str | None = None
    max_side: int | None = None
    align: Rig | str | Path | None = None
    #: "steady" or "frame"; None: steady for videos and live runs, per frame for images and folders.
    stretch: str | None = None

    def kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
