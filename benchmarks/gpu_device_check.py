#!/usr/bin/env python3
"""One prepared run on a lent GPU machine: the real cuda-python pinned pipeline on real frames.

Run from the repository root on the GPU machine (it has torch with CUDA and cuda-python; no
TensorRT; a CPU-only onnxruntime unless onnxruntime-gpu was carried there):

    PYTHONPATH=. python benchmarks/gpu_device_check.py --out "$OUT" \\
        [--onnx export/occo.onnx] [--fp16 engines/occo_fp16_onnxruntime.onnx]

What it measures, each section on its own so one failure does not hide the others:

1. transfers: H2D and D2H of one batch's bytes (4 in + 3 out per pixel) from pinned
   (``cudaMallocHost``) and pageable (numpy) memory at 640x480 and 1280x1024, batch 1 and 8.
2. pipeline: ``Fuser.fuse_stream`` over ``CudaStagedBackend`` (pinned slots, one stream and four
   events per slot) with 1, 2 and 3 batches in flight, batch 1, 4 and 8, on real clip frames. The
   engine is NOT TensorRT (none here): it is the OCCO network in PyTorch on the slot's stream
   (``TorchCudaBackend`` below, FP32 and FP16 autocast), the same reads and writes of device
   buffers a plan does. Beside it, in the same run, the naive path a user writes first:
   ``torch.from_numpy(...).cuda()`` in, ``.cpu()`` out, one batch at a time.
3. graphs: the staged backend's own stream capture (``cudaStreamBeginCapture`` ... ``cudaGraphLaunch``,
   the path TensorRT plans take) checked for correct replays with a device-to-device copy engine;
   and torch-graph replay of the PyTorch engine for speed.
4. onnxruntime: when ``onnxruntime`` has the CUDA provider, the exported ONNX (and the FP16 engine)
   through ``OnnxRuntimeGpuBackend`` with I/O binding, fidelity against ONNX Runtime on the CPU.

Writes ``gpu_check.json`` and ``gpu_check.md`` to ``--out``, and prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from occo_deploy.runtime.cuda_staged import CudaStagedBackend  # noqa: E402
from occo_deploy.runtime.staging import Slot  # noqa: E402
from occo_deploy.sidecar import Sidecar  # noqa: E402

SIZES = {"640x480": (480, 640), "1280x1024": (1024, 1280)}
RESULTS: dict[str, Any] = {"errors": {}}
LINES: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


def section(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    say(f"\n## {name}\n")
    start = time.perf_counter()
    try:
        value = fn(*args)
        RESULTS[name] = value
        return value
    except Exception:  # a device check reports every failure and goes on
        tb = traceback.format_exc()
        RESULTS["errors"][name] = tb
        say("FAILED:\n```\n" + tb[-3000:] + "```")
        return None
    finally:
        say(f"\n({name}: {time.perf_counter() - start:.1f} s)")


def table(rows: list[dict[str, Any]], cols: list[str]) -> None:
    say("| " + " | ".join(cols) + " |")
    say("|" + "---|" * len(cols))
    for r in rows:
        say("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols) + " |")


def real_frames(hw: tuple[int, int], count: int = 20) -> list[tuple[np.ndarray, np.ndarray]]:
    """The bundled clip's frames (real M3SVD pairs, 640x480), fitted (cover + crop) to ``hw``."""
    from occo_deploy import demo
    from occo_deploy.calibration.data import fit

    return [(fit(ir, hw), fit(vis, hw)) for ir, vis in demo.clip_pairs(count)]


# -- engines for the pipeline -------------------------------------------------------------------
class _CudaArray:
    """A device buffer as ``__cuda_array_interface__``, so torch can view it without a copy."""

    def __init__(self, ptr: int, nbytes: int) -> None:
        self.__cuda_array_interface__ = {"shape": (nbytes,), "typestr": "|u1", "data": (ptr, False),
                                         "version": 3, "strides": None}


