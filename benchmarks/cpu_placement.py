"""Does TensorRT's Q/DQ placement pay on the CPU engines too? The same calibration, four INT8 layouts,
ONNX Runtime and OpenVINO, interleaved against each one's FP32 run of the export.

    python benchmarks/cpu_placement.py [--onnx export/occo.onnx] [--rounds 2] [--calib-size 24]

Calibrated (min-max) on TNO, RoadScene and LLVIP pairs at 480x640; scored and timed on the 10 MSRS
640x480 pairs none of them saw. The layouts, all from the same ranges:

* ``cpu``: what ``build --int8`` writes for the backend today (ONNX Runtime's quantizer: Q/DQ on
  every convolution's inputs and output; u8 asymmetric activations; 7-bit weights for ONNX Runtime
  on a CPU without VNNI, where 8-bit ones saturate its kernels);
* ``trt-s8``: TensorRT's placement (``placement.tensorrt_qdq``: inputs and residual shortcuts only)
  with its symmetric s8 activations, the rest FP32: the ONNX TensorRT gets, run on the CPU;
* ``trt-u8``: TensorRT's placement with the CPU scheme's u8 asymmetric activations and weight bits,
  rewritten here from ``trt-s8`` (a benchmark variant; the package does not write it).

Prints per backend and layout: ms/frame, speed against the FP32 export on the same backend, and the
worst and median PSNR against the FP32 export on ONNX Runtime. Names the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from cpu_fp32 import calibrated_cpu_args, calibration_folder, load_pairs  # noqa: E402
from openvino_ab import compile_static  # noqa: E402

Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]


def u8_variant(trt_model: onnx.ModelProto, fp32_path: Path, ranges: dict[str, tuple[float, float]],
               reduce_range: bool) -> onnx.ModelProto:
    """``trt-s8`` with u8 asymmetric activations (range widened to hold 0, as ONNX Runtime's
    quantizer does) and, with ``reduce_range``, 7-bit weights requantized from the FP32 values."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(trt_model)
    inits = {i.name: i for i in model.graph.initializer}
    fp32 = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(fp32_path)).graph.initializer}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] in ranges:  # an activation's pair
            low, high = min(ranges[node.input[0]][0], 0.0), max(ranges[node.input[0]][1], 0.0)
            scale = np.float32((high - low) / 255 if high > low else 1.0)
            zero = np.uint8(np.clip(round(-low / scale), 0, 255))
            inits[node.input[1]].CopyFrom(numpy_helper.from_array(np.array(scale), node.input[1]))
            inits[node.input[2]].CopyFrom(numpy_helper.from_array(np.array(zero), node.input[2]))
        elif node.op_type == "DequantizeLinear" and reduce_range and node.input[0].endswith("_quantized"):
            original = fp32[node.input[0].removesuffix("_quantized")]
            axis = next(a.i for a in node.attribute if a.name == "axis")
            amax = np.abs(original).max(axis=tuple(i for i in range(original.ndim) if i != axis))
            scale = np.where(amax > 0, amax / 63, 1.0).astype(np.float32)
            shape = [1] * original.ndim
            shape[axis] = -1
            values = np.clip(np.round(original / scale.reshape(shape)), -63, 63).astype(np.int8)
            inits[node.input[0]].CopyFrom(numpy_helper.from_array(values, node.input[0]))
            inits[node.input[1]].CopyFrom(numpy_helper.from_array(scale, node.input[1]))
    del model.graph.value_info[:]  # the Q outputs were inferred as int8
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    calibrated_cpu_args(parser, rounds=2)
    args = parser.parse_args()

    import onnx
    import onnxruntime as ort
    import openvino as ov

    from occo_deploy.calibration import data as calib_data
    from occo_deploy.contract import frame_feeds
    from occo_deploy.engines import precision
    from occo_deploy.engines.gate import psnr
    from occo_deploy.quantization import ranges as calib_ranges
    from occo_deploy.runtime.cpu import cpu_description, int8_saturates

    tmp = Path(tempfile.mkdtemp(prefix="occo-placement-"))
    calib_root = calibration_folder(args.shared, tmp)
    calib, _ = calib_data.split(calib_data.discover(calib_root), calib_size=args.calib_size, val_size=4, seed=0)
    start = time.perf_counter()
    ranges = calib_ranges.measure(args.onnx, calib_data.iter_pairs(calib, (480, 640)), "minmax", symmetric=False)
    print(f"ranges of {len(calib)} frames in {time.perf_counter() - start:.0f} s", flush=True)
    symmetric = {k: (-max(abs(lo), abs(hi)), max(abs(lo), abs(hi))) for k, (lo, hi) in ranges.items()}

    ort_scheme = "u8s8_7bit" if int8_saturates() else "u8s8"
    files = {("onnxruntime", "cpu"): precision.to_int8(args.onnx, ranges, ort_scheme),
             ("openvino", "cpu"): precision.to_int8(args.onnx, ranges, "u8s8")}
    trt = precision.to_int8(args.onnx, symmetric, "s8s8")
    for backend in ("onnxruntime", "openvino"):
        files[(backend, "trt-s8")] = trt
        files[(backend, "trt-u8")] = u8_variant(trt, args.onnx, ranges,
                                                reduce_range=backend == "onnxruntime" and ort_scheme == "u8s8_7bit")
    paths = {}
    for (backend, layout), model in files.items():
        paths[(backend, layout)] = tmp / f"{backend}_{layout}.onnx"
        onnx.save(model, paths[(backend, layout)])

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.log_severity_level = 3

    def ort_runner(path: Path) -> Runner:
        s = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in s.get_inputs()]
        return lambda ir, vis: s.run(["fused"], frame_feeds(vis[None], ir[None], names))[0][0]

    core = ov.Core()

    def ov_runner(path: Path) -> Runner:
        request = compile_static(core, str(path), "f32", {}, args.threads, False)

        def run(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
            request.infer(frame_feeds(vis[None], ir[None], [i.get_any_name() for i in request.model_inputs]))
            return np.array(request.get_tensor("fused").data[0], copy=True)
        return run

    runners: dict[tuple[str, str], Runner] = {("onnxruntime", "fp32"): ort_runner(args.onnx),
                                              ("openvino", "fp32"): ov_runner(args.onnx)}
    for (backend, layout), path in paths.items():
        runners[(backend, layout)] = (ort_runner if backend == "onnxruntime" else ov_runner)(path)

    pairs = load_pairs(args.shared / "MSRS", (640, 480))
    reference = [runners[("onnxruntime", "fp32")](ir, vis) for ir, vis in pairs]
    scores = {k: [psnr(want, run(ir, vis)) for (ir, vis), want in zip(pairs, reference)] for k, run in runners.items()}
    times: dict[tuple[str, str], list[float]] = {k: [] for k in runners}
    for _ in range(args.rounds):
        for ir, vis in pairs:
            for key, run in runners.items():
                began = time.perf_counter()
                run(ir, vis)
                times[key].append(1e3 * (time.perf_counter() - began))

    print(f"\n{cpu_description()}; {args.threads} threads; onnxruntime {ort.__version__}, openvino {ov.__version__}")
    print(f"{len(pairs)} MSRS 640x480 pairs x {args.rounds} rounds, interleaved; ONNX Runtime scheme {ort_scheme}\n")
    print("| backend | layout | ms/frame | vs its FP32 | worst / median dB |\n|---|---|---|---|---|")
    for (backend, layout), samples in times.items():
        base = statistics.median(times[(backend, "fp32")])
        median = statistics.median(samples)
        s = scores[(backend, layout)]
        finite = [x for x in s if np.isfinite(x)]
        quality = f"{min(s):.1f} / {statistics.median(finite) if finite else float('inf'):.1f}"
        print(f"| {backend} | {layout} | {median:.0f} | {base / median:.2f}x | {quality} |")


if __name__ == "__main__":
    main()
