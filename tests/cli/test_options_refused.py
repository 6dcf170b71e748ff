"""Every option is honoured or refused with one line naming the backends that take it, never dropped:
from the CLI (exit 2, nothing written) and from Python (``InputError``) alike."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from occo_deploy import Fuser, api
from occo_deploy.backends.onnxruntime_cpu import OnnxRuntimeBackend
from occo_deploy.errors import InputError
from occo_deploy.fusing import fuser as fuser_module
from tests.conftest import PAIRS, run_cli
from tests.support import one_line_error

ASSETS = Path(fuser_module.__file__).resolve().parents[1] / "assets" / "demo"


def _refused(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Refused as bad input: one ``error:`` line naming every needle, exit 2 (``InputError``)."""
    one_line_error(result, *needles)
    assert result.returncode == 2, (result.stdout, result.stderr)


def test_inference_precision_on_an_onnxruntime_engine_is_refused(workspace: Path) -> None:
    # It ran FP32 and said nothing: now one line naming the backend that takes it.
    _refused(run_cli("fuse", "--demo", "--inference-precision", "bf16", cwd=workspace),
             "--inference-precision does not apply", "runs on onnxruntime", "only openvino engines take it")
    assert not (workspace / "fused.mp4").exists()


def test_python_callers_get_the_same_refusal_in_their_own_words(exported: Path) -> None:
    with pytest.raises(InputError, match=r"^inference_precision does not apply: .* only openvino engines"):
        Fuser(exported, inference_precision="bf16")
    with pytest.raises(InputError, match=r"^cuda_graph does not apply: .* only onnxruntime-gpu, tensorrt engines"):
        Fuser(exported, cuda_graph=True)  # not ignored quietly on the CPU


def test_a_runner_refuses_what_it_does_not_declare(exported: Path) -> None:
    # Anything past the registry (a script opening a runner itself) is refused as well.
    with pytest.raises(InputError, match="onnxruntime engines do not take cuda_graph"):
        OnnxRuntimeBackend(exported, None, "cpu", None, {"cuda_graph": True})
    with pytest.raises(InputError, match="do not take prefer_nhwc"):
        OnnxRuntimeBackend(exported, None, "cpu", None, {"prefer_nhwc": "1"})


def test_tensorrt_build_options_on_another_backend_are_refused(workspace: Path) -> None:
    _refused(run_cli("build", "--fp32", "--backend", "onnxruntime", "--workspace", "4", cwd=workspace),
             "--workspace does not apply to a onnxruntime build", "only tensorrt builds take it",
             "--backend tensorrt")
    _refused(run_cli("build", "--fp32", "--backend", "onnxruntime", "--timing-cache", "t.cache", cwd=workspace),
             "--timing-cache does not apply", "only tensorrt builds")
    assert not (workspace / "engines").exists() and not (workspace / "t.cache").exists()


def test_a_check_option_for_another_target_is_refused(exported: Path, workspace: Path) -> None:
    _refused(run_cli("check", "--target", "onnxruntime", "--trt-major", "10", cwd=workspace),
             "--trt-major does not apply: this check is for onnxruntime", "only tensorrt checks take it",
             "--target tensorrt")
    assert api.check(exported, target=["tensorrt"], trt_major=10).targets == ["tensorrt"]  # honoured there


@pytest.mark.parametrize("flags", [("--batch", "4"), ("--in-flight", "2"), ("--keep-going",)])
def test_live_refuses_what_only_files_take(workspace: Path, flags: tuple[str, ...]) -> None:
    ir, vis = str(ASSETS / "ir.mp4"), str(ASSETS / "vis.mp4")
    _refused(run_cli("fuse", ir, vis, "--live", *flags, "-o", "live.mp4", cwd=workspace),
             f"{flags[0]} is for files and folders", "drop it")
    assert not (workspace / "live.mp4").exists()


def test_help_names_the_backends_that_take_an_option(workspace: Path) -> None:
    build = run_cli("build", "--help", cwd=workspace).stdout
    assert "TensorRT builds only: the workspace limit" in " ".join(build.split())
    fuse = " ".join(run_cli("fuse", "--help", cwd=workspace).stdout.split())
    assert "OpenVINO engines only: compute what is not INT8" in fuse
    assert "ONNX Runtime GPU and TensorRT engines only: replay the engine as a CUDA graph" in fuse


def test_video_options_are_for_video_outputs(workspace: Path) -> None:
    ir, vis = str(PAIRS / "TNO" / "ir" / "07.png"), str(PAIRS / "TNO" / "vi" / "07.png")
    _refused(run_cli("fuse", ir, vis, "--crf", "0", cwd=workspace), "--crf is for video outputs")  # 0: lossless
    assert not (workspace / "fused.png").exists()
    _refused(run_cli("fuse", str(ASSETS / "ir.mp4"), str(ASSETS / "vis.mp4"), "--live", "--codec", "ffv1",
                     cwd=workspace), "are for the recording; add -o FILE.mp4")
