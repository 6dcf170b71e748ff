"""What one backend declares about itself: everything the rest of the package asks of it.

mmdeploy keeps a manager class per backend and rembg a session class per model; here each backend
module (``backends/onnxruntime_cpu.py``, ``openvino.py``, ``onnxruntime_gpu.py``, ``tensorrt.py``)
ends with one ``SPEC``: what it reads, which ``--provider`` values it serves, the extra that installs
it, its builder, its runner, its memory model and its ``check`` rules. The registry
(``backends/__init__.py``) lists the modules; ``Fuser``, ``build``, ``check``, ``bench``, the memory
estimate and the CLI's help read the specs and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from occo_deploy.errors import install_hint

if TYPE_CHECKING:
    from occo_deploy.engines.builders import EngineBuilder
    from occo_deploy.engines.check import CheckInput, Finding
    from occo_deploy.runtime.backend import Backend
    from occo_deploy.runtime.memory import Line

#: A backend's rules for ``occo-deploy check --target NAME``: findings on a loaded model.
CheckRunner = Callable[["CheckInput"], Iterable["Finding"]]


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

    @property
    def name(self) -> str:
        return self.runner.name

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
        if found:
            return None
        return f"{self.library} is not installed: {install_hint(self.extra or '')}"
