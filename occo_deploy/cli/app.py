"""The ``occo-deploy`` command: one module per verb, registered here."""

from __future__ import annotations

import os

# OpenCV and its FFmpeg print decoder complaints to stderr; the CLI reports each problem itself in
# one line. Set before OpenCV is imported; users can still ask for them by setting the variables.
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import typer

from occo_deploy._version import __version__

app = typer.Typer(
    name="occo-deploy",
    help="Deploy OCCO infrared + visible fusion: export a checkpoint to ONNX, fuse images and videos.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts hold literal [brackets]
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"occo-deploy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    log_format: str = typer.Option("text", "--log-format", metavar="text|json",
                                   help="Events (a camera down and why, back up, a slow run) as lines on stderr, "
                                        "or one JSON object per line for a log collector."),
) -> None:
    """Checkpoint -> export/occo.onnx -> fused frames, on ONNX Runtime (CPU) by default."""
    from occo_deploy.cli import logs

    if log_format not in logs.FORMATS:
        raise typer.BadParameter(f"use {' or '.join(logs.FORMATS)}", param_hint="--log-format")
    logs.configure(log_format)


def _register() -> None:
    from occo_deploy.cli import (
        align_cmd,
        archive_cmd,
        bench_cmd,
        build_cmd,
        check_cmd,
        eval_cmd,
        export_cmd,
        fuse_cmd,
        serve_cmd,
    )

    app.command("export")(export_cmd.export)
    app.command("build")(build_cmd.build)
    app.command("check")(check_cmd.check)
    app.command("align")(align_cmd.align)
    app.command("fuse")(fuse_cmd.fuse)
    app.command("archive")(archive_cmd.archive)
    app.command("bench")(bench_cmd.bench)
    app.command("eval")(eval_cmd.evaluate)
    app.command("serve")(serve_cmd.serve)


_register()


def main() -> None:
    import sys

    from occo_deploy.cli.archive_cmd import ray_argv
    from occo_deploy.cli.common import EXIT_INTERRUPTED, EXIT_TERMINATED, handle_sigterm

    handle_sigterm()
    try:
        app(args=ray_argv(sys.argv[1:]), prog_name="occo-deploy")
    except SystemExit as done:
        if done.code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
            # Outputs are already cleaned up (removed, or renamed whole). Threads still inside a native
            # library (a decoder in OpenCV, an inference in ONNX Runtime) would be torn down by the
            # interpreter's shutdown, which aborts the process in libraries that catch every C++
            # exception ("FATAL: exception not rethrown", seen once under load); end here instead.
            import os

            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(int(done.code))
        raise


if __name__ == "__main__":
    main()
