"""``occo-deploy check``: lint an ONNX artifact against what its backend accepts, one line per finding."""

from __future__ import annotations

from pathlib import Path

import typer

from occo_deploy.cli.common import one_line_errors, out
from occo_deploy.cli.options import Force, Report
from occo_deploy.errors import CheckFailedError
from occo_deploy.files import check_writable, write_json_atomic
from occo_deploy.workspace import DEFAULT_ONNX


def _targets() -> list[str]:
    from occo_deploy.engines.check import targets

    return targets()


@one_line_errors
def check(
    artifact: Path = typer.Argument(DEFAULT_ONNX, help="An exported .onnx, an --onnx-only ONNX or an ONNX engine."),
    target: list[str] | None = typer.Option(
        None, "--target", metavar="TARGET", help=f"{' | '.join(_targets())}; repeatable [default: what the artifact is "
                                                 "for, every target for the FP32 export]."),
    trt_major: int | None = typer.Option(None, "--trt-major", metavar="10|11", help="Check for TensorRT 10 or 11 only [default: both]."),
    report: Report = None,
    force: Force = False,
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
    summary = f"{artifact}: {len(result.errors)} error(s), {len(result.warnings)} warning(s) " \
              f"for {', '.join(result.targets)}"
    if not result.passed:
        raise CheckFailedError(summary + "; see the lines above")
    out.print(f"{summary}: passed")