class TorchCudaBackend(CudaStagedBackend):
    """The OCCO network in PyTorch on each slot's stream: a stand-in engine, not TensorRT.

    It reads the slot's device inputs and writes its device output like a plan's
    ``execute_async_v3``; the pipeline around it (pinned slots, copies, events) is the package's.
    """

    name = "pytorch-cuda"
    half = False

    def __init__(self, artifact: Path, sidecar: Sidecar | None, provider: str, threads: int | None,
                 options: Mapping[str, Any] | None = None) -> None:
        super().__init__(artifact, sidecar, provider, threads, options)
        import torch

        from occo_deploy.model.checkpoint import load_model
        from occo_deploy.model.pipeline import FusionPipeline

        self.torch = torch
        self.model = FusionPipeline(load_model(artifact)).cuda().eval()
        self._tgraphs: dict[tuple[int, int, int, int], Any] = {}
        self._twarm: set[tuple[int, int, int, int]] = set()

    def _slot_ready(self, slot: Slot) -> None:
        t = self.torch
        sizes = {"visible": slot.plan.visible_bytes, "infrared": slot.plan.infrared_bytes,
                 "fused": slot.plan.fused_bytes}
        slot.device["tensors"] = {k: t.as_tensor(_CudaArray(slot.device["ptr"][k], n), device="cuda")
                                  for k, n in sizes.items()}
        slot.device["tstream"] = t.cuda.ExternalStream(int(slot.device["stream"]))

    def _enqueue(self, slot: Slot) -> None:
        t, n, h, w = self.torch, slot.n, slot.h, slot.w
        tensors = slot.device["tensors"]
        with t.no_grad(), t.cuda.stream(slot.device["tstream"]), \
                t.autocast("cuda", dtype=t.float16, enabled=self.half):
            out = self.model(tensors["visible"][: n * h * w * 3].view(n, h, w, 3),
                             tensors["infrared"][: n * h * w].view(n, h, w))
            tensors["fused"][: n * h * w * 3].view(n, h, w, 3).copy_(out)

    def _compute(self, slot: Slot) -> None:
        # torch allocates inside the model, which a raw stream capture must not see: use torch's graphs.
        key = (slot.index, slot.n, slot.h, slot.w)
        if not self.cuda_graph or key not in self._twarm:
            self._enqueue(slot)
            self._twarm.add(key)
            return
        t, stream = self.torch, slot.device["tstream"]
        graph = self._tgraphs.get(key)
        if graph is None:
            graph = t.cuda.CUDAGraph()
            with t.cuda.graph(graph, stream=stream):
                self._enqueue(slot)
            self._tgraphs[key] = graph
        with t.cuda.stream(stream):
            graph.replay()


class TorchCudaHalfBackend(TorchCudaBackend):
    name = "pytorch-cuda-fp16"
    half = True


class CopyBackend(CudaStagedBackend):
    """Device-to-device copy of the visible input as the "engine": checks graph capture and replay."""

    name = "copy"

    def _enqueue(self, slot: Slot) -> None:
        from occo_deploy.runtime.cuda import check

        rt, ptr = self.cuda.rt, slot.device["ptr"]
        kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        check(rt.cudaMemcpyAsync(ptr["fused"], ptr["visible"], slot.n * slot.h * slot.w * 3, kind,
                                 slot.device["stream"]), "device-to-device copy")


def _register() -> None:
    from occo_deploy import backends

    for runner, provider in ((TorchCudaBackend, "torch-cuda"), (TorchCudaHalfBackend, "torch-cuda-fp16"),
                             (CopyBackend, "copy")):
        backends.register(backends.BackendSpec(runner=runner, title=runner.name, reads="pth", suffixes=(),
                                               providers={provider: "this script's test backend"}))


# -- sections -----------------------------------------------------------------------------------
def environment(onnx: Path | None) -> dict[str, Any]:
    import platform

    from occo_deploy.runtime.cuda import Cuda

    info: dict[str, Any] = {"gpu": Cuda().info, "python": platform.python_version()}
    for name in ("torch", "onnxruntime", "cuda.bindings", "numpy", "cv2"):
        try:
            module = __import__(name, fromlist=["__version__"])
            info[name] = getattr(module, "__version__", "?")
        except Exception as exc:
            info[name] = f"missing ({type(exc).__name__})"
    try:
        import onnxruntime as ort

        info["onnxruntime_providers"] = ort.get_available_providers()
        info["onnxruntime_path"] = str(Path(ort.__file__).parent)
    except Exception:
        pass
    for k, v in info.items():
        say(f"- {k}: {v}")
    return info


