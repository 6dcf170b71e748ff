"""``occo-deploy check``: lint an ONNX artifact against what its backend accepts, one line per finding."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from occo_deploy.cli.common import one_line_errors, out
from occo_deploy.errors import CheckFailedError
from occo_deploy.files import check_writable, write_json_atomic
from occo_deploy.workspace import DEFAULT_ONNX


@one_line_errors
def check(
    artifact: Path = typer.Argument(DEFAULT_ONNX, help="An exported .onnx, an --onnx-only ONNX or an ONNX engine."),
    target: Optional[list[str]] = typer.Option(
        None, "--target", metavar="TARGET", help="tensorrt | onnxruntime | openvino; repeatable [default: what the artifact is for, "
                               "all three for the FP32 export]."),
    trt_major: Optional[int] = typer.Option(None, "--trt-major", metavar="10|11", help="Check for TensorRT 10 or 11 only [default: both]."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write the findings as JSON here."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing report."),
) -> None:
    """Check an ONNX against the rules of TensorRT, ONNX Runtime or OpenVINO, without needing TensorRT."""
    from occo_deploy.engines.check import check_artifact

    if report is not None:
        check_writable(report, force)
    result = check_artifact(artifact, list(target) if target else None, tensorrt_major=trt_major)
    for finding in result.findings:
        out.print(finding.line(), soft_wrap=True)
    for note in result.notes:
        out.print(f"note: {note}", soft_wrap=True)
    if report is not None:
        write_json_atomic(report, {"command": "check", **result.as_dict()}, force)
    summary = f"{artifact}: {len(result.errors)} error(s), {len(result.findings) - len(result.errors)} warning(s) " \
              f"for {', '.join(result.targets)}"
    if not result.passed:
        raise CheckFailedError(summary + "; see the lines above")
    out.print(f"{summary}: passed")
