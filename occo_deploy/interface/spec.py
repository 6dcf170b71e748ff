"""What one backend declares about itself: everything the rest of the package asks of it.

mmdeploy keeps a manager class per backend and rembg a session class per model; here each backend
module (``backends/onnxruntime_cpu.py``, ``openvino.py``, ``onnxruntime_gpu.py``, ``tensorrt.py``)
ends with one ``SPEC``: what it reads, which ``--provider`` values it serves, the extra that installs
it, its builder, its runner, its memory model and its ``check`` rules. The registry
(``backends/__init__.py``) lists the modules; ``Fuser``, ``build``, ``check``, ``bench``, the memory
estimate and the CLI's help read the specs and nothing else.

A spec names its builder class and a builder is made from its spec, so both live here, with the
options a build hands a builder (``BuildOptions``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from occo_deploy.errors import install_hint
from occo_deploy.interface.checks import CheckInput, Finding
from occo_deploy.interface.profile import Profile
from occo_deploy.runtime.backend import COMMON_RUN_OPTIONS, Backend
from occo_deploy.runtime.memory import Line
from occo_deploy.sidecar import Sidecar


@dataclass
class BuildOptions:
    precision: str  # fp32 | fp16 | bf16 | int8
    profile: Profile
    #: The builder's own ``build_options`` (TensorRT's ``workspace``), as the user gave them.
    backend_options: Mapping[str, Any] = field(default_factory=dict)
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
    #: The options this builder takes beyond what every build takes, each with what it does: declared
    #: here, grouped by backend in ``build --help``, refused for any other backend.
    build_options: ClassVar[Mapping[str, str]] = {}
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

    def pending_engine(self, onnx_path: Path, info: Sidecar) -> tuple[Path, Sidecar] | None:
        """For an ``onnx_only`` ONNX: the engine another tool will build from it (``next_step``'s line),
        and the sidecar that engine needs to run, written now; None when there is no such tool."""
        return None

    def next_step(self, onnx_name: str, profile: Profile) -> str:
        """For an ``onnx_only`` artifact: how to turn it into an engine on the machine that has the backend."""
        return f"occo-deploy build {onnx_name} --backend {self.backend}"

    def check_options(self) -> dict[str, Any]:
        """The check options that fit the backend library installed here (TensorRT: its major), for
        the lint before a build; none where the rules do not depend on it."""
        return {}

    def rules_label(self) -> str:
        """Whose rules ``check_options`` selects, for messages ("TensorRT 10 and 11")."""
        return self.spec.title

    def precision_input(self, precision: str, fp32: Path, fp16: Path | None, int8: Path | None) -> Path:
        """Which ONNX this backend parses for ``precision``: the precision ONNX itself by default."""
        chosen = {"fp32": fp32, "fp16": fp16, "int8": int8}.get(precision)
        if chosen is None:
            raise ValueError(f"no {precision} ONNX was made for {self.backend}")
        return chosen

    @abc.abstractmethod
    def build(self, onnx_path: Path, out: Path, options: BuildOptions) -> Sidecar:
        """Write the engine to ``out``; return the backend's sidecar fields."""

    def runner(self, engine: Path, sidecar: Sidecar | None) -> Backend:
        """An open backend running ``engine``, for the quality gate (the caller closes it)."""
        return self.spec.runner(engine, sidecar, self.spec.provider, None)


#: A backend's rules for ``occo-deploy check --target NAME``: findings on a loaded model.
CheckRunner = Callable[[CheckInput], Iterable[Finding]]


@dataclass(frozen=True)
class BackendSpec:
    """One backend, declared once. Its name is its runner's ``name`` (the sidecar's ``backend``,
    ``build --backend`` and ``check --target``)."""

    #: The ``Backend`` subclass that opens an artifact and fuses batches.
    runner: type[Backend]
    #: The library, as messages name it: "OpenVINO".
    title: str
    #: The artifact format it runs ("onnx", "plan") and the file suffixes that mean that format.
    reads: str
    suffixes: tuple[str, ...]
    #: ``--provider`` values it serves, each with what it means; the first is the one its engines record.
    providers: Mapping[str, str]
    #: The pip extra that installs its library (None: a core dependency) and the module to look for.
    extra: str | None = None
    library: str | None = None
    #: Builds its engines from the exported ONNX (None: it runs what other backends build).
    builder: type[EngineBuilder] | None = None
    #: Peak host memory per precision, as lines over the pixel count (``runtime.memory``); None where
    #: host memory does not bound the frame size (GPU backends).
    memory: Mapping[str, tuple[Line, ...]] | None = None
    #: Its rules for ``occo-deploy check`` and the lint before a build (None: no check target), and
    #: where they come from, said in the check's report (rules encoded from documents, not the library).
    check: CheckRunner | None = None
    check_source: Callable[[], str] | None = None
    #: The options its rules take (name -> what it does): ``check`` refuses them for other targets.
    check_options: Mapping[str, str] = field(default_factory=dict)
    #: Its engines compute on the host CPU, whose class (``runtime.cpu.cpu_class``) can change INT8 and
    #: BF16 results: the gate records the class, and loading on another one says so.
    cpu: bool = False
    #: Runs its format when the user names no provider and the sidecar none either.
    default_for_format: bool = False
    #: ``build --backend auto`` tries the backends that have a rank, lowest first, and takes the
    #: first one available here.
    auto_rank: int | None = None
    #: How to make a missing artifact of this format, when exporting is not the answer.
    missing_hint: str | None = None
    #: Opens a runner that computes what a precision ONNX states, on any CPU (Q/DQ as float
    #: arithmetic): the yardstick of every quality gate. One backend offers it (ONNX Runtime).
    reference: Callable[[Path], Backend] | None = None

    @property
    def name(self) -> str:
        return self.runner.name

    @property
    def run_options(self) -> Mapping[str, str]:
        """Every option its runner takes (``Fuser``'s keywords), with what each does."""
        return {**COMMON_RUN_OPTIONS, **self.runner.run_options}

    @property
    def build_options(self) -> Mapping[str, str]:
        """The options its builder takes beyond every build's own."""
        return self.builder.build_options if self.builder is not None else {}

    @property
    def provider(self) -> str:
        """The provider its own engines record in their sidecar."""
        return next(iter(self.providers))

    def make_builder(self) -> EngineBuilder:
        """Its builder, ready to build (``ValueError`` for a backend that builds nothing)."""
        if self.builder is None:
            raise ValueError(f"backend {self.name!r} builds no engines")
        return self.builder(self)

    def unavailable(self) -> str | None:
        """None when its library imports here, else why not, with the command that installs it."""
        if self.library is None:
            return None
        import importlib.util

        try:
            found = importlib.util.find_spec(self.library) is not None
        except (ImportError, ValueError):  # a parent package missing, or a broken install
            found = False
        return None if found else library_missing(self.library, self.extra)


def library_missing(library: str, extra: str | None) -> str:
    """Why a backend's library is not here, with the command that installs it."""
    return f"{library} is not installed: {install_hint(extra or '')}"
