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
