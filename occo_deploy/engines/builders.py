"""The builder half of a backend: the interface a backend module implements to make engines.

A builder turns a precision ONNX (FP32, mixed FP16 or Q/DQ INT8, see ``precision``) into an engine
file for its backend. Which builders exist, and which one ``--backend auto`` takes, is the
registry's business (``occo_deploy.backends``); a builder is made from its backend's spec and runs
its engines for the quality gate with that spec's runner.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from occo_deploy.engines.profile import Profile
from occo_deploy.progress import Log, quiet

if TYPE_CHECKING:
    from occo_deploy.backends.spec import BackendSpec
    from occo_deploy.runtime.backend import Backend


@dataclass
class BuildOptions:
    precision: str  # fp32 | fp16 | bf16 | int8
    profile: Profile
    workspace_gib: float | None = None
    timing_cache: Path | None = None
    log: Log = field(default=quiet)
    #: For INT8: the precision of what is not quantized, one of the builder's ``int8_rests()``.
    rest: str | None = None


class EngineBuilder(abc.ABC):
    """Builds one backend's engines. Subclasses say which precisions, suffix and INT8 scheme."""

    suffix: ClassVar[str]  # engine file suffix
    int8_scheme: str  # precision.SCHEMES key (a builder may choose it for the CPU it runs on)
    fixed_shapes: ClassVar[bool]  # engines hold a shape profile (TensorRT) or take any shape (ONNX Runtime)
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8")
    #: The profile used when the user gives no shapes (engines holding a fixed range need one).
    default_profile: ClassVar[Profile | None] = None
    #: Whether ``build --onnx-only`` applies: the backend parses an ONNX into a format of its own, so
    #: the precision ONNX it would parse can be written, linted and gated on a machine without it.
    onnx_only: ClassVar[bool] = False

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec

    @property
    def backend(self) -> str:
        return self.spec.name

    def unavailable(self) -> str | None:
        """None when this builder can run here, else why not (for ``--backend auto`` and errors)."""
        return self.spec.unavailable()

    def int8_rests(self) -> tuple[str, ...]:
        """Precisions for what an INT8 engine does not quantize, fastest first: the build tries each
        until one passes the gate (TensorRT: FP16 then FP32; OpenVINO: BF16 where the CPU has it)."""
        return ("fp32",)

    def notes(self, precision: str) -> list[str]:
        """What a user should know before building ``precision`` here (e.g. that it is not for speed)."""
        return []

    def pending_engine(self, onnx_path: Path, info: dict[str, Any]) -> tuple[Path, dict[str, Any]] | None:
        """For an ``onnx_only`` ONNX: the engine another tool will build from it (``next_step``'s line),
        and the sidecar that engine needs to run, written now; None when there is no such tool."""
        return None

    def next_step(self, onnx_name: str, profile: Profile) -> str:
        """For an ``onnx_only`` artifact: how to turn it into an engine on the machine that has the backend."""
        return f"occo-deploy build {onnx_name} --backend {self.backend}"

    def target_major(self) -> int | None:
        """The backend library's major version here, when its check rules depend on it (TensorRT)."""
        return None

    def precision_input(self, precision: str, fp32: Path, fp16: Path | None, int8: Path | None) -> Path:
        """Which ONNX this backend parses for ``precision``: the precision ONNX itself by default."""
        chosen = {"fp32": fp32, "fp16": fp16, "int8": int8}.get(precision)
        if chosen is None:
            raise ValueError(f"no {precision} ONNX was made for {self.backend}")
        return chosen

    @abc.abstractmethod
    def build(self, onnx_path: Path, out: Path, options: BuildOptions) -> dict[str, Any]:
        """Write the engine to ``out``; return the backend's sidecar fields."""

    def runner(self, engine: Path, sidecar: dict[str, Any] | None) -> Backend:
        """An open backend running ``engine``, for the quality gate (the caller closes it)."""
        return self.spec.runner(engine, sidecar, self.spec.provider, None)
