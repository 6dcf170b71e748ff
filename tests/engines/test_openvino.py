"""OpenVINO engines: built, gated and run for real (the `openvino` extra; CI installs it with `dev`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from occo_deploy import Fuser
from occo_deploy.engines.build import BuildResult, build_engine
from occo_deploy.errors import BuildError, InputError
from occo_deploy.interface.profile import Profile
from tests.conftest import ROOT, request, run_cli, sequence_frames
from tests.support import logged

ov = pytest.importorskip("openvino")
SMALL = Profile.from_options(min_="1x16x16", opt="1x96x128", max_="8x4096x4096")


def _pairs(size_wh: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(zip(sequence_frames("ir", size_wh), sequence_frames("vi", size_wh)))[:3]


def _worst_psnr(engine: Path, reference: Path, pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    from occo_deploy.engines.gate import psnr

    with Fuser(engine) as got, Fuser(reference) as want:
        return min(psnr(got.fuse(ir, vis), want.fuse(ir, vis)) for ir, vis in pairs)


@pytest.mark.shared
def test_fp32_engine_matches_onnxruntime_at_two_sizes(exported: Path, tmp_path: Path) -> None:
    # Gated at 96x128 (a thumbnail: ONNX Runtime) and an enlarged 192x256: not the sizes fused below.
    result = build_engine(request(exported, tmp_path, precision="fp32", backend="openvino", profile=SMALL,
                                  output=tmp_path / "occo_fp32_openvino.onnx"))
    assert result.info["provider"] == "openvino" and result.info["inference_precision"] == "f32"
    assert result.gate.passed and result.gate.psnr_min > 50
    with Fuser(result.engine) as fuser, Fuser(exported) as cpu:
        assert fuser.info()["backend"] == "openvino"
        for size in ((160, 120), (96, 64)):  # a static model for 160x120; the thumbnail runs on ONNX Runtime
            for ir, vis in _pairs(size):
                diff = np.abs(fuser.fuse(ir, vis).astype(int) - cpu.fuse(ir, vis).astype(int))
                assert diff.max() <= 1
        first = fuser.info()
    # 96x64 is a thumbnail: ONNX Runtime ran it, nothing was compiled for it.
    assert first["tiny_frame_runs_on_onnxruntime"] == 3
    # Compiled sizes are cached beside the engine: a new Fuser (a second run, another process)
    # loads them instead of compiling again, and gives the same frames.
    cache = tmp_path / ".openvino_cache"
    assert first["compile_cache"] == str(cache) and first["sizes_compiled"] == ["1x120x160"]
    assert any(cache.iterdir())
    ir, vis = _pairs((160, 120))[0]
    with Fuser(result.engine) as again, Fuser(exported) as cpu:
        assert np.abs(again.fuse(ir, vis).astype(int) - cpu.fuse(ir, vis).astype(int)).max() <= 1
        assert again.info()["sizes_loaded_from_cache"] == ["1x120x160"] and again.info()["sizes_compiled"] == []
    # A folder of two sizes through the CLI: one loaded from the cache, one compiled, and the report
    # says so (a slow first run over many sizes is otherwise a mystery).
    for sub in ("ir", "vi"):
        (tmp_path / "two" / sub).mkdir(parents=True)
    for k, size in enumerate(((160, 120), (192, 144))):
        ir, vis = _pairs(size)[0]
        cv2.imwrite(str(tmp_path / "two" / "ir" / f"{k}.png"), ir)
        cv2.imwrite(str(tmp_path / "two" / "vi" / f"{k}.png"), vis)
    done = run_cli("fuse", "two/ir", "two/vi", "--engine", str(result.engine), "-o", "fused", cwd=tmp_path,
                   env_extra={"COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "openvino compiled 1 frame size(s), seconds each and loaded 1 from its cache" in text
    assert f"kept in {cache} for the next run" in text


@pytest.mark.slow
@pytest.mark.shared
def test_int8_engine_passes_its_gate_with_static_shapes(
    exported: Path, tmp_path: Path, int8_build: tuple[BuildResult, list[str]]
) -> None:
    # The ranges ONNX Runtime's INT8 build measured are reused by default (one cache per method and
    # range kind beside the engines: same ONNX, set, method, symmetry).
    cache = Path(int8_build[0].info["calibration"]["cache"])
    assert cache.name == "calib_minmax_asymmetric.json"
    with logged() as log:
        result = build_engine(request(exported, tmp_path, backend="openvino",
                                      output=cache.parent / "occo_int8_openvino.onnx"))
    assert any(f"reusing cached calibration ranges from {cache}" in m for m in log)
    assert result.gate.passed and result.gate.psnr_min >= 35  # 8 dB if OpenVINO compiled it with dynamic shapes
    assert _worst_psnr(result.engine, exported, _pairs((160, 120))) >= 35
    assert _worst_psnr(result.engine, exported, _pairs((40, 30))) >= 35  # a thumbnail, on ONNX Runtime
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["precision"] == "int8" and sidecar["calibration"]["scheme"] == "u8s8_fused"
    from occo_deploy.backends.openvino import OpenVinoBackend, cpu_has_bf16

    # What is not INT8 runs in BF16 where the CPU has it; a CPU without it runs it in FP32.
    has_bf16 = cpu_has_bf16(ov.Core())
    assert sidecar["inference_precision"] == ("bf16" if has_bf16 else "f32")
    backend = OpenVinoBackend(result.engine, sidecar, "openvino", 1)
    assert backend.inference_precision == sidecar["inference_precision"]
    backend.close()
    # The steady stretch runs on it too (the steering passes through quantization): a held stream of
    # the real sequence stays as close to the FP32 export's held stream as single frames do.
    from occo_deploy.engines.gate import psnr

    frames = [(k, ir, vis) for k, (ir, vis) in
              enumerate(zip(sequence_frames("ir", (160, 120)), sequence_frames("vi", (160, 120))))]
    with Fuser(result.engine) as got, Fuser(exported) as want:
        assert got.backend.steerable
        held = [f for _, f in got.fuse_stream(frames, stretch="steady")]
        wanted = [f for _, f in want.fuse_stream(frames, stretch="steady")]
    assert min(psnr(a, b) for a, b in zip(held, wanted)) >= 35


@pytest.mark.shared
def test_bf16_is_refused_where_the_cpu_has_none(exported: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The refusal on a CPU without BF16 (Zen 3), forced here whatever this CPU is."""
    from occo_deploy.backends import openvino

    monkeypatch.setattr(openvino, "cpu_has_bf16", lambda core: False)
    req = request(exported, tmp_path, precision="bf16", backend="openvino", output=tmp_path / "b.onnx")
    with pytest.raises(BuildError, match="no BF16"):
        build_engine(req)
    assert not (tmp_path / "b.onnx").exists()


