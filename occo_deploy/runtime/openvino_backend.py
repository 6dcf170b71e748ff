"""OpenVINO on the CPU: the FP32 or Q/DQ INT8 ONNX of ``occo-deploy build --backend openvino``.

Why it is here: on x86 CPUs with BF16 or VNNI it runs this network about twice as fast as ONNX
Runtime (see README, Speed). It is an optional extra, behind the same registry as every backend.

Each frame size gets its own compiled model (the graph reshaped to that static N x H x W), kept for
the last few sizes: a video has one size, so it compiles once (1-2 s on the first frame). Static
shapes are not only faster (559 vs 660 ms per 640x480 frame in BF16 here): OpenVINO 2026.4 computes
our Q/DQ INT8 graph wrongly with dynamic shapes (8 dB against FP32; 47 dB once static).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from occo_deploy.contract import FUSED, INFRARED, VISIBLE, verify_artifact
from occo_deploy.errors import EngineError, first_line, require
from occo_deploy.runtime.backend import Backend

#: Compiled shapes kept; a compile costs 1-2 s, a kept one some tens of MB.
KEPT_SHAPES = 4


def openvino() -> Any:
    return require("openvino", "openvino", "OpenVINO engines")


def cpu_has_bf16(core: Any) -> bool:
    """Whether the CPU computes in BF16 natively (AVX512_BF16 or AMX); else OpenVINO runs FP32."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, artifact: Path, sidecar: dict[str, Any] | None, provider: str, threads: int | None,
                 options: Mapping[str, Any] | None = None) -> None:
        super().__init__(artifact, sidecar, provider, threads, options)
        ov = openvino()
        verify_artifact(artifact, sidecar)
        self._core = ov.Core()
        try:
            self._model = self._core.read_model(str(artifact))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with long C++ traces
            raise EngineError(f"OpenVINO cannot read {artifact}: {first_line(exc)[:200]}") from exc
        inputs = {i.get_any_name() for i in self._model.inputs}
        outputs = {o.get_any_name() for o in self._model.outputs}
        if inputs != {VISIBLE, INFRARED} or FUSED not in outputs:
            raise EngineError(f"{artifact} is not an occo-deploy model (inputs {sorted(inputs)}); "
                              "export one with: occo-deploy export CHECKPOINT")
        # What is not INT8 computes in the sidecar's precision: BF16 for BF16 engines, and for INT8
        # engines built on a CPU with BF16. On a CPU without it (an engine copied elsewhere), FP32.
        self.inference_precision = str((sidecar or {}).get("inference_precision", "f32"))
        if self.inference_precision == "bf16" and not cpu_has_bf16(self._core):
            self.inference_precision = "f32"
        self._config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": self.inference_precision,
                                        "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = threads
        self._compiled: OrderedDict[tuple[int, int, int], Any] = OrderedDict()
        self._version = ov.__version__

    def _request(self, n: int, h: int, w: int) -> Any:
        key = (n, h, w)
        request = self._compiled.get(key)
        if request is not None:
            self._compiled.move_to_end(key)
            return request
        model = self._model.clone()
        model.reshape({VISIBLE: [n, h, w, 3], INFRARED: [n, h, w]})
        try:
            compiled = self._core.compile_model(model, "CPU", self._config)
        except Exception as exc:
            raise EngineError(f"OpenVINO cannot compile {self.artifact} for {n}x{h}x{w}: {first_line(exc)[:200]}") from exc
        request = compiled.create_infer_request()
        self._compiled[key] = request
        while len(self._compiled) > KEPT_SHAPES:
            self._compiled.popitem(last=False)
        return request

    def run(self, visible: np.ndarray, infrared: np.ndarray) -> np.ndarray:
        request = self._request(*infrared.shape)
        # share_inputs: OpenVINO reads the caller's (contiguous) arrays without copying them.
        request.infer({VISIBLE: visible, INFRARED: infrared}, share_inputs=True)
        return request.get_tensor(FUSED).data.copy()  # the request's buffer is reused by the next call

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "openvino": self._version, "inference_precision": self.inference_precision,
                "precision": (self.sidecar or {}).get("precision", "unknown")}

    def close(self) -> None:
        super().close()
        self._compiled.clear()
