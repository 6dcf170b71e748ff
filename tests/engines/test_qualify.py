"""The gated precision is the precision that runs: CPU classes in the sidecar, the notice on another
class, ``check --requalify``, OpenVINO's inference precision set from the sidecar, and the build's
fallback configurations (issue 23)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from occo_deploy import Fuser
from occo_deploy.engines.build import BuildResult, build_engine
from occo_deploy.errors import BuildError, CheckFailedError, EngineError, InputError
from occo_deploy.interface.profile import Profile
from occo_deploy.runtime import gated
from occo_deploy.runtime.cpu import CPU_CLASSES, cpu_class, describe_class
from occo_deploy.sidecar import sidecar_path
from tests.conftest import PAIRS, request, run_cli
from tests.support import logged

SMALL = Profile.from_options(min_="1x16x16", opt="1x96x128", max_="8x4096x4096")


def _copy_engine(result: BuildResult, folder: Path) -> Path:
    engine = folder / result.engine.name
    shutil.copy(result.engine, engine)
    shutil.copy(result.sidecar, sidecar_path(engine))
    return engine


def _edit_sidecar(engine: Path, **changes: object) -> None:
    data = json.loads(sidecar_path(engine).read_text())
    for key, value in changes.items():
        target = data
        *parents, leaf = key.split("__")
        for p in parents:
            target = target[p]
        if value is None:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    sidecar_path(engine).write_text(json.dumps(data))


def test_build_records_the_cpu_class_its_gate_ran_on(int8_build: tuple[BuildResult, list[str]]) -> None:
    result, _ = int8_build
    quality = result.info["quality"]
    assert quality["cpu_class"] == cpu_class() and quality["cpu"]
    frames = result.info["gate_frames"]
    assert frames["seed"] == 0 and Path(frames["folder"]).resolve() == PAIRS.resolve()
    assert result.info["build_attempts"][-1]["passed"]
    with Fuser(result.engine) as fuser:  # gated here: nothing to say
        assert not [n for n in fuser.notices if "quality-gated" in n]


def test_another_cpu_class_is_named_then_requalified(int8_build: tuple[BuildResult, list[str]], exported: Path,
                                                     tmp_path: Path) -> None:
    engine = _copy_engine(int8_build[0], tmp_path)
    # As if built on a CPU of another class than this one, whichever this one is.
    other = next(name for name, _, _ in CPU_CLASSES if name != cpu_class())
    _edit_sidecar(engine, quality__cpu_class=other)
    with Fuser(engine) as fuser:
        said = [n for n in fuser.notices if "quality-gated" in n]
    assert len(said) == 1 and describe_class(other) in said[0] and "requalify" in said[0]
    # The same gate again here: the build's frames (folder and seed from the sidecar), the same
    # arithmetic, so the same score; recorded per class, and the notice is gone.
    done = run_cli("check", str(engine), "--requalify", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sidecar = json.loads(sidecar_path(engine).read_text())
    again = sidecar["requalified"][cpu_class()]
    assert again["passed"] and abs(again["psnr_min"] - int8_build[0].info["quality"]["psnr_min"]) < 0.01
    assert "passed on this CPU" in " ".join(done.stdout.split())
    with Fuser(engine) as fuser:
        assert not [n for n in fuser.notices if "quality-gated" in n]
    # Below the gate here: exit 9, recorded, and loading the engine says it failed on this class.
    _edit_sidecar(engine, quality__min_psnr=99.0)
    failed = run_cli("check", str(engine), "--requalify", cwd=tmp_path)
    assert failed.returncode == CheckFailedError.exit_code and "below its quality gate" in failed.stderr
    assert gated.gate_notice(engine, json.loads(sidecar_path(engine).read_text())) is not None
    with Fuser(engine) as fuser:
        assert any("failed its quality gate on this CPU class" in n for n in fuser.notices)


def test_requalify_needs_the_pairs_and_the_export(int8_build: tuple[BuildResult, list[str]], tmp_path: Path) -> None:
    engine = _copy_engine(int8_build[0], tmp_path)
    _edit_sidecar(engine, gate_frames__folder=str(tmp_path / "gone"))
    done = run_cli("check", str(engine), "--requalify", cwd=tmp_path)
    assert done.returncode == InputError.exit_code and "--calib DIR" in done.stderr
    _edit_sidecar(engine, source__onnx=str(tmp_path / "gone.onnx"))
    done = run_cli("check", str(engine), "--requalify", "--calib", str(PAIRS), cwd=tmp_path)
    assert done.returncode == InputError.exit_code and "--reference PATH" in done.stderr
    assert run_cli("check", str(engine), "--calib", str(PAIRS), cwd=tmp_path).returncode == InputError.exit_code


def test_fp32_and_int8_engines_say_nothing_about_classes(exported: Path) -> None:
    # FP32 computes the same on every class (to rounding): no class, no notice.
    assert gated.gate_notice(exported, {"precision": "fp32", "quality": {"cpu_class": "amx"}}) is None
    assert gated.gate_notice(exported, {"precision": "int8", "quality": {}}) is None  # recorded none


@pytest.mark.shared
def test_a_failed_build_never_calibrates_twice(exported: Path, tmp_path: Path) -> None:
    # Every configuration below an impossible gate: the minmax ranges, then percentile ones, each
    # calibrated once and cached; the error lists what was tried and names the options left.
    cache = tmp_path / "c" / "calib_minmax_asymmetric.json"
    with logged() as log, pytest.raises(BuildError, match="no configuration passed the quality gate") as failed:
        build_engine(request(exported, tmp_path, calib_size=4, val_size=2, min_psnr=99.0, calib_cache=cache,
                             profile=SMALL))
    message = str(failed.value)
    assert "minmax ranges" in message and "percentile ranges" in message and "entropy" in message
    assert sum(m.startswith("calibrating (") for m in log) == 2
    assert (tmp_path / "c" / "calib_percentile_asymmetric.json").is_file() and cache.is_file()
    assert not list(tmp_path.glob("*.onnx*"))
    # Again with a gate between the two scores: the ranges come from the caches, and the build keeps
    # the first configuration that passes (percentile when it scored higher, else minmax alone).
    minmax, percentile = (float(x) for x in re.findall(r"worst ([\d.]+) dB", message))
    with logged() as log:
        result = build_engine(request(exported, tmp_path, calib_size=4, val_size=2,
                                      min_psnr=(minmax + percentile) / 2, calib_cache=cache, profile=SMALL))
    assert not [m for m in log if m.startswith("calibrating (")]
    kept = result.info["calibration"]["method"]
    assert kept == ("percentile" if percentile > minmax else "minmax")
    assert [a["passed"] for a in result.info["build_attempts"]] == ([False, True] if kept == "percentile" else [True])
    if kept == "percentile":
        assert any(m.startswith("kept int8 (percentile ranges, FP32 rest), the first to pass") for m in log)
        assert sum("reusing cached calibration ranges" in m for m in log) == 2


@pytest.mark.shared
def test_fallback_can_be_turned_off(exported: Path, tmp_path: Path) -> None:
    with logged() as log, pytest.raises(BuildError) as failed:
        build_engine(request(exported, tmp_path, calib_size=4, val_size=2, min_psnr=99.0,
                             calib_cache=tmp_path / "c" / "r.json", profile=SMALL, fallback_methods=()))
    assert "percentile" in str(failed.value)  # named as the option to try, not tried
    assert sum(m.startswith("calibrating (") for m in log) == 1


def test_an_fp32_gated_openvino_engine_computes_in_fp32(exported: Path) -> None:
    ov = pytest.importorskip("openvino")
    # OpenVINO's own default on a CPU with BF16 (AVX512_BF16, AMX) is BF16: an engine gated in FP32
    # must still compute in FP32 there. The compiled model's runtime precisions say what runs.
    from occo_deploy.backends.openvino import OpenVinoBackend, cpu_has_bf16

    backend = OpenVinoBackend(exported, {"inference_precision": "f32"}, "openvino", 1)
    try:
        ran = backend.runtime_precisions(1, 144, 160)
        assert "f32" in ran and "bf16" not in ran and "f16" not in ran, ran
        assert backend.notices == []
    finally:
        backend.close()
    # Another precision only when asked, and said; where the CPU has no BF16, FP32 and said so.
    asked = OpenVinoBackend(exported, {"inference_precision": "f32"}, "openvino", 1, {"inference_precision": "bf16"})
    try:
        ran = asked.runtime_precisions(1, 144, 160)
        if cpu_has_bf16(ov.Core()):
            assert "bf16" in ran and any("as asked" in n for n in asked.notices)
        else:
            assert "bf16" not in ran and any("cannot compute" in n for n in asked.notices)
    finally:
        asked.close()
    with pytest.raises(EngineError, match="f32 or bf16"):
        OpenVinoBackend(exported, None, "openvino", 1, {"inference_precision": "fp8"})
