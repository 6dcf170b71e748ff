"""occo-deploy: deployment engine for the OCCO infrared + visible image-fusion network.

``from occo_deploy import Fuser`` is the runtime; it never imports torch. ``occo_deploy.api`` has
``export``, ``build``, ``check`` and ``requalify`` with the CLI's arguments; every error the package
raises on purpose is an ``OccoDeployError`` subclass listed here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from occo_deploy._version import __version__
from occo_deploy.errors import (
    BuildError,
    CheckFailedError,
    CheckpointError,
    EngineError,
    ExportError,
    InputError,
    MissingDependencyError,
    OccoDeployError,
    OutputError,
    OutputExistsError,
    ShapeError,
    SourceError,
    Terminated,
)

__all__ = [
    "BuildError", "CheckFailedError", "CheckpointError", "EngineError", "ExportError", "Fuser", "InputError",
    "MissingDependencyError", "OccoDeployError", "OutputError", "OutputExistsError", "ShapeError", "SourceError",
    "Terminated",
    "__version__",
]

if TYPE_CHECKING:
    from occo_deploy.fusing.fuser import Fuser


def __getattr__(name: str) -> Any:
    # Lazy, so `import occo_deploy` stays cheap (no OpenCV/ONNX Runtime until a Fuser is made).
    if name == "Fuser":
        from occo_deploy.fusing.fuser import Fuser

        return Fuser
    raise AttributeError(f"module 'occo_deploy' has no attribute {name!r}")
