"""The sidecar's schema and its one reader and writer: typed keys, paths relative to the artifact on
disk and absolute in memory, older formats read, newer ones refused with the fix."""

from __future__ import annotations

import json
import os
import shutil
import typing
from pathlib import Path
from typing import Any

import pytest

from occo_deploy.engines.build import BuildResult
from occo_deploy.errors import EngineError
from occo_deploy.sidecar import (
    FORMAT_VERSION,
    Calibration,
    Gate,
    GateFrames,
    Sidecar,
    Source,
    new_sidecar,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)


def _site(root: Path) -> tuple[Path, Sidecar]:
    """A user's folder: export/, engines/, pairs/; an engine sidecar naming the other two."""
    for folder in ("export", "engines", "pairs"):
        (root / folder).mkdir(parents=True)
    (root / "export" / "occo.onnx").write_bytes(b"onnx")
    engine = root / "engines" / "occo_int8.onnx"
    engine.write_bytes(b"engine")
    meta = new_sidecar("engine", "onnx", "int8", "onnxruntime")
    meta["source"] = {"onnx": str(root / "export" / "occo.onnx"), "onnx_sha256": "ab"}
    meta["gate_frames"] = {"folder": str(root / "pairs"), "seed": 0, "count": 4}
    meta["calibration"] = {"method": "minmax", "cache": str(root / "engines" / "calib_minmax.json")}
    return engine, meta


def test_round_trip_keeps_every_field_and_stores_paths_beside_the_artifact(tmp_path: Path) -> None:
    engine, meta = _site(tmp_path / "site")
    write_sidecar(engine, meta)
    stored = json.loads(sidecar_path(engine).read_text())
    assert stored["format_version"] == FORMAT_VERSION == 2
    assert stored["source"]["onnx"] == os.path.join("..", "export", "occo.onnx")
    assert stored["gate_frames"]["folder"] == os.path.join("..", "pairs")
    assert stored["calibration"]["cache"] == "calib_minmax.json"
    assert read_sidecar(engine) == meta  # absolute again in memory, nothing else changed


def test_a_moved_folder_keeps_its_requalification_set(tmp_path: Path) -> None:
    engine, meta = _site(tmp_path / "site")
    write_sidecar(engine, meta)
    shutil.move(str(tmp_path / "site"), str(tmp_path / "another-machine"))
    moved = read_sidecar(tmp_path / "another-machine" / "engines" / engine.name)
    assert moved is not None
    assert Path(moved["gate_frames"]["folder"]) == tmp_path / "another-machine" / "pairs"
    assert Path(moved["source"]["onnx"]).is_file()


def test_format_1_is_read_and_written_back_as_format_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, _ = _site(tmp_path)
    monkeypatch.chdir(tmp_path)  # format 1 held paths as typed, relative to where the command ran
    old = {"format_version": 1, "kind": "engine", "precision": "int8", "source": {"onnx": "export/occo.onnx"},
           "gate_frames": {"folder": str(tmp_path / "pairs"), "seed": 3}}
    sidecar_path(engine).write_text(json.dumps(old))
    meta = read_sidecar(engine)
    assert meta is not None and meta["format_version"] == 2
    assert meta["source"]["onnx"] == str(tmp_path / "export" / "occo.onnx")
    write_sidecar(engine, meta, force=True)
    assert json.loads(sidecar_path(engine).read_text())["source"]["onnx"] == os.path.join("..", "export", "occo.onnx")


@pytest.mark.parametrize(("content", "says"), [
    ('{"format_version": 3, "kind": "engine"}', "newer occo-deploy (sidecar format 3); upgrade occo-deploy"),
    ('{"kind": "engine"}', "not an occo-deploy sidecar; delete it and rebuild it: occo-deploy build"),
    ("{not json", "cannot read"),
])
def test_what_cannot_be_read_is_refused_with_the_fix(tmp_path: Path, content: str, says: str) -> None:
    engine = tmp_path / "occo_fp32.onnx"
    engine.write_bytes(b"engine")
    sidecar_path(engine).write_text(content)
    with pytest.raises(EngineError, match=says.replace("(", r"\(").replace(")", r"\)")):
        read_sidecar(engine)
    export = tmp_path / "occo.onnx"
    sidecar_path(export).write_text('{"kind": "onnx"}')
    with pytest.raises(EngineError, match="re-export it: occo-deploy export CHECKPOINT"):
        read_sidecar(export)


def _undeclared(data: dict[str, Any], schema: Any, where: str = "") -> list[str]:
    """Keys of ``data`` the TypedDict ``schema`` does not declare, nested TypedDicts included."""
    hints = typing.get_type_hints(schema)
    found = []
    for key, value in data.items():
        if key not in hints:
            found.append(where + key)
            continue
        nested = next((t for t in typing.get_args(hints[key]) or (hints[key],) if typing.is_typeddict(t)), None)
        if nested is not None and isinstance(value, dict):
            found += _undeclared(value, nested, f"{where}{key}.")
    return found


def test_what_export_and_build_write_is_declared_in_the_schema(exported: Path,
                                                               int8_build: tuple[BuildResult, list[str]]) -> None:
    for artifact in (exported, int8_build[0].engine):
        meta = read_sidecar(artifact)
        assert meta is not None and _undeclared(dict(meta), Sidecar) == [], artifact
    built = read_sidecar(int8_build[0].engine)
    assert built is not None
    for part, schema in (("quality", Gate), ("gate_frames", GateFrames), ("calibration", Calibration),
                         ("source", Source)):
        assert part in built and _undeclared(dict(built[part]), schema) == [], part  # type: ignore[literal-required]
    assert Path(built["gate_frames"]["folder"]).is_dir() and Path(built["source"]["onnx"]) == exported
