"""The CPU description benchmarks print: the model and the INT8/BF16 features that decide speed."""

from __future__ import annotations

from pathlib import Path

import pytest

from occo_deploy.runtime.cpu import ISA_FLAGS, cpu_description, cpu_flags, cpu_model


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="reads Linux's /proc/cpuinfo")
def test_the_description_names_the_model_and_what_it_has() -> None:
    text = cpu_description()
    assert text.startswith(cpu_model())
    have = [label for flag, label in ISA_FLAGS if flag in cpu_flags()]
    if have:
        assert all(label in text for label in have)
    else:  # e.g. AMD Zen 3: AVX2 only, the class whose ONNX Runtime INT8 saturates
        assert text.endswith(("AVX2 only", "AVX-512, no VNNI", "no AVX2"))
    if "AMD" in cpu_model():
        assert "family" in text


#: The flags of the three CPU classes this project meets, as /proc/cpuinfo lists them (abridged).
ZEN3 = frozenset({"sse4_2", "avx", "avx2", "fma", "f16c"})
ZEN4 = ZEN3 | {"avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"}
AMX = ZEN4 | {"amx_int8", "amx_bf16", "amx_tile", "avx_vnni"}


@pytest.mark.parametrize(("flags", "klass", "saturates", "described"), [
    (ZEN3, "avx2", True, "AVX2 only"),
    (ZEN4, "avx512-vnni-bf16", False, "AVX-512 VNNI"),
    (AMX, "amx", False, "AMX INT8"),
])
def test_each_cpu_class_is_recognised_whatever_this_machine_is(monkeypatch: pytest.MonkeyPatch, flags: frozenset[str],
                                                              klass: str, saturates: bool, described: str) -> None:
    # Every class's branch, forced: the class name, whether ONNX Runtime's INT8 saturates (7-bit
    # weights then), the scheme the ONNX Runtime builder picks and the words a report uses.
    from occo_deploy import backends
    from occo_deploy.runtime import cpu

    monkeypatch.setattr(cpu, "cpu_flags", lambda: flags)
    monkeypatch.setattr(cpu.platform, "machine", lambda: "x86_64")
    assert cpu.cpu_class() == klass and cpu.int8_saturates() is saturates
    assert described in cpu.cpu_description()
    builder = backends.get("onnxruntime").make_builder()
    assert builder.int8_scheme == ("u8s8_7bit" if saturates else "u8s8")
    # An engine with 8-bit u8s8 weights (built on a VNNI CPU) is refused where they would saturate.
    from occo_deploy.backends.onnxruntime_cpu import check_int8_scheme
    from occo_deploy.errors import EngineError

    if saturates:
        with pytest.raises(EngineError, match="saturate on this CPU"):
            check_int8_scheme({"calibration": {"scheme": "u8s8"}})
    else:
        check_int8_scheme({"calibration": {"scheme": "u8s8"}})
    check_int8_scheme({"calibration": {"scheme": "u8s8_7bit"}})  # 7-bit weights run on every class
