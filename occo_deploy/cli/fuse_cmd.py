"""``occo-deploy fuse``: image pairs, folders of pairs or videos -> fused output and a latency report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from occo_deploy.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_SOME_FAILED,
    EXIT_TERMINATED,
    engine_label,
    err,
    latency_table,
    one_line_errors,
    out,
)
from occo_deploy.cli.options import (
    Align,
    Batch,
    Bitrate,
    Codec,
    Crf,
    CudaGraph,
    Engine,
    Force,
    InferencePrecision,
    InFlight,
    IrScale,
    MaxSide,
    Provider,
    Quiet,
    Report,
    Stretch,
    Threads,
)
from occo_deploy.cli.progress import Bars
from occo_deploy.errors import InputError, install_hint
from occo_deploy.files import check_writable, write_json_atomic
from occo_deploy.urls import mask_all, mask_credentials

if TYPE_CHECKING:
    from occo_deploy.fusing.fuser import Fuser
    from occo_deploy.fusing.jobs import JobReport
    from occo_deploy.fusing.options import FrameOptions, RunOptions
    from occo_deploy.live.job import LiveOptions
    from occo_deploy.video.encode import VideoEncoding


@one_line_errors
def fuse(
    ir: str | None = typer.Argument(None, help="Infrared image, folder of images, or video; with --live a stream URL, camera:N or a file."),
    vis: str | None = typer.Argument(None, help="Visible image, folder, or video (same kind as IR); with --live likewise."),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Output image, folder or video [default: fused.png | fused/ | fused.mp4]."),
    engine: Engine = None,
    batch: Batch = 1,
    provider: Provider = None,
    in_flight: InFlight = None,
    cuda_graph: CudaGraph = False,
    inference_precision: InferencePrecision = None,
    align: Align = None,
    offset_ms: float = typer.Option(0.0, "--offset-ms", help="Known lag of the IR stream behind the visible one (ms)."),
    threads: Threads = None,
    report: Report = None,
    force: Force = False,
    demo: bool = typer.Option(False, "--demo", help="Fuse the bundled sample clips (IR and VIS not needed)."),
    quiet: Quiet = False,
    keep_going: bool = typer.Option(False, "--keep-going", help="Folders: skip a pair that cannot be fused, list it, go on (exit 8 if any)."),
    live: bool = typer.Option(False, "--live", help="Real time: IR and VIS are live sources; newest frames first, drops counted."),
    duration: float | None = typer.Option(None, "--duration", min=0.1, help="Live: stop after this many seconds [default: until Ctrl-C or a source ends]."),
    preview: str | None = typer.Option(None, "--preview", metavar="[HOST:]PORT", help="Live: serve a preview page (MJPEG and figures) here; host 127.0.0.1 unless given."),
    reconnect_timeout: float = typer.Option(10.0, "--reconnect-timeout", min=0.0, help="Live: end the run when a source stays down this long (s)."),
    tolerance_ms: float | None = typer.Option(None, "--tolerance-ms", min=0.0, help="Live: largest gap between paired arrivals [default: half the longer frame period]."),
    rtsp_transport: str = typer.Option("tcp", "--rtsp-transport", help="Live: tcp or udp for rtsp:// sources."),
    ir_scale: IrScale = None,
    ir_smooth: float | None = typer.Option(None, "--ir-smooth", help="Videos and live: smooth the infrared range over frames (0 < a <= 1, weight of the newest)."),
    max_side: MaxSide = None,
    stretch: Stretch = None,
    codec: Codec = None,
    crf: Crf = None,
    bitrate: Bitrate = None,
    swap: bool = typer.Option(False, "--swap", help="The inputs were given the wrong way round: use VIS as infrared and IR as visible."),
) -> None:
    """Fuse infrared + visible pairs: two images, two folders (pairs by file name), two videos, or two live streams."""
    from occo_deploy import demo as demo_assets
    from occo_deploy.fusing import jobs
    from occo_deploy.fusing.fuser import Fuser
    from occo_deploy.workspace import default_engine

    if demo:
        if ir is not None or vis is not None:
            raise InputError("--demo fuses the bundled clips; give either IR and VIS or --demo")
        ir, vis = str(demo_assets.IR_CLIP), str(demo_assets.VIS_CLIP)
    if ir is None or vis is None:
        from occo_deploy.video.media import split_folders

        inside = split_folders(Path(ir)) if ir is not None else None
        if inside is not None:
            raise InputError(f"give IR and VIS: {ir} holds both, so: occo-deploy fuse {inside[0]} {inside[1]}")
        raise InputError("give IR and VIS inputs (two images, two folders or two videos), or --demo")
    if swap:
        ir, vis = vis, ir
    from occo_deploy.fusing.options import FrameOptions, RunOptions
    from occo_deploy.runtime.irscale import IrScale
    from occo_deploy.video.encode import VideoEncoding

    # The options objects, built once: the same Fuser keywords for files, videos and live runs.
    run = RunOptions(provider=provider, threads=threads, batch=batch, in_flight=in_flight, cuda_graph=cuda_graph,
                     inference_precision=inference_precision)
    frames = FrameOptions(ir_scale=IrScale.parse(ir_scale, ir_smooth), max_side=max_side, align=align,
                          stretch=stretch)
    encoding = VideoEncoding(codec, crf, bitrate)
    if live:
        from occo_deploy.live.job import LiveOptions

        _live(ir, vis, engine, run, frames, LiveOptions(duration, offset_ms, tolerance_ms, reconnect_timeout,
                                                        rtsp_transport),
              output=output, preview=preview, report=report, force=force, quiet=quiet, keep_going=keep_going,
              encoding=encoding)
        return
    live_only = [name for name, value in (("--duration", duration), ("--preview", preview),
                                          ("--tolerance-ms", tolerance_ms)) if value is not None]
    if live_only:
        raise InputError(f"{live_only[0]} is for --live; add --live to fuse the inputs as live streams")
    kind = jobs.input_kind(Path(ir), Path(vis))
    if keep_going and kind != "folder":
        raise InputError("--keep-going is for folders of pairs; one pair or one video either fuses or fails")
    video_only = [name for name, value in (("--codec", codec), ("--crf", crf), ("--bitrate", bitrate))
                  if value is not None]
    if video_only and kind != "video":
        raise InputError(f"{video_only[0]} is for video outputs; {kind} pairs are written as images")
    if stretch == "steady" and kind == "image":
        raise InputError("--stretch steady holds the range across frames; one image pair has one frame: drop it")
    output = output or jobs.default_output(kind)
    if report is not None:
        check_writable(report, force)
    with Fuser(engine or default_engine(), **run.kwargs(), **frames.kwargs()) as fuser:
        result = _run_job(fuser, kind, Path(ir), Path(vis), output, batch=batch, force=force, quiet=quiet,
                          offset_ms=offset_ms, keep_going=keep_going, encoding=encoding)
    from occo_deploy.cli import logs

    logs.say_unsaid(result.notices)
    for failure in result.failures:
        err.print(f"failed: {failure['name']}: {failure['error']}", soft_wrap=True)
    _summary(result, quiet)
    if report is not None:
        write_json_atomic(report, {"command": "fuse", "ir": str(ir), "vis": str(vis), **result.as_dict()}, force)
        out.print(f"report: {report}")
    if result.failures:
        out.print(f"{len(result.failures)} pair(s) failed and were skipped")
        raise typer.Exit(EXIT_SOME_FAILED)


def _run_job(fuser: Fuser, kind: str, ir: Path, vis: Path, output: Path, *, batch: int, force: bool, quiet: bool,
             offset_ms: float, keep_going: bool, encoding: VideoEncoding) -> JobReport:
    """The file job for ``kind`` (image, folder or video), with a progress bar for the long ones."""
    from occo_deploy.fusing import jobs

    if kind == "image":
        return jobs.fuse_image(fuser, ir, vis, output, force=force)
    with Bars(quiet) as bars:
        progress = bars.step(f"fusing {'video' if kind == 'video' else 'pairs'}")
        if kind == "video":
            return jobs.fuse_video(fuser, ir, vis, output, batch=batch, force=force, progress=progress,
                                   offset_ms=offset_ms, encoding=encoding)
        return jobs.fuse_folder(fuser, ir, vis, output, batch=batch, force=force, progress=progress,
                                keep_going=keep_going)


def _live(ir: str, vis: str, engine: Path | None, run: RunOptions, frames: FrameOptions, options: LiveOptions, *,
          output: Path | None, preview: str | None, report: Path | None, force: bool, quiet: bool,
          keep_going: bool, encoding: VideoEncoding) -> None:
    """``fuse --live``: the live figures on one line while it runs, the summary after."""
    from rich.live import Live
    from rich.text import Text

    from occo_deploy.fusing.fuser import Fuser
    from occo_deploy.live.job import LiveRunError, run_live
    from occo_deploy.live.preview import PreviewServer, parse_address
    from occo_deploy.video.encode import VideoEncoding
    from occo_deploy.workspace import default_engine

    # A live run fuses the newest pair as soon as it is paired: one frame a call, one in flight. Every
    # other option of fuse is honoured (the engine's, the frames', --offset-ms, --report, -q...).
    files_only = [name for name, given in (("--batch", run.batch != 1), ("--in-flight", run.in_flight is not None),
                                           ("--keep-going", keep_going)) if given]
    if files_only:
        raise InputError(f"{files_only[0]} is for files and folders; a live run fuses the newest pair at once, "
                         "one at a time: drop it")
    if output is None and encoding != VideoEncoding():
        raise InputError("--codec, --crf and --bitrate are for the recording; add -o FILE.mp4 to record the run")
    for path in (output, report):
        if path is not None:
            check_writable(path, force)
    server = PreviewServer(*parse_address(preview)) if preview else None
    line = Live(Text("connecting..."), console=err, transient=True, auto_refresh=False) if not quiet else None
    try:
        with Fuser(engine or default_engine(), **run.replace(batch=None).kwargs(), **frames.kwargs()) as fuser:
            if server is not None:
                server.start()
                err.print(f"preview: {server.url}", soft_wrap=True)
                if server.exposed:
                    err.print("note: the preview is reachable from other machines, with no password (camera "
                              "passwords are masked in it); bind it to 127.0.0.1 to keep it on this one",
                              soft_wrap=True)
            if line is not None:
                line.start()
            try:
                result = run_live(fuser, ir, vis, output, options=options, preview=server, force=force, encoding=encoding,
                                  on_figures=(lambda f: line.update(Text(live_line(f, err.width)), refresh=True))
                                  if line else None)
            except LiveRunError as failed:  # the report is written however the run ends
                if report is not None:
                    _live_report(report, ir, vis, failed.report, force)
                raise
    finally:
        if line is not None:
            line.stop()
        if server is not None:
            server.close()
    from occo_deploy.cli import logs

    logs.say_unsaid(result.notices)
    _live_summary(result, output, quiet)
    if report is not None:
        _live_report(report, ir, vis, result, force)
        out.print(f"report: {report}")
    code = 0
    if output is not None and result.frames_written == 0 and result.ended_by in ("Ctrl-C", "SIGTERM"):
        # Stopped before the first fused frame: nothing to keep; the exit says it was interrupted.
        code = EXIT_INTERRUPTED if result.ended_by == "Ctrl-C" else EXIT_TERMINATED
    if result.fuse_in_flight:
        # Ctrl-C came during a fuse that may take seconds more: everything is written and renamed, so
        # end now; tearing the interpreter down under the running inference aborts the process.
        import os
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if code:
        raise typer.Exit(code)


def _live_report(path: Path, ir: str, vis: str, result: Any, force: bool) -> None:
    write_json_atomic(path, mask_all({"command": "fuse --live", "ir": ir, "vis": vis, **result.as_dict()}), force)


def _live_summary(result: Any, output: Path | None, quiet: bool) -> None:
    f = result.figures
    latency = f["latency_ms"]
    out.print(f"live: {f['fused']} fused in {f['elapsed_s']:.1f} s ({f['fps_out_overall']:.2f} fps), ended by "
              f"{result.ended_by}", soft_wrap=True)
    if quiet:
        return
    out.print(f"in {f['fps_in']['visible']:.1f} visible / {f['fps_in']['infrared']:.1f} infrared fps; dropped "
              f"{f['dropped']}, unpaired {f['unpaired']}; reconnects {f['sources']['visible']['reconnects']} visible, "
              f"{f['sources']['infrared']['reconnects']} infrared", soft_wrap=True)
    if latency.get("count"):
        out.print(f"capture-to-output latency: p50 {latency['p50_ms']:.0f} ms, p90 {latency['p90_ms']:.0f} ms, "
                  f"p99 {latency['p99_ms']:.0f} ms, max {latency['max_ms']:.0f} ms")
    if output is not None:
        out.print(f"-> {output} ({result.frames_written} frames at the visible rate)")
    out.print(latency_table(result.latency))


def live_line(f: dict[str, Any], width: int = 80) -> str:
    """The running figures in under 80 columns; a line per source that is not live, with why, cut at
    the terminal's ``width``."""
    lat = f["latency_ms"]
    p = f"lat p50 {lat['p50_ms']:.0f} p99 {lat['p99_ms']:.0f} ms" if lat.get("count") else "lat -"
    line = (f"{f['elapsed_s']:5.0f}s in {f['fps_in']['visible']:4.1f}/{f['fps_in']['infrared']:4.1f} "
            f"out {f['fps_out']:4.1f} fps drop {f['dropped']} {p}")
    for what, source in f.get("sources", {}).items():
        if source.get("state") not in ("live", "ended", "closed", None):
            line += f"\n{what}: {mask_credentials(str(source.get('status', source['state'])))}"[:width]
    return line


