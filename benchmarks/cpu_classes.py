"""What an INT8 engine scores on the CPU classes this machine is not: the gate's frames, per frame,
as this CPU runs the engine and as the other classes' arithmetic computes it (emulated).

    python benchmarks/cpu_classes.py [--onnx export/occo.onnx] [--calib ../shared/data/pairs]
                                     [--cache engines/calib_minmax_asymmetric.json] [--layers]

The frames are those ``build --int8`` gates on (same discovery, seeded split and size, plus the
gate's larger frame: the first check pair scaled to twice the calibration size). The layouts are
made from one range cache (``build`` writes it): ``cpu`` is ONNX Runtime's quantizer placement (what
OpenVINO engines had before ``u8s8_fused``), ``fused`` is today's OpenVINO scheme.

Columns: the frame's native size (the gate fits every frame to the calibration size, scaling small
ones up), the span (max - min) of the network's raw output on the FP32 export (the pipeline
stretches that span to 0..255, so a narrow one magnifies any error), then PSNR of the fused frame
against the FP32 export on ONNX Runtime:

* ``this CPU``: OpenVINO here, FP32 for what is not INT8 (the hint a build on a CPU without BF16
  records);
* ``exact``: the Q/DQ graph computed in float (ONNX Runtime, ``session.disable_quant_qdq``). u8 x s8
  products summed in int32, as VNNI (AVX-512 VNNI, AVX-VNNI) and AMX do, give these values up to
  float rounding; AVX2 without VNNI multiplies with ``vpmaddubsw`` whose int16 pair sums can saturate,
  so an AVX2 machine's own column may differ;
* ``exact+bf16``: the same with every float activation and weight outside the Q/DQ rounded to BF16
  (round to nearest even) after each node: OpenVINO's BF16 inference on AVX512_BF16 and AMX CPUs
  keeps activations in BF16 between nodes and accumulates in FP32.

``--layers`` names, for the worst frame, the quantized tensors whose values on that frame leave
the calibrated range the most (the clipped share and how far past the range).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def bf16_round(x: np.ndarray) -> np.ndarray:
    """float32 rounded to the nearest BF16 (ties to even), back in float32."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return rounded.view(np.float32)


