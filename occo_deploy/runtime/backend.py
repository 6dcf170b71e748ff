"""The one small interface every backend implements, and the registry that picks one.

Backends are keyed by (artifact format, provider), as Polygraphy keys its runners: ``("onnx", "cpu")``
is ONNX Runtime's CPU provider, later ``("onnx", "cuda")`` or ``("plan", "tensorrt")``. The registry
holds import paths, not classes, so choosing a backend imports only that backend's library.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from occo_deploy.contract import MIN_SIDE
from occo_deploy.errors import EngineError, ShapeError


@dataclass(frozen=True)
class ShapeRange:
    """Batch, height and width an engine accepts (inclusive); ``None`` means unbounded."""

    min_batch: int = 1
    max_batch: int | None = None
    min_side: int = MIN_SIDE
    max_height: int | None = None
    max_width: int | None = None

    def check(self, n: int, h: int, w: int) -> None:
        if h < self.min_side or w < self.min_side:
            raise ShapeError(
                f"frames of {h}x{w} are too small: OCCO needs height and width >= {self.min_side}; "
                "upscale them first"
            )
        if self.max_height is not None and h > self.max_height or self.max_width is not None and w > self.max_width:
            raise ShapeError(
                f"frames of {h}x{w} exceed this engine's maximum {self.max_height}x{self.max_width}; "
                "rebuild it with a larger --max shape or resize the frames"
            )
        if n < self.min_batch or self.max_batch is not None and n > self.max_batch:
            raise ShapeError(
                f"batch of {n} is outside this engine's range {self.min_batch}..{self.max_batch}; "
                "use a smaller --batch or rebuild with a larger --max batch"
            )


class Backend(abc.ABC):
    """Runs the fusion graph: uint8 visible N x H x W x 3 + infrared N x H x W -> fused N x H x W x 3.

    Implementations open an artifact (and its sidecar, possibly None) in ``__init__``, never print, and
    raise ``EngineError`` subclasses with a message that says what to do.
    """

    #: Short name for reports, e.g. "onnxruntime-cpu".
    name: ClassVar[str] = "backend"

    def __init__(self, artifact: Path, sidecar: dict[str, Any] | None, provider: str, threads: int | None) -> None:
        self.artifact = artifact
        self.sidecar = sidecar
        self.provider = provider
        self.threads = threads

    @property
    def shapes(self) -> ShapeRange:
        """What this backend accepts; dynamic ONNX takes anything from MIN_SIDE up."""
        return ShapeRange()

    @abc.abstractmethod
    def run(self, visible: np.ndarray, infrared: np.ndarray) -> np.ndarray:
        """Fuse one batch; inputs are C-contiguous uint8 arrays of the contract's shapes."""

    def describe(self) -> dict[str, Any]:
        """What a report says about this backend (name, provider, versions)."""
        return {"backend": self.name, "provider": self.provider, "artifact": str(self.artifact)}

    def close(self) -> None:  # noqa: B027 - optional hook, most backends free on GC
        """Release sessions and device memory."""


# (format, provider) -> "module:Class". Only imported when chosen.
_REGISTRY: dict[tuple[str, str], str] = {}
# format -> provider used when the caller names none.
_DEFAULT_PROVIDER: dict[str, str] = {}


def register_backend(fmt: str, provider: str, target: str, default: bool = False) -> None:
    """Make ``target`` ("package.module:Class") the backend for artifacts of ``fmt`` on ``provider``."""
    _REGISTRY[(fmt, provider)] = target
    if default or fmt not in _DEFAULT_PROVIDER:
        _DEFAULT_PROVIDER[fmt] = provider


def artifact_format(artifact: Path, sidecar: dict[str, Any] | None) -> str:
    """The artifact's format from its sidecar, else from its suffix."""
    if sidecar and sidecar.get("format"):
        return str(sidecar["format"])
    suffix = artifact.suffix.lower().lstrip(".")
    return {"engine": "plan", "trt": "plan"}.get(suffix, suffix)


def resolve_backend(
    artifact: Path, sidecar: dict[str, Any] | None, provider: str | None
) -> tuple[type[Backend], str]:
    """The backend class and provider for this artifact, or an error listing what exists."""
    fmt = artifact_format(artifact, sidecar)
    if provider is None:
        provider = (sidecar or {}).get("provider") or _DEFAULT_PROVIDER.get(fmt, "")
    target = _REGISTRY.get((fmt, provider))
    if target is None:
        known = ", ".join(sorted(f"{f}/{p}" for f, p in _REGISTRY)) or "none"
        raise EngineError(
            f"no backend runs '{fmt}' artifacts on provider '{provider}' (known: {known}); "
            "pass an exported .onnx or a built engine"
        )
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name), provider


def open_backend(artifact: Path, sidecar: dict[str, Any] | None, provider: str | None, threads: int | None) -> Backend:
    cls, chosen = resolve_backend(artifact, sidecar, provider)
    return cls(artifact, sidecar, chosen, threads)


register_backend("onnx", "cpu", "occo_deploy.runtime.onnxruntime_backend:OnnxRuntimeBackend", default=True)
register_backend("plan", "tensorrt", "occo_deploy.runtime.tensorrt_backend:TensorRTBackend", default=True)
