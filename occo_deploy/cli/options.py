"""Options more than one verb takes, declared once (as Polygraphy's argument groups are).

Each is a typed ``Annotated`` alias a verb puts in its signature with its default, e.g.
``provider: Provider = None``; the help text is the same wherever the option appears. Help that
lists backends or providers is read from the backend registry, so a new backend shows up by itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from occo_deploy import backends


def _providers_help() -> str:
    listed = "; ".join(f"{name} ({what})" for name, what in backends.providers().items())
    return f"Where the engine runs: {listed} [default: what the engine was built for, else cpu]."


def _declared(name: str, stage: Literal["run", "build", "check"]) -> dict[str, Any]:
    """Help and panel of an option only some backends take, as their modules declare it: the panel
    names them (``--help`` groups such options by backend, as Polygraphy's argument groups do)."""
    takers = backends.option_takers(name, stage)
    what = backends.declared_options(takers[0], stage)[name]
    panel = " and ".join(dict.fromkeys(s.title for s in takers)) + {"run": " engines", "build": " builds",
                                                                    "check": " checks"}[stage]
    # The help is plain text (rich_markup_mode=None), where panels do not show: the help names them too.
    return {"help": f"{panel} only: {what}.", "rich_help_panel": panel}


def _backends_help() -> str:
    listed = "; ".join(f"{s.name} ({s.title})" for s in backends.builders())
    return f"auto, or the backend to build for: {listed} [default: auto: TensorRT with a GPU, else onnxruntime]."


# -- the engine and where it runs --------------------------------------------------------------------
Engine = Annotated[Path | None, typer.Option(
    "--engine", help="Exported .onnx or built engine [default: newest in engines/, else export/occo.onnx].")]
Provider = Annotated[str | None, typer.Option("--provider", metavar="NAME", help=_providers_help())]
Backend = Annotated[str, typer.Option("--backend", metavar="NAME", help=_backends_help())]
Threads = Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads for inference [default: all].")]
#: archive and serve: ``--ray`` alone is a local Ray instance (the CLI fills in ``local``, see
#: ``archive_cmd.ray_argv``); with ADDRESS (host:port), that cluster.
Ray = Annotated[str | None, typer.Option(
    "--ray", metavar="[ADDRESS]", help="Run on Ray: alone, a local instance; with ADDRESS (host:port), that cluster.")]
Batch = Annotated[int, typer.Option("--batch", min=1, help="Frames (image pairs) per inference call.")]
InFlight = Annotated[int | None, typer.Option(
    "--in-flight", min=1, help="Batches in flight [default: 2 for TensorRT plans, else 1].")]
InferencePrecision = Annotated[str | None, typer.Option(
    "--inference-precision", metavar="f32|bf16", **_declared("inference_precision", "run"))]
CudaGraph = Annotated[bool, typer.Option("--cuda-graph", **_declared("cuda_graph", "run"))]
Workspace = Annotated[float | None, typer.Option("--workspace", metavar="GIB", min=0.0625,
                                                 **_declared("workspace", "build"))]
TimingCache = Annotated[Path | None, typer.Option("--timing-cache", metavar="FILE",
                                                  **_declared("timing_cache", "build"))]

TrtMajor = Annotated[int | None, typer.Option("--trt-major", metavar="10|11", **_declared("trt_major", "check"))]

# -- frames --------------------------------------------------------------------------------------------
IrScale = Annotated[str | None, typer.Option(
    "--ir-scale", metavar="MODE",
    help="16-bit/float infrared to 8 bits: percentile[:LO,HI] (default 1,99), minmax, fixed:MIN,MAX; "
         "uint8 passes unchanged unless named.")]
MaxSide = Annotated[int | None, typer.Option(
    "--max-side", min=16, help="Fuse frames whose longer side exceeds N at that size, then scale back up.")]

Stretch = Annotated[str | None, typer.Option(
    "--stretch", metavar="steady|frame",
    help="steady: hold the brightness range across frames, so a video does not pump (default for videos "
         "and live); frame: each frame over its own range, the reference's (default for images and folders).")]
Align = Annotated[Path | None, typer.Option(
    "--align", metavar="RIG.json",
    help="Register every pair with this rig (occo-deploy align): cameras that do not share a view.")]

# -- outputs -------------------------------------------------------------------------------------------
Codec = Annotated[str | None, typer.Option(
    "--codec", metavar="h264|ffv1|mp4v",
    help="Video output codec [default: h264 in .mp4/.mkv/.mov (plays in browsers), ffv1 (lossless) in .avi].")]
Crf = Annotated[int | None, typer.Option(
    "--crf", min=0, max=51, help="H.264 constant quality: 0 lossless .. 51 worst [default: 23].")]
Bitrate = Annotated[str | None, typer.Option(
    "--bitrate", metavar="RATE", help="H.264 target bitrate instead of a constant quality, e.g. 4M or 800k.")]
Force = Annotated[bool, typer.Option("--force", help="Replace existing outputs (never done without it).")]
Report = Annotated[Path | None, typer.Option("--report", help="Also write what the run printed as JSON here.")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet",
                                     help="One line of result, errors and notes: no progress, table or hint "
                                          "(--report keeps everything).")]