def bf16_model(model: Any, floats: set[str]) -> Any:
    """The Q/DQ model with BF16 rounding after every float node inside the network and on the float
    weights those nodes read (Cast to bfloat16 and back, which ONNX Runtime's CPU provider runs)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    qdq = {"QuantizeLinear", "DequantizeLinear"}
    quantized_weights = {n.input[0] for n in graph.node if n.op_type in qdq}
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and init.name not in quantized_weights:
            init.CopyFrom(numpy_helper.from_array(bf16_round(numpy_helper.to_array(init)), init.name))
    network = [n for n in graph.node if n.op_type not in qdq and "'net'" in
               {p.key: p.value for p in n.metadata_props}.get("pkg.torch.onnx.name_scopes", "")]
    nodes: list[Any] = []
    renamed: dict[str, str] = {}
    targets = {id(n) for n in network}
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in renamed:
                node.input[k] = renamed[name]
        nodes.append(node)
        if id(node) not in targets:
            continue
        for name in (o for o in node.output if o in floats):
            b, back = f"{name}__bf16", f"{name}__bf16f"
            nodes.append(helper.make_node("Cast", [name], [b], to=TensorProto.BFLOAT16))
            nodes.append(helper.make_node("Cast", [b], [back], to=TensorProto.FLOAT))
            renamed[name] = back
    del graph.node[:]
    graph.node.extend(nodes)
    return out


def raw_output(path: Path) -> str:
    """The network's raw output: what the pipeline's min-max normalisation reads (ReduceMin's input)."""
    import onnx

    nodes = onnx.load(str(path), load_external_data=False).graph.node
    return [n for n in nodes if n.op_type == "ReduceMin"][-1].input[0]


def native_size(item: Any) -> str:
    import cv2

    image = cv2.imread(str(item.ir), cv2.IMREAD_UNCHANGED)
    if image is None:
        return "unreadable"
    h, w = image.shape[:2]
    return f"{h}x{w}"


def float_outputs(model: Any) -> set[str]:
    """Names of float tensors (cast targets must be float: skip int64 shape arithmetic)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    return {v.name for v in inferred.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, default=Path("export/occo.onnx"))
    parser.add_argument("--calib", type=Path, default=ROOT.parent / "shared" / "data" / "pairs")
    parser.add_argument("--cache", type=Path, default=Path("engines/calib_minmax_asymmetric.json"))
    parser.add_argument("--layouts", default="cpu,fused")
    parser.add_argument("--layers", action="store_true")
    parser.add_argument("--no-openvino", action="store_true")
    args = parser.parse_args()

    import json

    import onnx
    import onnxruntime as ort

    from occo_deploy.calibration import data as calib_data
    from occo_deploy.contract import frame_feeds, frame_shapes
    from occo_deploy.engines import precision as prec
    from occo_deploy.engines.build import _large_pair
    from occo_deploy.engines.gate import psnr
    from occo_deploy.runtime.cpu import cpu_description

    print(f"CPU: {cpu_description()}")
    hw = (480, 640)
    items = calib_data.discover(args.calib)
    _, val = calib_data.split(items, calib_size=None, val_size=4, seed=0)
    frames = [(item.name, *calib_data.load_pair(item, hw)) for item in val]
    natives = [native_size(item) for item in val] + ["x2 of 1st"]
    big = _large_pair(frames[0][1:], (2 * hw[0], 2 * hw[1]))
    frames.append((f"{frames[0][0]} x2", *big))
    ranges = {k: tuple(v) for k, v in json.loads(args.cache.read_text())["ranges"].items()}

    def session(model: Any, exact: bool) -> Any:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if exact:
            options.add_session_config_entry("session.disable_quant_qdq", "1")
        data = model.SerializeToString() if not isinstance(model, Path) else str(model)
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def fuse(s: Any, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        return s.run(["fused"], frame_feeds(vis[None], ir[None], [i.name for i in s.get_inputs()]))[0][0]

    raw = raw_output(args.onnx)
    reference = session(args.onnx, exact=False)
    wanted = [fuse(reference, ir, vis) for _, ir, vis in frames]
    probe = onnx.load(str(args.onnx))
    probe.graph.output.extend([onnx.ValueInfoProto(name=raw)])
    probed = session(probe, exact=False)
    spans = []
    for _, ir, vis in frames:
        out = probed.run([raw], frame_feeds(vis[None], ir[None], [i.name for i in probed.get_inputs()]))[0]
        spans.append(float(out.max() - out.min()))
    del probed
    scheme = {"cpu": "u8s8", "fused": "u8s8_fused"}
    with tempfile.TemporaryDirectory() as tmp:
        for layout in args.layouts.split(","):
            model = prec.to_int8(args.onnx, ranges, scheme[layout])
            path = Path(tmp) / f"{layout}.onnx"
            onnx.save(model, path)
            columns: dict[str, list[float]] = {}
            if not args.no_openvino:
                import openvino as ov

                core = ov.Core()
                scores = []
                for (_, ir, vis), want in zip(frames, wanted):
                    m = core.read_model(str(path))
                    m.reshape(frame_shapes(1, ir.shape[0], ir.shape[1], [i.get_any_name() for i in m.inputs]))
                    req = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
                    req.infer(frame_feeds(vis[None], ir[None], [i.get_any_name() for i in req.model_inputs]))
                    scores.append(psnr(want, req.get_tensor("fused").data[0]))
                columns["this CPU"] = scores
            exact = session(model, exact=True)
            columns["exact"] = [psnr(w, fuse(exact, ir, vis)) for (_, ir, vis), w in zip(frames, wanted)]
            del exact
            b = session(bf16_model(model, float_outputs(model)), exact=True)
            columns["exact+bf16"] = [psnr(w, fuse(b, ir, vis)) for (_, ir, vis), w in zip(frames, wanted)]
            del b
            print(f"\nlayout {layout} ({scheme[layout]}), PSNR vs FP32 (dB)")
            print(f"{'frame':26} {'size':>9} {'native':>9} {'out span':>8} " + " ".join(f"{c:>10}" for c in columns))
            for k, (name, ir, _) in enumerate(frames):
                print(f"{name[:26]:26} {ir.shape[0]:>4}x{ir.shape[1]:<4} {natives[k]:>9} {spans[k]:8.2f} "
                      + " ".join(f"{columns[c][k]:10.1f}" for c in columns))
            print(f"{'worst':55} " + " ".join(f"{min(columns[c]):10.1f}" for c in columns))
            if args.layers:
                worst = int(np.argmin(columns["exact"]))
                _, ir, vis = frames[worst]
                report_clipping(args.onnx, ranges, model, ir, vis, session, fuse)


def report_clipping(fp32: Path, ranges: dict[str, tuple[float, float]], model: Any, ir: np.ndarray, vis: np.ndarray,
                    session: Any, fuse: Any) -> None:
    """The quantized tensors whose values on this frame leave their calibrated range the most."""
    import onnx

    from occo_deploy.contract import frame_feeds

    names = sorted({n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in ranges})
    probe = onnx.load(str(fp32))
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    s = session(probe, exact=False)
    values = s.run(names, frame_feeds(vis[None], ir[None], [i.name for i in s.get_inputs()]))
    rows = []
    for name, v in zip(names, values):
        lo, hi = ranges[name]
        clipped = float(np.mean((v < lo) | (v > hi)))
        past = max(float(v.max()) / hi if hi > 0 else 1.0, float(v.min()) / lo if lo < 0 else 1.0)
        rows.append((past, clipped, name, lo, hi, float(v.min()), float(v.max())))
    print("\nquantized tensors past their calibrated range on the worst frame (top 12):")
    print(f"{'tensor':44} {'range':>19} {'this frame':>19} {'x range':>7} {'clipped':>8}")
    for past, clipped, name, lo, hi, vmin, vmax in sorted(rows, reverse=True)[:12]:
        print(f"{name[-44:]:44} {lo:8.2f}..{hi:<9.2f} {vmin:8.2f}..{vmax:<9.2f} {past:7.2f} {clipped:8.2%}")


if __name__ == "__main__":
    main()