def transfers(reps: int = 30) -> list[dict[str, Any]]:
    from occo_deploy.runtime.cuda import Cuda, host_view

    cuda = Cuda()
    stream = cuda.stream()
    rows: list[dict[str, Any]] = []
    for label, (h, w) in SIZES.items():
        for n in (1, 8):
            n_in, n_out = 4 * n * h * w, 3 * n * h * w
            dev_in, dev_out = cuda.malloc(n_in), cuda.malloc(n_out)
            pin_in, pin_out = cuda.malloc_host(n_in), cuda.malloc_host(n_out)
            page_in, page_out = np.ones(n_in, np.uint8), np.empty(n_out, np.uint8)
            host_view(pin_in, n_in)[:] = 1

            def rate(copy: Callable[..., None], dst: int, src: int, nbytes: int) -> tuple[float, float]:
                copy(dst, src, nbytes, stream)
                cuda.sync(stream)
                start = time.perf_counter()
                for _ in range(reps):
                    copy(dst, src, nbytes, stream)
                cuda.sync(stream)
                seconds = (time.perf_counter() - start) / reps
                return nbytes / seconds / 1e9, seconds * 1e3

            for memory, src_in, dst_out in (("pinned", pin_in, pin_out),
                                            ("pageable", page_in.ctypes.data, page_out.ctypes.data)):
                h2d_rate, h2d_ms = rate(cuda.h2d, dev_in, src_in, n_in)
                d2h_rate, d2h_ms = rate(cuda.d2h, dst_out, dev_out, n_out)
                rows.append({"size": label, "batch": n, "memory": memory, "in_MB": n_in / 1e6,
                             "h2d_GBps": h2d_rate, "h2d_ms": h2d_ms, "out_MB": n_out / 1e6,
                             "d2h_GBps": d2h_rate, "d2h_ms": d2h_ms})
            for p in (dev_in, dev_out):
                cuda.free(p)
            for p in (pin_in, pin_out):
                cuda.free_host(p)
    cuda.destroy_stream(stream)
    table(rows, ["size", "batch", "memory", "in_MB", "h2d_GBps", "h2d_ms", "out_MB", "d2h_GBps", "d2h_ms"])
    for label in SIZES:
        for n in (1, 8):
            pin = next(r for r in rows if r["size"] == label and r["batch"] == n and r["memory"] == "pinned")
            page = next(r for r in rows if r["size"] == label and r["batch"] == n and r["memory"] == "pageable")
            say(f"- {label} batch {n}: pinned/pageable H2D {pin['h2d_GBps'] / page['h2d_GBps']:.2f}x, "
                f"D2H {pin['d2h_GBps'] / page['d2h_GBps']:.2f}x")
    return rows


def _stream_run(fuser: Any, pairs: list[tuple[np.ndarray, np.ndarray]], frames: int, batch: int) -> dict[str, Any]:
    items = [(k, *pairs[k % len(pairs)]) for k in range(frames)]
    for _ in fuser.fuse_stream(iter(items[: 2 * fuser.backend.in_flight * batch]), batch):
        pass  # warm-up: slots, cuDNN algorithm choice, and (second use of a slot) graph capture
    fuser.stats.reset()
    start = time.perf_counter()
    count = sum(1 for _ in fuser.fuse_stream(iter(items), batch))
    wall = time.perf_counter() - start
    stages = fuser.stats.summary()["stages"]
    row: dict[str, Any] = {"fps": count / wall, "wall_s": wall}
    for s in ("prepare", "h2d", "infer", "d2h", "finish", "total"):
        if s in stages:
            row[f"{s}_ms"] = stages[s]["mean_ms"]
    row["total_p99_ms"] = stages["total"]["p99_ms"]
    return row