def test_bf16_is_openvinos_alone(exported: Path, tmp_path: Path) -> None:
    # From Python the fix is spelled as Python spells it; the CLI says --backend openvino.
    with pytest.raises(InputError, match="backend='openvino'"):
        build_engine(request(exported, tmp_path, precision="bf16", output=tmp_path / "c.onnx"))
    assert not (tmp_path / "c.onnx").exists()


@pytest.mark.shared
def test_bf16_engine_computes_in_bf16(exported: Path, tmp_path: Path) -> None:
    from occo_deploy.backends.openvino import cpu_has_bf16

    if not cpu_has_bf16(ov.Core()):  # BF16 arithmetic cannot be forced on a CPU without it
        pytest.skip("this CPU has no BF16 (AVX512_BF16 or AMX): the refusal is tested above")
    result = build_engine(request(exported, tmp_path, precision="bf16", backend="openvino",
                                  output=tmp_path / "b.onnx"))
    assert result.info["inference_precision"] == "bf16" and 40 <= result.gate.psnr_min < 90  # rounded, not FP32


def test_missing_openvino_names_the_extra(workspace: Path) -> None:
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from occo_deploy import backends\n"
            "print(backends.get('openvino').unavailable())\n"
            "from occo_deploy.backends.openvino import openvino\n"
            "openvino()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "pip install -e '.[openvino]'" in result.stdout  # run from the checkout's root
    assert "MissingDependencyError" in result.stderr and "pip install -e '.[openvino]'" in result.stderr
    cli = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['openvino'] = None\n"
         "from occo_deploy.cli.app import main\n"
         "sys.argv = ['occo-deploy', 'build', '--fp32', '--backend', 'openvino']\n"
         "main()"], capture_output=True, text=True, cwd=workspace)
    lines = [ln for ln in cli.stderr.splitlines() if ln.strip()]
    assert cli.returncode == 5 and len(lines) == 1, cli.stderr
    assert f"pip install -e '{ROOT}[openvino]'" in lines[0], cli.stderr  # elsewhere: the checkout's path


def test_bf16_engine_on_a_cpu_without_bf16_runs_fp32(exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from occo_deploy.backends import openvino as openvino_backend

    monkeypatch.setattr(openvino_backend, "cpu_has_bf16", lambda core: False)
    backend = openvino_backend.OpenVinoBackend(exported, {"inference_precision": "bf16"}, "openvino", 1)
    assert backend.inference_precision == "f32"
    backend.close()
