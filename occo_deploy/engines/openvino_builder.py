"""OpenVINO engines for the CPU: the precision ONNX plus how OpenVINO is to compute it.

The artifact stays an ONNX file (FP32, or Q/DQ INT8 with u8 activations, which OpenVINO maps to
its VNNI kernels); the sidecar says ``provider: openvino`` and the inference precision, so the
registry opens it with ``OpenVinoBackend``, which compiles it per frame size. ``--bf16`` is the FP32
ONNX computed in BF16 where the CPU has it (AVX512_BF16 or AMX), with the quality gate as for any build;
``--int8`` runs its convolutions in INT8 and the rest in BF16 on such CPUs, in FP32 elsewhere.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from occo_deploy.engines.builders import BuildOptions, EngineBuilder
from occo_deploy.errors import BuildError
from occo_deploy.runtime.backend import Backend


class OpenVinoBuilder(EngineBuilder):
    backend = "openvino"
    suffix = ".onnx"
    int8_scheme = "u8s8"  # symmetric s8 activations lost 10 dB on OpenVINO for no speed (issue 5's table)
    fixed_shapes = False
    precisions = ("fp32", "bf16", "int8")

    @classmethod
    def unavailable(cls) -> str | None:
        try:
            import openvino  # noqa: F401
        except ImportError:
            return "openvino is not installed: pip install 'occo-deploy[openvino]'"
        return None

    def precision_input(self, precision: str, fp32: Path, fp16: Path | None, int8: Path | None) -> Path:
        return int8 if precision == "int8" and int8 is not None else fp32

    def build(self, onnx_path: Path, out: Path, options: BuildOptions) -> dict[str, Any]:
        from occo_deploy.runtime.openvino_backend import cpu_has_bf16, openvino

        ov = openvino()
        core = ov.Core()
        if options.precision == "bf16" and not cpu_has_bf16(core):
            raise BuildError("this CPU has no BF16 arithmetic (AVX512_BF16 or AMX), so OpenVINO would compute "
                             "in FP32; build --fp32 or --int8 instead")
        shutil.copyfile(onnx_path, out)
        # INT8 engines compute what is not quantized (norms, attention, gates) in BF16 where the CPU
        # has it: 346 vs 390 ms per 640x480 frame here, 45.0 vs 45.1 dB worst on MSRS; the quality
        # gate below checks it as built.
        bf16 = options.precision == "bf16" or (options.precision == "int8" and cpu_has_bf16(core))
        return {"provider": "openvino", "openvino": ov.__version__, "device": "CPU",
                "inference_precision": "bf16" if bf16 else "f32",
                "cpu_capabilities": list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))}

    def runner(self, engine: Path, sidecar: dict[str, Any] | None) -> Backend:
        from occo_deploy.runtime.openvino_backend import OpenVinoBackend

        return OpenVinoBackend(engine, sidecar, "openvino", None)