def _naive(ckpt: Path, pairs: list[tuple[np.ndarray, np.ndarray]], frames: int, batch: int) -> float:
    """What a user writes first: pageable numpy -> .cuda(), model, .cpu(); one batch at a time."""
    import torch

    from occo_deploy.model.checkpoint import load_model
    from occo_deploy.model.pipeline import FusionPipeline

    model = FusionPipeline(load_model(ckpt)).cuda().eval()
    batches = []
    for k in range(0, frames, batch):
        chosen = [pairs[(k + i) % len(pairs)] for i in range(min(batch, frames - k))]
        batches.append((np.stack([v for _, v in chosen]), np.stack([i for i, _ in chosen])))
    with torch.no_grad():
        for vis, ir in batches[:2]:
            model(torch.from_numpy(vis).cuda(), torch.from_numpy(ir).cuda()).cpu()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for vis, ir in batches:
            model(torch.from_numpy(vis).cuda(), torch.from_numpy(ir).cuda()).cpu().numpy()
        return frames / (time.perf_counter() - start)


def pipeline(ckpt: Path, frames: int) -> list[dict[str, Any]]:
    from occo_deploy.fusing.fuser import Fuser

    rows = []
    for label, hw in SIZES.items():
        pairs = real_frames(hw)
        for provider in ("torch-cuda", "torch-cuda-fp16"):
            for batch in (1, 4, 8):
                if provider == "torch-cuda-fp16" and batch == 8:
                    continue
                naive = _naive(ckpt, pairs, frames, batch) if provider == "torch-cuda" else None
                base = None
                for in_flight in (1, 2, 3):
                    with Fuser(ckpt, provider=provider, in_flight=in_flight, batch=batch) as fuser:
                        row = _stream_run(fuser, pairs, frames, batch)
                    base = base or row
                    # Copies as a share of a serial batch: what two slots in flight can hide at most.
                    copies = (row["h2d_ms"] + row["d2h_ms"]) / base["total_ms"] if in_flight == 1 else ""
                    row.update(size=label, engine=provider, batch=batch, in_flight=in_flight,
                               vs_in_flight_1=row["fps"] / base["fps"], copy_share=copies,
                               vs_naive=(row["fps"] / naive) if naive else "")
                    rows.append(row)
                if naive:
                    rows.append({"size": label, "engine": "naive torch .cuda()/.cpu()", "batch": batch,
                                 "in_flight": "-", "fps": naive})
    table(rows, ["size", "engine", "batch", "in_flight", "fps", "vs_in_flight_1", "vs_naive", "copy_share",
                 "prepare_ms", "h2d_ms", "infer_ms", "d2h_ms", "finish_ms", "total_ms", "total_p99_ms"])
    say("\nStage times are CUDA-event means per batch; with 2+ in flight they overlap (infer includes "
        "time queued behind the other batch). copy_share: H2D + D2H over a serial batch's total.")
    return rows


def graphs(ckpt: Path, frames: int) -> dict[str, Any]:
    from occo_deploy.fusing.fuser import Fuser

    # 1. The raw capture path (what TensorRT plans use): replays must see each batch's new inputs.
    pairs = real_frames((96, 128), 10)
    items = [(k, *pairs[k]) for k in range(10)]
    with Fuser(ckpt, provider="copy", in_flight=2, batch=2, cuda_graph=True) as fuser:
        out = list(fuser.fuse_stream(iter(items), 2))
        backend = fuser.backend
        assert isinstance(backend, CudaStagedBackend)
        captured = len(backend._graph_plan.graphs)
    exact = all(np.array_equal(fused, items[k][2]) for k, fused in out)
    say(f"- stream capture with a copy engine: {captured} graphs captured, replays exact: {exact}")
    result: dict[str, Any] = {"capture_graphs": captured, "capture_replays_exact": exact, "rows": []}
    # 2. Speed of graph replay with the PyTorch engine at a fixed shape.
    for label, hw in SIZES.items():
        pairs = real_frames(hw)
        for batch in (1, 4):
            row: dict[str, Any] = {"size": label, "batch": batch}
            for on in (False, True):
                with Fuser(ckpt, provider="torch-cuda-fp16", in_flight=2, batch=batch, cuda_graph=on) as fuser:
                    row["graph_fps" if on else "plain_fps"] = _stream_run(fuser, pairs, frames, batch)["fps"]
            row["graph_vs_plain"] = row["graph_fps"] / row["plain_fps"]
            result["rows"].append(row)
    table(result["rows"], ["size", "batch", "plain_fps", "graph_fps", "graph_vs_plain"])
    return result