def _summary(result: JobReport, quiet: bool) -> None:
    """What the job did in one line; unless ``quiet``, pairing, engine, latency table and hints too
    (a ``--report`` has all of it either way)."""
    p = result.pairing
    out.print(f"fused {result.frames} frame(s) in {result.wall_s:.2f} s ({result.fps:.2f} fps) -> {result.output}")
    if quiet:
        return
    if result.kind != "image":
        out.print(f"unpaired: {p.get('vis_unpaired', 0)} visible, {p.get('ir_unpaired', 0)} infrared"
                  + (f"; {p['ir_reused']} infrared frames reused" if p.get("ir_reused") else "")
                  + (f" (paired by {p['mode']})" if "mode" in p else ""))
    e = result.engine
    out.print(f"engine: {engine_label(e)}", soft_wrap=True)
    out.print(latency_table(result.latency))
    for hint in (_compiles(e), _faster(e)):
        if hint:
            out.print(hint, soft_wrap=True)


def _compiles(engine: dict[str, Any]) -> str | None:
    """Why a folder of many frame sizes ran slowly on OpenVINO, and what the next run costs."""
    compiled = engine.get("sizes_compiled") or []
    loaded = engine.get("sizes_loaded_from_cache") or []
    if len(compiled) + len(loaded) < 2:  # one size (a video, a fixed camera): one compile, nothing to say
        return None
    done = [f"compiled {len(compiled)} frame size(s), seconds each"] if compiled else []
    done += [f"loaded {len(loaded)} from its cache, about 1 s each"] if loaded else []
    kept = f"; kept in {engine['compile_cache']} for the next run" if compiled and engine.get("compile_cache") else ""
    return (f"openvino {' and '.join(done)}{kept}. For folders of many sizes, the ONNX Runtime INT8 engine "
            "(occo-deploy build --int8) has no per-size step.")


def _faster(engine: dict[str, Any]) -> str | None:
    """After a run on the FP32 export on the CPU: the command to the fastest CPU engine."""
    if engine.get("precision") != "fp32" or engine.get("provider") != "cpu":
        return None
    from occo_deploy import backends

    missing = backends.get("openvino").unavailable()
    extra = f"; it needs the openvino extra: {install_hint('openvino')}" if missing else ""
    return ("faster on this CPU: occo-deploy build --backend openvino --int8 --calib PAIRS (PAIRS: a folder "
            f"with ir/ and vi/ of your pairs){extra}")
