from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from occo_deploy.errors import EngineError
from occo_deploy.sidecar import sidecar_path
from occo_deploy.workspace import default_engine


def test_prefers_newest_engine_then_export(tmp_path: Path, exported: Path) -> None:
    with pytest.raises(EngineError, match="occo-deploy export"):
        default_engine(tmp_path)
    (tmp_path / "export").mkdir()
    shutil.copy(exported, tmp_path / "export" / "occo.onnx")
    assert default_engine(tmp_path) == tmp_path / "export" / "occo.onnx"
    engines = tmp_path / "engines"
    engines.mkdir()
    for k, name in enumerate(["old.onnx", "new.onnx"]):
        shutil.copy(exported, engines / name)
        sidecar_path(engines / name).write_text(json.dumps({"format_version": 1, "kind": "engine"}))
        os.utime(engines / name, (1_000_000 + k, 1_000_000 + k))
    (engines / "README.md").write_text("not an engine")
    (engines / "stray.onnx").write_bytes(b"no sidecar, not ours")
    assert default_engine(tmp_path) == engines / "new.onnx"
