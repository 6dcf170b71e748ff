"""The staged pipeline up to the CUDA boundary: slots, buffer sizing, batching, ordering, errors.

Everything here runs the real code path on ONNX Runtime's CPU provider; with ``in_flight=2`` the
base backend runs batches on a worker thread, so two slots really are in flight at once. The CUDA
half of the same pipeline (pinned slots, streams, events) is checked by the GPU tests at the end,
which skip without a GPU, and by ``benchmarks/gpu_device_check.py`` on a GPU machine.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from occo_deploy import EngineError, Fuser, ShapeError
from occo_deploy.backends.onnxruntime_gpu import check_active, gpu_provider
from occo_deploy.errors import InputError, MissingDependencyError, cli_context
from occo_deploy.runtime.shapes import ShapeRange
from occo_deploy.runtime.staging import MAX_PREALLOCATED_BYTES, BufferPlan
from tests.conftest import sequence_frames


def _frames(count: int, size_wh: tuple[int, int] = (96, 64)) -> list[tuple[int, np.ndarray, np.ndarray]]:
    irs = sequence_frames("ir", size_wh)
    vis = sequence_frames("vi", size_wh)
    return [(k, irs[k % len(irs)], vis[k % len(vis)]) for k in range(count)]


def test_buffer_plan_sizes_from_the_profile_or_the_first_batch() -> None:
    bounded = ShapeRange(min_batch=1, max_batch=8, max_height=1024, max_width=1280)
    plan = BufferPlan.for_engine(bounded, batch=4, n=4, h=480, w=640)
    assert plan == BufferPlan(4, 1024, 1280)  # once at the profile's max: no reallocation on a size change
    assert plan.total_bytes == 4 * 1024 * 1280 * 7  # 4 bytes in + 3 out per pixel
    assert plan.fits(4, 1024, 1280) and plan.fits(2, 1024, 2560) and not plan.fits(5, 1024, 1280)
    # A profile whose maximum would pin gigabytes is sized to the frames instead.
    huge = ShapeRange(min_batch=1, max_batch=8, max_height=4096, max_width=4096)
    assert BufferPlan(8, 4096, 4096).total_bytes > MAX_PREALLOCATED_BYTES
    assert BufferPlan.for_engine(huge, batch=8, n=8, h=480, w=640) == BufferPlan(8, 480, 640)
    assert BufferPlan.for_engine(ShapeRange(), batch=1, n=3, h=64, w=96) == BufferPlan(3, 64, 96)


def test_slots_are_reused_and_grow_only_when_too_small(exported: Path) -> None:
    with Fuser(exported, in_flight=2) as fuser:
        backend = fuser.backend
        a = backend.acquire(2, 64, 96)
        b = backend.acquire(2, 64, 96)
        assert a is not b and a.visible().shape == (2, 64, 96, 3) and b.infrared().shape == (2, 64, 96)
        assert backend.acquire(1, 64, 96, block=False) is None  # both slots busy: wait, or retire one first
        for slot in (a, b):
            slot.visible()[...] = 0
            slot.infrared()[...] = 0
            backend.submit(slot)
        assert set(backend.wait(a)) == {"infer"} and backend.wait(b)["infer"] > 0
        assert backend.acquire(1, 64, 96, block=False) is None  # outputs not taken yet: still theirs
        backend.release(a)
        backend.release(b)
        buffer = a.host_visible
        smaller = backend.acquire(1, 32, 48)
        assert smaller is a and smaller.host_visible is buffer and smaller.visible().shape == (1, 32, 48, 3)
        backend.submit(smaller)
        backend.wait(smaller)
        backend.release(smaller)
        backend.acquire(1, 64, 96)  # a free slot that fits
        bigger = backend.acquire(4, 64, 96)  # the other one, too small: reallocated in place
        assert bigger.host_visible.size == 4 * 64 * 96 * 3 and len(backend._slots) == 2


@pytest.mark.parametrize("in_flight", [1, 2])
def test_stream_keeps_order_batches_and_the_last_partial_batch(exported: Path, in_flight: int) -> None:
    pairs = _frames(7)
    with Fuser(exported, in_flight=in_flight) as fuser:
        singles = [fuser.fuse(ir, vis) for _, ir, vis in pairs]
        fuser.stats.reset()
        out = list(fuser.fuse_stream(iter(pairs), batch=3))
        summary = fuser.stats.summary()
    assert [tag for tag, _ in out] == list(range(7))
    for (_, fused), single in zip(out, singles):
        diff = np.abs(fused.astype(int) - single.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # batch vs single summation order, as in test_fuser
    assert summary["frames"] == 7
    assert summary["stages"]["infer"]["count"] == 3  # 3 + 3 + 1
    assert summary["stages"]["prepare"]["count"] == summary["stages"]["total"]["count"] == 3
    frames = [fused for _, fused in out]
    assert len({id(f.base if f.base is not None else f) for f in frames[:3]}) == 1  # one batch, three views
    assert not np.shares_memory(frames[0], frames[3])  # later batches never overwrite earlier frames


def test_stream_closes_a_batch_when_the_frame_size_changes(exported: Path) -> None:
    small = _frames(3)
    large = _frames(2, (128, 80))
    pairs = [small[0], small[1], large[0], large[1], small[2]]
    with Fuser(exported, in_flight=2) as fuser:
        out = list(fuser.fuse_stream(iter(pairs), batch=4))
        assert fuser.stats.summary()["stages"]["infer"]["count"] == 3  # [s, s] [l, l] [s]
    assert [f.shape for _, f in out] == [(64, 96, 3)] * 2 + [(80, 128, 3)] * 2 + [(64, 96, 3)]


def test_a_bad_frame_mid_stream_raises_and_leaves_the_fuser_usable(exported: Path) -> None:
    pairs = _frames(4)
    bad = (99, np.zeros((64, 400), np.uint8), pairs[0][2])  # infrared of another aspect ratio
    with Fuser(exported, in_flight=2) as fuser:
        with pytest.raises(ShapeError, match="aspect"):
            list(fuser.fuse_stream(iter([*pairs[:2], bad, pairs[3]]), batch=2))
        out = list(fuser.fuse_stream(iter(pairs), batch=2))
    assert len(out) == 4
    with Fuser(exported) as fuser, pytest.raises(InputError, match="at least 1"):
        list(fuser.fuse_stream(iter(pairs), batch=0))
    with pytest.raises(InputError, match="only onnxruntime-gpu, tensorrt engines take it"):
        Fuser(exported, cuda_graph=True)  # not ignored quietly on the CPU


def test_asking_for_a_gpu_provider_without_one_is_an_error_not_a_cpu_run(exported: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(MissingDependencyError, match=r"pip install -e '.*\[ort-gpu\]'"):
            Fuser(exported, provider="cuda")
    # From Python the message names the keyword; at the command line, --provider.
    with pytest.raises(InputError, match="unknown provider 'gpu'; use one of cpu, openvino, cuda, ort-tensorrt, "
                                         "tensorrt"):
        Fuser(exported, provider="gpu")
    with cli_context(), pytest.raises(InputError, match="unknown --provider 'gpu'"):
        Fuser(exported, provider="gpu")
    plan = tmp_path / "occo.plan"
    with pytest.raises(EngineError, match=r"engine not found: .*occo\.plan; build one with: occo-deploy build"):
        Fuser(plan)
    plan.write_bytes(b"not a plan")  # a TensorRT plan on the CPU provider: says where it runs
    with pytest.raises(EngineError, match=r"a \.plan artifact runs on provider tensorrt, not 'cpu'"):
        Fuser(plan, provider="cpu")
    with pytest.raises(MissingDependencyError, match="pip uninstall -y onnxruntime"):
        gpu_provider("cuda", ["CPUExecutionProvider"], "1.32.0")
    # ONNX Runtime drops a provider whose libraries fail to load and carries on: we refuse.
    with pytest.raises(EngineError, match="could not start CUDAExecutionProvider"):
        check_active("CUDAExecutionProvider", ["CPUExecutionProvider"], Path("m.onnx"))
    check_active("CUDAExecutionProvider", ["CUDAExecutionProvider", "CPUExecutionProvider"], Path("m.onnx"))


def test_missing_cuda_python_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from occo_deploy.runtime.cuda import Cuda

    monkeypatch.setitem(sys.modules, "cuda.bindings", None)  # as if cuda-python were not installed
    with pytest.raises(MissingDependencyError, match=r"pip install -e '.*\[gpu\]'"):
        Cuda()


@pytest.mark.skipif(importlib.util.find_spec("cuda") is None or shutil.which("nvidia-smi") is not None,
                    reason="needs cuda-python (the dev extra) on a machine without an NVIDIA GPU")
def test_no_gpu_is_one_line_naming_the_cpu_path() -> None:
    from occo_deploy.runtime.cuda import device_info

    with pytest.raises(EngineError, match=r"no CUDA device found.*on the CPU"):
        device_info()


def _cuda_device() -> bool:
    try:
        from occo_deploy.runtime.cuda import device_info

        device_info()
        return True
    except (EngineError, MissingDependencyError):
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_device(), reason="needs cuda-python and an NVIDIA GPU")
def test_gpu_onnxruntime_cuda_matches_the_cpu(exported: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("needs onnxruntime-gpu")
    pairs = _frames(5, (160, 120))
    with Fuser(exported) as cpu:
        want = [cpu.fuse(ir, vis) for _, ir, vis in pairs]
    with Fuser(exported, provider="cuda", in_flight=2) as fuser:
        out = list(fuser.fuse_stream(iter(pairs), batch=2))
        stages = fuser.stats.summary()["stages"]
        assert fuser.info()["execution_provider"] == "CUDAExecutionProvider"
    assert [t for t, _ in out] == list(range(5))
    for (_, got), ref in zip(out, want):
        assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    assert {"h2d", "infer", "d2h"} <= set(stages) and stages["h2d"]["count"] == 3