def onnxruntime_gpu(onnx: Path, fp16: Path | None, frames: int) -> list[dict[str, Any]]:
    import onnxruntime as ort

    from occo_deploy.engines.gate import psnr
    from occo_deploy.fusing.fuser import Fuser

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        say(f"skipped: onnxruntime {ort.__version__} here has no CUDA provider")
        return []
    rows = []
    for label, hw in SIZES.items():
        pairs = real_frames(hw)
        with Fuser(onnx, provider="cpu") as cpu:
            want = [cpu.fuse(ir, vis) for ir, vis in pairs[:3]]
        engines = [("fp32", onnx)] + ([("fp16", fp16)] if fp16 else [])
        for precision, path in engines:
            for batch in (1, 4):
                for in_flight in (1, 2):
                    with Fuser(path, provider="cuda", in_flight=in_flight, batch=batch) as fuser:
                        got = [fuser.fuse(ir, vis) for ir, vis in pairs[:3]]
                        row = _stream_run(fuser, pairs, frames, batch)
                    diffs = [np.abs(g.astype(int) - w.astype(int)).max() for g, w in zip(got, want)]
                    row.update(size=label, engine=f"onnxruntime-cuda {precision}", batch=batch, in_flight=in_flight,
                               max_abs_vs_cpu=int(max(diffs)),
                               psnr_vs_cpu_fp32=min(psnr(g, w) for g, w in zip(got, want)))
                    rows.append(row)
    table(rows, ["size", "engine", "batch", "in_flight", "fps", "max_abs_vs_cpu", "psnr_vs_cpu_fp32",
                 "h2d_ms", "infer_ms", "d2h_ms", "total_ms", "total_p99_ms"])
    return rows


def onnxruntime_graph(onnx: Path, frames: int) -> list[dict[str, Any]]:
    """ONNX Runtime's own CUDA graph (``enable_cuda_graph``), which ``--cuda-graph`` asks for."""
    from occo_deploy.fusing.fuser import Fuser

    rows = []
    pairs = real_frames(SIZES["640x480"])
    for on in (False, True):
        row: dict[str, Any] = {"cuda_graph": on}
        try:
            start = time.perf_counter()
            with Fuser(onnx, provider="cuda", batch=1, cuda_graph=on) as fuser:
                fuser.fuse(*pairs[0])
                row["first_frame_s"] = time.perf_counter() - start  # session + cuDNN search + capture
                row.update(_stream_run(fuser, pairs, frames, 1))
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        rows.append(row)
    table(rows, ["cuda_graph", "first_frame_s", "fps", "infer_ms", "total_ms", "error"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--onnx", type=Path, default=ROOT / "export" / "occo.onnx")
    parser.add_argument("--fp16", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=48, help="frames per timed run")
    parser.add_argument("--skip", default="", help="comma list of sections to skip")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    _register()
    from occo_deploy.demo import WEIGHTS

    skip = set(args.skip.split(","))
    start = time.perf_counter()
    say("# occo-deploy GPU device check")
    section("environment", environment, args.onnx)
    if "transfers" not in skip:
        section("transfers", transfers)
    if "pipeline" not in skip:
        section("pipeline", pipeline, WEIGHTS, args.frames)
    if "graphs" not in skip:
        section("graphs", graphs, WEIGHTS, args.frames)
    if args.onnx.is_file() and not {"onnxruntime", "onnxruntime_graph"} <= skip:
        import torch  # noqa: F401 - loads CUDA/cuDNN libraries ONNX Runtime's CUDA provider also needs

        if "onnxruntime" not in skip:
            section("onnxruntime", onnxruntime_gpu, args.onnx, args.fp16, args.frames)
        if "onnxruntime_graph" not in skip:
            section("onnxruntime_graph", onnxruntime_graph, args.onnx, args.frames)
    RESULTS["wall_s"] = time.perf_counter() - start
    (args.out / "gpu_check.json").write_text(json.dumps(RESULTS, indent=1, default=str))
    (args.out / "gpu_check.md").write_text("\n".join(LINES) + "\n")
    say(f"\nwall {RESULTS['wall_s']:.0f} s; errors in: {', '.join(RESULTS['errors']) or 'none'}")
    return 1 if RESULTS["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
