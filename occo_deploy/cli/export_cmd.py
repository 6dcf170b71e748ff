"""``occo-deploy export``: checkpoint -> ONNX (+ sidecar), verified against PyTorch."""

from __future__ import annotations

from pathlib import Path

import typer

from occo_deploy.cli.common import human_bytes, one_line_errors, out
from occo_deploy.cli.options import Force
from occo_deploy.errors import InputError
from occo_deploy.workspace import DEFAULT_ONNX


@one_line_errors
def export(
    checkpoint: Path | None = typer.Argument(None, help="OCCO checkpoint (.pth), official format or bare state dict."),
    output: Path = typer.Option(DEFAULT_ONNX, "-o", "--output", help="ONNX file to write (a .json sidecar goes beside it)."),
    force: Force = False,
    demo: bool = typer.Option(False, "--demo", help="Export the bundled demo weights (not the paper's)."),
    opset: int = typer.Option(18, "--opset", min=17, help="ONNX opset (17+ for native LayerNormalization)."),
    trust_checkpoint: bool = typer.Option(
        False, "--trust-checkpoint", help="Allow checkpoints that pickle Python objects (only from a source you trust)."),
) -> None:
    """Export a checkpoint to ONNX: uint8 frames in, fused uint8 frames out, dynamic batch and size."""
    from occo_deploy import api
    from occo_deploy import demo as demo_assets

    if demo == (checkpoint is not None):
        raise InputError("give a CHECKPOINT or --demo (one of them)")
    ckpt = checkpoint if checkpoint is not None else demo_assets.WEIGHTS
    with out.status(f"exporting {ckpt} (about a minute on a 2-core CPU)..."):
        result = api.export(checkpoint, output, force=force, demo=demo, opset=opset, trust_checkpoint=trust_checkpoint)
    ver = result.info["verification"]
    shapes = ", ".join("x".join(map(str, s)) for s in ver["inputs_nhw"])
    out.print(f"exported {ckpt} -> {result.onnx} ({human_bytes(result.onnx.stat().st_size)}, opset {opset}) "
              f"in {result.seconds:.0f} s")
    out.print(f"verified with ONNX Runtime on real frames (N x H x W: {shapes}): max difference to PyTorch "
              f"{ver['value']} grey level(s), {100 * ver['pixels_differing_fraction']:.4f}% of values differ")
    out.print(f"sidecar: {result.sidecar}")
