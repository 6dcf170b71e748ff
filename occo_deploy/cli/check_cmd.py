"""``occo-deploy check``: lint an ONNX artifact against what its backend accepts, one line per finding."""

from __future__ import annotations

from pathlib import Path

import typer

from occo_deploy.cli.common import one_line_errors, out
from occo_deploy.cli.options import Force, Report, TrtMajor
from occo_deploy.errors import CheckFailedError, InputError
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
    trt_major: TrtMajor = None,
    requalify: bool = typer.Option(False, "--requalify", help="Run an engine's quality gate again on this machine (its CPU class) and record it in the sidecar."),
    calib: Path | None = typer.Option(None, "--calib", help="--requalify: the folder of pairs the engine was gated on [default: the one its sidecar names]."),
    reference: Path | None = typer.Option(None, "--reference", help="--requalify: the FP32 export it was built from [default: the one its sidecar names]."),
    report: Report = None,
    force: Force = False,
) -> None:
    """Check an ONNX against the rules of TensorRT, ONNX Runtime or OpenVINO, without needing TensorRT;
    or, with --requalify, run an engine's quality gate again on this CPU."""
    from occo_deploy import api

    if report is not None:
        check_writable(report, force)
    if requalify:
        _requalify(artifact, calib, reference, report, force)
        return
    if calib is not None or reference is not None:
        raise InputError("--calib and --reference are for --requalify")
    result = api.check(artifact, target=target, trt_major=trt_major)
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


def _requalify(engine: Path, calib: Path | None, reference: Path | None, report: Path | None, force: bool) -> None:
    from occo_deploy import api
    from occo_deploy.cli.progress import Bars
    from occo_deploy.runtime.cpu import cpu_description, describe_class

    out.print(f"this CPU: {cpu_description()}", soft_wrap=True)
    with Bars() as bars:
        result = api.requalify(engine, calib=calib, reference=reference, progress=bars.step("quality gate"))
    out.print(result.gate.describe(), soft_wrap=True)
    if report is not None:
        write_json_atomic(report, {"command": "check --requalify", "engine": str(engine),
                                   "gate": result.gate.as_dict()}, force)
    classes = ", ".join(describe_class(c) for c in result.passed_on) or "none"
    if not result.gate.passed:
        raise CheckFailedError(f"{engine} is below its quality gate on this CPU (recorded in its sidecar); "
                               f"rebuild it here with occo-deploy build (passed on: {classes})")
    out.print(f"{engine}: passed on this CPU, recorded in its sidecar (passed on: {classes})", soft_wrap=True)
