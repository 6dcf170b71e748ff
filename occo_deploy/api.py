"""``export``, ``build``, ``check`` and ``requalify`` from Python, with the CLI's arguments.

Each function takes what its verb takes, under the same names (``--calib-size`` is ``calib_size``),
and the verb is a thin layer over it: the same checks, the same errors (``OccoDeployError``
subclasses, whose messages name options as Python spells them), the same results the CLI prints.

    >>> from occo_deploy import api                                   # doctest: +SKIP
    >>> api.export(demo=True)                                         # export/occo.onnx
    >>> api.build(precision="int8", backend="openvino", calib="pairs/")
    >>> api.check("export/occo.onnx", target=["tensorrt"]).passed

Messages go to the ``occo_deploy`` logger; ``steps`` and ``progress`` take the progress the CLI draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from occo_deploy.errors import InputError, option
from occo_deploy.progress import Steps
from occo_deploy.workspace import CALIBRATION_DIR, DEFAULT_ONNX

if TYPE_CHECKING:
    from occo_deploy.engines.build import BuildResult
    from occo_deploy.engines.check import CheckReport
    from occo_deploy.engines.qualify import Requalified
    from occo_deploy.export.onnx_export import ExportResult
    from occo_deploy.progress import Progress

__all__ = ["build", "check", "export", "requalify"]

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def export(checkpoint: str | Path | None = None, output: str | Path = DEFAULT_ONNX, *, force: bool = False,
           demo: bool = False, opset: int = 18, trust_checkpoint: bool = False) -> ExportResult:
    """``occo-deploy export``: a checkpoint (or the bundled demo weights) to a verified ONNX and its
    sidecar. Needs the ``export`` extra (torch)."""
    from occo_deploy import demo as demo_assets
    from occo_deploy.export.onnx_export import export_onnx

    if demo == (checkpoint is not None):
        raise InputError(f"give a checkpoint or {option('demo', True)} (one of them)")
    chosen = demo_assets.WEIGHTS if checkpoint is None else Path(checkpoint)
    return export_onnx(chosen, Path(output), verify_with=demo_assets.first_pair(), force=force, opset=opset,
                       trusted=trust_checkpoint)


def build(onnx: str | Path = DEFAULT_ONNX, *, precision: str | None = None, backend: str = "auto",
          calib: str | Path = CALIBRATION_DIR, calib_method: str = "minmax", calib_fallback: bool = True,
          calib_size: int | None = None, calib_cache: str | Path | None = None, seed: int = 0,
          shape: str | None = None, min_shape: str | None = None, opt_shape: str | None = None,
          max_shape: str | None = None, workspace: float | None = None, timing_cache: str | Path | None = None,
          output: str | Path | None = None, force: bool = False, min_psnr: float | None = None,
          onnx_only: bool = False, steps: Steps | None = None) -> BuildResult:
    """``occo-deploy build``: an engine from the exported ONNX, kept only above its quality gate.
    ``precision`` is fp32, fp16, bf16 or int8 (None: a precision ONNX's own); ``workspace`` and
    ``timing_cache`` are TensorRT's and refused for any other backend."""
    from occo_deploy.engines.build import BuildRequest, build_engine
    from occo_deploy.interface.profile import Profile

    if precision is not None and precision not in PRECISIONS:
        raise InputError(f"{option('precision')} is one of {', '.join(PRECISIONS)} (got {precision!r})")
    request = BuildRequest(
        onnx=Path(onnx), precision=precision, backend=backend,
        profile=Profile.from_options(shape, min_shape, opt_shape, max_shape),
        output=Path(output) if output is not None else None, force=force, calib_dir=Path(calib),
        calib_method=calib_method, calib_size=calib_size,
        calib_cache=Path(calib_cache) if calib_cache is not None else None, seed=seed, min_psnr=min_psnr,
        onnx_only=onnx_only,
        backend_options={"workspace": workspace, "timing_cache": Path(timing_cache) if timing_cache else None},
        fallback_methods=BuildRequest.fallback_methods if calib_fallback else ())
    return build_engine(request, steps=steps)


def check(artifact: str | Path = DEFAULT_ONNX, *, target: Sequence[str] | None = None,
          trt_major: int | None = None) -> CheckReport:
    """``occo-deploy check``: lint an ONNX against the rules of its target backends (default: what
    its sidecar says it is for). The report's ``passed`` is the CLI's exit status 0."""
    from occo_deploy.engines.check import check_artifact

    return check_artifact(Path(artifact), list(target) if target else None, options={"trt_major": trt_major})


def requalify(engine: str | Path, *, calib: str | Path | None = None, reference: str | Path | None = None,
              progress: Progress | None = None) -> Requalified:
    """``occo-deploy check ENGINE --requalify``: the engine's quality gate again on this CPU, recorded
    in its sidecar."""
    from occo_deploy.engines.qualify import requalify as run

    return run(Path(engine), Path(calib) if calib is not None else None,
               Path(reference) if reference is not None else None, progress=progress)
