"""``occo-deploy align``: register a fixed thermal + visible rig once; ``--align rig.json`` applies it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from occo_deploy.cli.common import one_line_errors, out, write_png
from occo_deploy.cli.options import Force
from occo_deploy.errors import InputError
from occo_deploy.files import check_writable, write_json_atomic


def _pair(value: str | None, what: str) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        a, b = (float(v) for v in value.split(","))
    except ValueError:
        raise InputError(f"{what} takes two numbers separated by a comma (got {value!r})") from None
    return a, b


def _frame(path: Path, what: str, index: int) -> np.ndarray:
    """An image, or frame ``index`` of a video."""
    from occo_deploy.video.media import is_video, read_image
    from occo_deploy.video.streams import read_frame

    return read_frame(path, index, what) if is_video(path) else read_image(path, what)


@one_line_errors
def align(
    ir: Path = typer.Argument(..., help="Infrared frame of the rig: an image, or a video (--frame picks one)."),
    vis: Path = typer.Argument(..., help="Visible frame taken at the same time: an image or a video."),
    output: Path = typer.Option(Path("rig.json"), "-o", "--output", help="The rig file fuse, archive and Fuser read with --align."),
    points: Path | None = typer.Option(None, "--points", help="CSV of control points: header ir_x,ir_y,vis_x,vis_y, one pair a line in each image's pixels, at least 4."),
    fov: str | None = typer.Option(None, "--fov", metavar="IR,VIS", help="Horizontal fields of view in degrees (the cameras' data sheets): the starting guess, or the fit itself with --no-refine."),
    offset: str = typer.Option("0,0", "--offset", metavar="DX,DY", help="With --fov: the infrared centre's offset from the visible one, in visible pixels."),
    refine: bool = typer.Option(True, "--refine/--no-refine", help="Refine the guess automatically from the frames' edges (refused when unconvincing)."),
    model: str = typer.Option("similarity", "--model", help="scale | similarity | affine | homography."),
    size: str | None = typer.Option(None, "--size", metavar="WxH", help="Output size the engine sees [default: the region both cameras see, at visible resolution]."),
    overlay: Path | None = typer.Option(None, "--overlay", help="PNG to check the fit by eye: a checkerboard of both, infrared edges in red [default: beside -o]."),
    frame: int = typer.Option(0, "--frame", min=0, help="Videos: the frame index to align on."),
    min_confidence: float = typer.Option(0.4, "--min-confidence", help="Automatic: the edge correlation below which a fit is refused."),
    force: Force = False,
) -> None:
    """Register a thermal + visible camera pair that do not share a view: writes rig.json for --align."""
    from occo_deploy.registration.align import AlignRequest
    from occo_deploy.registration.align import align as estimate_rig
    from occo_deploy.registration.align import overlay as draw_overlay

    picture = overlay or output.with_suffix(".png")
    for path in (output, picture):
        check_writable(path, force)
    wh = None
    if size is not None:
        try:
            w, h = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise InputError(f"--size takes WxH, e.g. 640x512 (got {size!r})") from None
        if w < 16 or h < 16:
            raise InputError("--size must be at least 16x16")
        wh = (w, h)
    ir_img, vis_img = _frame(ir, "infrared", frame), _frame(vis, "visible", frame)
    rig = estimate_rig(AlignRequest(ir_img, vis_img, model=model, points=points,
                                    fov=_pair(fov, "--fov"), offset=_pair(offset, "--offset") or (0.0, 0.0),
                                    automatic=refine, output_size=wh, min_confidence=min_confidence))
    write_json_atomic(output, rig.as_dict(), force)
    write_png(picture, draw_overlay(rig, ir_img, vis_img), force)
    q = rig.quality
    if "residual_rms_px" in q:
        fit = (f"residual {q['residual_rms_px']:.2f} px rms, {q['residual_max_px']:.2f} px max over "
               f"{q['inliers']} of {q['points']} point pairs")
        if q.get("outliers"):
            fit += f" (set aside as outliers: line(s) {q['outliers']} of {points})"
    elif "confidence" in q:
        fit = f"edge correlation {q['confidence']:.2f} (refused below {min_confidence:g})"
    else:
        fit = "from the fields of view alone (not checked against the frames)"
    r = rig.region
    out.print(f"{rig.model} from {rig.method}: {fit}", soft_wrap=True)
    out.print(f"both cameras see visible x {r.x}..{r.x + r.w}, y {r.y}..{r.y + r.h}; the engine gets "
              f"{rig.output_size[0]}x{rig.output_size[1]}", soft_wrap=True)
    out.print(f"wrote {output} and {picture} (check it: lines should continue across the tiles)", soft_wrap=True)
    out.print(f"next: occo-deploy fuse IR VIS --align {output}", soft_wrap=True)
