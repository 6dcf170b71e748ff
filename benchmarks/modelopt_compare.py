"""occo-deploy's TensorRT INT8 ONNX beside NVIDIA's own quantizer's, on the same frames.

    python3 -m venv .venv-modelopt && .venv-modelopt/bin/pip install "nvidia-modelopt[onnx]==0.47.0"
    python benchmarks/modelopt_compare.py [--onnx export/occo.onnx] [--pairs ../shared/data/pairs]
                                          [--modelopt-python .venv-modelopt/bin/python] [--fp8]
    python benchmarks/modelopt_compare.py --make-fixture tests/engines/fixtures/modelopt_int8_small.onnx

TensorRT Model Optimizer (``nvidia-modelopt``, ONNX PTQ) is the reference for where TensorRT wants
Q/DQ. It pulls CUDA torch (about 6.5 GB), so it lives in a venv of its own and is run here as a
subprocess; it never is a dependency of the package. It runs on a CPU (an NVML warning, nothing else).

Both quantize the same FP32 export with max calibration on the same frames: the first 25 pairs of
TNO, RoadScene and LLVIP at 480x640. Each INT8 ONNX then runs on the 10 MSRS pairs neither saw, with
Q/DQ computed in float as TensorRT computes it (ONNX Runtime with ``session.disable_quant_qdq``),
against the FP32 export; printed: worst and median PSNR, the share of the weighted ops' work in INT8,
the convolution outputs quantized, the Q/DQ pairs that block a fusion, and whether
``occo-deploy check --target tensorrt`` passes. The rows:

* occo-deploy's TensorRT INT8 ONNX, with the rest in FP16 (what ``build --backend tensorrt --int8``
  writes when it passes the gate) and in FP32; also with the matrix products quantized, and with the
  placement of ONNX Runtime's quantizer (what occo-deploy wrote before);
* ModelOpt's ``--quantize_mode int8 --calibration_method max`` with ``--high_precision_dtype fp32``
  and with its default, fp16; with ``--fp8``, its FP8 ONNX too.

``--make-fixture`` quantizes a small graph with the engine contract's I/O (two convolutions, a residual
Add, a matrix product with a weight) with ModelOpt and writes it: the test that ``check`` and ``build``
take ModelOpt's forms (FP32 weight -> Q -> DQ, per-channel MatMul weights on axis 1) reads it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from occo_deploy.backends.onnxruntime_cpu import reference_backend  # noqa: E402
from occo_deploy.calibration import data as calib_data  # noqa: E402
from occo_deploy.engines import precision  # noqa: E402
from occo_deploy.engines.check import check_artifact  # noqa: E402
from occo_deploy.engines.gate import psnr  # noqa: E402
from occo_deploy.quantization import placement  # noqa: E402
from occo_deploy.quantization import ranges as calib_ranges  # noqa: E402
from occo_deploy.runtime.cpu import cpu_description  # noqa: E402

HW = (480, 640)
CALIBRATION_FRAMES = 25


def modelopt(python: Path, onnx_path: Path, calib: Path, out: Path, *extra: str) -> float:
    """Run ModelOpt's ONNX PTQ in its own venv; its wall time."""
    h, w = HW
    start = time.perf_counter()
    subprocess.run([str(python), "-m", "modelopt.onnx.quantization", "--onnx_path", str(onnx_path),
                    "--calibration_method", "max", "--calibration_data_path", str(calib), "--calibration_eps", "cpu",
                    "--calibration_shapes", f"visible:1x{h}x{w}x3,infrared:1x{h}x{w}", "--output_path", str(out),
                    *extra], check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def score(path: Path, pairs: list[tuple[np.ndarray, np.ndarray]], want: list[np.ndarray]) -> dict[str, Any]:
    """PSNR against FP32 with Q/DQ as stated, the placement's figures, and TensorRT's rules."""
    with contextlib.closing(reference_backend(path)) as engine:
        values = [psnr(engine.run(vis[None], ir[None])[0], w) for (ir, vis), w in zip(pairs, want)]
    rep = placement.report(onnx.load(str(path)))
    check = check_artifact(path, ["tensorrt"])
    return {"worst": min(values), "median": float(np.median(values)), "int8_work": rep.work["int8"],
            "conv_outputs_quantized": rep.conv_outputs_quantized, "blocking": len(rep.blocking),
            "check": "passes" if check.passed else f"{len(check.errors)} errors ({check.errors[0].message[:60]})"}


def make_fixture(python: Path, out: Path) -> None:
    """A small graph with the engine I/O, quantized by ModelOpt (see the module's docstring)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.normal(0, 0.2, (16, 4, 3, 3)).astype(np.float32), "w1"),
            numpy_helper.from_array(rng.normal(0, 0.2, (16, 16, 3, 3)).astype(np.float32), "w2"),
            numpy_helper.from_array(rng.normal(0, 0.2, (16, 16)).astype(np.float32), "w3"),
            numpy_helper.from_array(np.array([0, 3, 1, 2], np.int64), "nchw"),
            numpy_helper.from_array(np.array([0, 2, 3, 1], np.int64), "nhwc"),
            numpy_helper.from_array(np.float32(255.0), "k255")]
    nodes = [
        helper.make_node("Cast", ["visible"], ["vis_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["infrared"], ["ir_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["ir_f", "ax3"], ["ir_c"]),
        helper.make_node("Concat", ["vis_f", "ir_c"], ["x_nhwc"], axis=3),
        helper.make_node("Transpose", ["x_nhwc"], ["x"], perm=[0, 3, 1, 2]),
        helper.make_node("Div", ["x", "k255"], ["x01"]),
        helper.make_node("Conv", ["x01", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["res"]),
        helper.make_node("Transpose", ["res"], ["res_nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("MatMul", ["res_nhwc", "w3"], ["mixed"]),
        helper.make_node("Sigmoid", ["mixed"], ["gate"]),
        helper.make_node("Slice", ["gate", "s0", "s3", "ax3"], ["rgb"]),
        helper.make_node("Mul", ["rgb", "k255"], ["scaled"]),
        helper.make_node("Cast", ["scaled"], ["fused"], to=TensorProto.UINT8),
    ]
    init += [numpy_helper.from_array(np.array([3], np.int64), "ax3"),
             numpy_helper.from_array(np.array([0], np.int64), "s0"),
             numpy_helper.from_array(np.array([3], np.int64), "s3")]
    graph = helper.make_graph(
        nodes, "modelopt_fixture",
        [helper.make_tensor_value_info("visible", TensorProto.UINT8, ["N", "H", "W", 3]),
         helper.make_tensor_value_info("infrared", TensorProto.UINT8, ["N", "H", "W"])],
        [helper.make_tensor_value_info("fused", TensorProto.UINT8, ["N", "H", "W", 3])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="occo-deploy tests")
    model.ir_version = 9
    onnx.checker.check_model(model)
    pairs = list(calib_data.sample_pairs(None, (64, 64), 4))
    with tempfile.TemporaryDirectory() as tmp:
        src, calib = Path(tmp) / "small.onnx", Path(tmp) / "calib.npz"
        onnx.save(model, src)
        np.savez(calib, visible=np.stack([v for _, v in pairs]), infrared=np.stack([i for i, _ in pairs]))
        h, w = 64, 64
        subprocess.run([str(python), "-m", "modelopt.onnx.quantization", "--onnx_path", str(src),
                        "--quantize_mode", "int8", "--calibration_method", "max", "--calibration_data_path", str(calib),
                        "--calibration_eps", "cpu", "--high_precision_dtype", "fp32",
                        "--calibration_shapes", f"visible:1x{h}x{w}x3,infrared:1x{h}x{w}",
                        "--op_types_to_quantize", "Conv", "MatMul", "Add", "--output_path", str(out)],
                       check=True, capture_output=True, text=True)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", type=Path, default=ROOT / "export" / "occo.onnx")
    ap.add_argument("--pairs", type=Path, default=ROOT.parent / "shared" / "data" / "pairs")
    ap.add_argument("--modelopt-python", type=Path, default=ROOT / ".venv-modelopt" / "bin" / "python")
    ap.add_argument("--fp8", action="store_true", help="Also ModelOpt's FP8 ONNX (Hopper and later).")
    ap.add_argument("--json", type=Path, help="Also write the rows as JSON here.")
    ap.add_argument("--make-fixture", type=Path, help="Write the small ModelOpt-made test fixture here and stop.")
    args = ap.parse_args()
    if not args.modelopt_python.is_file():
        raise SystemExit(f"no ModelOpt venv at {args.modelopt_python}; make it as this script's docstring says")
    if args.make_fixture:
        make_fixture(args.modelopt_python, args.make_fixture)
        return
    items = calib_data.discover(args.pairs)
    calib = [i for i in items if not i.name.startswith("MSRS")][:CALIBRATION_FRAMES]
    held = [i for i in items if i.name.startswith("MSRS")]
    print(f"CPU: {cpu_description()}; {time.strftime('%Y-%m-%d')}")
    print(f"calibration: {len(calib)} pairs of TNO, RoadScene, LLVIP at {HW[0]}x{HW[1]}; held out: {len(held)} MSRS "
          "pairs; Q/DQ computed in float, as TensorRT does")
    with tempfile.TemporaryDirectory(prefix="occo-modelopt-") as tmp_dir:
        tmp = Path(tmp_dir)
        calib_pairs = [calib_data.load_pair(i, HW) for i in calib]
        val = [calib_data.load_pair(i, HW) for i in held]
        start = time.perf_counter()
        ranges = calib_ranges.measure(args.onnx, iter(calib_pairs), "minmax", True)
        ours_s = time.perf_counter() - start
        fp32 = onnx.load(str(args.onnx))
        trt_fp32_rest, _ = placement.tensorrt_qdq(fp32, ranges)
        before = replace(precision.SCHEMES["s8s8"], placement="onnxruntime")
        ours = {
            "occo-deploy, FP16 rest (the default)": precision.int8_with_fp16_rest(trt_fp32_rest),
            "occo-deploy, FP32 rest": trt_fp32_rest,
            "occo-deploy + MatMul/Gemm, FP32 rest": placement.tensorrt_qdq(fp32, ranges, matmul=True)[0],
            "ONNX Runtime's placement (before), FP32 rest": precision.to_int8(args.onnx, ranges, before),
        }
        variants: dict[str, Path] = {}
        for k, (name, model) in enumerate(ours.items()):
            variants[name] = tmp / f"ours_{k}.onnx"
            onnx.save(model, variants[name])
        npz = tmp / "calib.npz"
        np.savez(npz, visible=np.stack([v for _, v in calib_pairs]), infrared=np.stack([i for i, _ in calib_pairs]))
        times = {"occo-deploy (ranges)": ours_s}
        for name, extra in (("ModelOpt INT8, FP32 rest", ("--quantize_mode", "int8", "--high_precision_dtype", "fp32")),
                            ("ModelOpt INT8, FP16 rest (its default)", ("--quantize_mode", "int8")),
                            *((("ModelOpt FP8, FP16 rest", ("--quantize_mode", "fp8")),) if args.fp8 else ())):
            variants[name] = tmp / f"{name.split(',')[0].replace(' ', '_')}_{len(variants)}.onnx"
            times[name] = modelopt(args.modelopt_python, args.onnx, npz, variants[name], *extra)
        with contextlib.closing(reference_backend(args.onnx)) as ref:
            want = [ref.run(vis[None], ir[None])[0] for ir, vis in val]
        rows: dict[str, dict[str, Any]] = {}
        print("\n| INT8 ONNX | worst / median PSNR vs FP32 | INT8 share of work | conv outputs quantized | "
              "blocking Q/DQ | check --target tensorrt |")
        print("|---|---|---|---|---|---|")
        for name, path in variants.items():
            try:
                r = score(path, val, want)
            except Exception as exc:  # a variant ONNX Runtime cannot run is a result too
                rows[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
                print(f"| {name} | {rows[name]['error']} | | | | |")
                continue
            rows[name] = r
            print(f"| {name} | {r['worst']:.1f} / {r['median']:.1f} dB | {100 * r['int8_work']:.1f}% | "
                  f"{r['conv_outputs_quantized']} | {r['blocking']} | {r['check']} |", flush=True)
        print("\nquantization wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
        if args.json:
            args.json.write_text(json.dumps({"cpu": cpu_description(), "rows": rows, "seconds": times}, indent=1))


if __name__ == "__main__":
    main()
