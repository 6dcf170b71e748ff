"""Engines built once per session from the shared checkpoint on real calibration pairs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from occo_deploy.engines.build import BuildRequest, BuildResult, build_engine
from occo_deploy.engines.profile import Profile
from tests.conftest import PAIRS

#: Calibrate and check at 240x320 with a few pairs: the same code paths as 480x640, CI-fast.
PROFILE = Profile.from_options(min_="1x16x16", opt="1x240x320", max_="8x4096x4096")


def request(exported: Path, tmp: Path, **kw: object) -> BuildRequest:
    base = dict(onnx=exported, precision="int8", backend="onnxruntime", profile=PROFILE, output=tmp / "e.onnx",
                calib_dir=PAIRS, calib_size=10, val_size=4, seed=0)
    base.update(kw)
    return BuildRequest(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def int8_build(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BuildResult, list[str]]]:
    log: list[str] = []
    tmp = tmp_path_factory.mktemp("int8")
    yield build_engine(request(exported, tmp, output=tmp / "occo_int8.onnx"), log.append), log


@pytest.fixture(scope="session")
def fp16_build(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    tmp = tmp_path_factory.mktemp("fp16")
    return build_engine(request(exported, tmp, precision="fp16", output=tmp / "occo_fp16.onnx"))
