"""Backend builders: one small interface, a registry keyed by backend name, imported lazily.

A builder turns a precision ONNX (FP32, mixed FP16 or Q/DQ INT8, see ``precision``) into an
engine file for its backend, and can run that engine for the quality gate.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from occo_deploy.engines.profile import Profile
from occo_deploy.errors import InputError
from occo_deploy.runtime.backend import Backend

#: Where library code sends progress messages (the CLI prints them; nothing is printed here).
Log = Callable[[str], None]
#: progress(task, done, total): the CLI draws it as a bar; the library never prints.
Progress = Callable[[str, int, int], None]


def _quiet(_message: str) -> None:
    return None


@dataclass
class BuildOptions:
    precision: str  # fp32 | fp16 | int8
    profile: Profile
    workspace_gib: float | None = None
    timing_cache: Path | None = None
    log: Log = field(default=_quiet)


class EngineBuilder(abc.ABC):
    backend: ClassVar[str]
    suffix: ClassVar[str]  # engine file suffix
    int8_scheme: str  # precision.SCHEMES key (a builder may choose it for the CPU it runs on)
    fixed_shapes: ClassVar[bool]  # engines hold a shape profile (TensorRT) or take any shape (ONNX Runtime)
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8")
    #: The profile used when the user gives no shapes (engines holding a fixed range need one).
    default_profile: ClassVar[Profile | None] = None
    #: ``occo_deploy.engines.check`` target run on the precision ONNX before building, if any.
    check_target: ClassVar[str | None] = None

    def next_step(self, onnx_name: str, profile: Profile) -> str:
        """For an ``onnx_only`` artifact: how to turn it into an engine on the machine that has the backend."""
        return f"occo-deploy build {onnx_name} --backend {self.backend}"

    @classmethod
    def target_major(cls) -> int | None:
        """The backend library's major version here, when the lint depends on it (TensorRT)."""
        return None

    @classmethod
    @abc.abstractmethod
    def unavailable(cls) -> str | None:
        """None when this builder can run here, else why not (for --backend auto and errors)."""

    @abc.abstractmethod
    def precision_input(self, precision: str, fp32: Path, fp16: Path | None, int8: Path | None) -> Path:
        """Which ONNX this backend parses for ``precision`` (TensorRT 10 FP16 parses the FP32 one)."""

    @abc.abstractmethod
    def build(self, onnx_path: Path, out: Path, options: BuildOptions) -> dict[str, Any]:
        """Write the engine to ``out``; return the backend's sidecar fields."""

    @abc.abstractmethod
    def runner(self, engine: Path, sidecar: dict[str, Any] | None) -> Backend:
        """An open backend running ``engine``, for the quality gate (the caller closes it)."""


_BUILDERS = {
    "onnxruntime": "occo_deploy.engines.onnxruntime_builder:OnnxRuntimeBuilder",
    "tensorrt": "occo_deploy.engines.tensorrt_builder:TensorRTBuilder",
    "openvino": "occo_deploy.engines.openvino_builder:OpenVinoBuilder",
}


def builder_class(backend: str) -> type[EngineBuilder]:
    target = _BUILDERS.get(backend)
    if target is None:
        raise InputError(f"unknown backend {backend!r}; use auto, {', '.join(_BUILDERS)}")
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def choose_backend(requested: str) -> tuple[str, str]:
    """(backend, why): ``auto`` takes TensorRT when it and a CUDA device are here, else ONNX Runtime."""
    if requested != "auto":
        return requested, "as asked"
    reason = builder_class("tensorrt").unavailable()
    if reason is None:
        return "tensorrt", "TensorRT and a CUDA device are present"
    # The reason's own trailing detail (the import error) would nest a third pair of brackets.
    return "onnxruntime", f"TensorRT not usable here: {reason.split(' (')[0]}"
