"""What the host CPU can do, where the INT8 path depends on it."""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

#: x86 features with a fused 8-bit dot product and 32-bit accumulation (no int16 intermediate).
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def _cpuinfo_field(name: str) -> str | None:
    """The first CPU's ``name`` field in Linux's /proc/cpuinfo (None elsewhere, or when absent)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == name:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere)."""
    return frozenset((_cpuinfo_field("flags") or "").split())


def cpu_model() -> str:
    """The CPU's model name, for reports and benchmark tables."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


#: Features that decide this network's CPU speed, as a table's reader wants them named.
ISA_FLAGS = (("avx512_vnni", "AVX-512 VNNI"), ("avx_vnni", "AVX-VNNI"), ("avx512_bf16", "AVX-512 BF16"),
             ("amx_int8", "AMX INT8"), ("amx_bf16", "AMX BF16"))


def cpu_description() -> str:
    """Model, AMD family/model (the model name of a cloud EPYC is often only "AMD EPYC") and the
    INT8/BF16 features: what a benchmark table must say, since speeds differ a lot between them."""
    name = cpu_model()
    family, model = _cpuinfo_field("cpu family"), _cpuinfo_field("model")
    if "AMD" in name and family and model and model.isdigit():
        zen = {23: "Zen/Zen 2", 25: "Zen 3" if int(model) < 0x10 else "Zen 4", 26: "Zen 5"}.get(int(family))
        name += f" (family {family} model {model}{': ' + zen if zen else ''})"
    flags = cpu_flags()
    features = [label for flag, label in ISA_FLAGS if flag in flags]
    if not features:
        features = ["AVX-512, no VNNI" if "avx512f" in flags else "AVX2 only" if "avx2" in flags else "no AVX2"]
    return f"{name}, {', '.join(features)}"


#: CPU classes whose INT8 and BF16 arithmetic differ, from the most capable down: (class, the flags
#: that make it, what a reader is told). VNNI and AMX sum u8 x s8 products in int32; AVX2 and AVX-512
#: without VNNI pair them in int16 first (``vpmaddubsw``), which saturates; BF16 is native only with
#: AVX512_BF16 or AMX, so OpenVINO's BF16 inference exists only there.
CPU_CLASSES = (
    ("amx", frozenset({"amx_int8", "amx_bf16"}), "AMX INT8 + BF16"),
    ("avx512-vnni-bf16", frozenset({"avx512_vnni", "avx512_bf16"}), "AVX-512 VNNI + BF16"),
    ("avx512-vnni", frozenset({"avx512_vnni"}), "AVX-512 VNNI"),
    ("avx-vnni", frozenset({"avx_vnni"}), "AVX-VNNI"),
    ("avx512", frozenset({"avx512bw"}), "AVX-512 without VNNI"),
    ("avx2", frozenset({"avx2"}), "AVX2 only"),
)


def cpu_class() -> str:
    """The class of this CPU's INT8/BF16 arithmetic (a ``CPU_CLASSES`` key, or the machine's
    architecture elsewhere): an INT8 engine gated on one class may score differently on another."""
    flags = cpu_flags()
    for name, needs, _ in CPU_CLASSES:
        if needs <= flags:
            return name
    return platform.machine().lower() or "unknown"


def describe_class(name: str) -> str:
    """What a CPU class key means, for messages."""
    return next((label for key, _, label in CPU_CLASSES if key == name), name)


def int8_saturates() -> bool:
    """Whether ONNX Runtime's x86 INT8 kernels saturate on this CPU.

    Without VNNI, ONNX Runtime multiplies u8 x s8 with ``vpmaddubsw``, whose pairwise int16 sums
    saturate for large activations times large weights (ONNX Runtime's quantization docs). On a 2-core
    AMD EPYC with AVX2 only, the u8s8 engine gave 28.3 dB against FP32 and s8s8 14.6 dB, where 7-bit
    weights (``reduce_range``) gave 40.9 dB and VNNI CPUs 45 dB with 8-bit ones.
    """
    return platform.machine().lower() in ("x86_64", "amd64") and bool(cpu_flags()) and not (cpu_flags() & VNNI_FLAGS)
