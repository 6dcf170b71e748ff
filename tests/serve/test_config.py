"""The rigs file: what serve accepts, and errors that name the file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from occo_deploy.serve.config import ConfigError, load


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rigs.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_rigs_file_with_secrets_from_the_environment_and_a_file(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_PASSWORD", "s3cret")
    (tmp_path / "cam.secret").write_text("from-file\n")
    path = _write(tmp_path, f'''
[serve]
max_batch = 8
batch_wait_ms = 15
recordings = "rec"

[rigs.gate]
infrared = "rtsp://admin:${{CAM_PASSWORD}}@10.0.0.5/thermal"
visible = "rtsp://admin:${{file:{tmp_path / "cam.secret"}}}@10.0.0.6/main"
fps = 5
record = true

[rigs.dock-2]
infrared = "camera:0"
visible = "camera:1"
''')
    config = load(path)
    assert config.max_batch == 8 and config.batch_wait_ms == 15 and config.recordings == tmp_path / "rec"
    gate = config.rigs["gate"]
    assert gate.infrared == "rtsp://admin:s3cret@10.0.0.5/thermal" and "from-file@" in gate.visible
    assert gate.fps == 5 and gate.record and not config.rigs["dock-2"].record
    shown = str(gate.public())
    assert "s3cret" not in shown and "from-file" not in shown  # what the API and logs show


@pytest.mark.parametrize(("text", "says"), [
    ('[rigs.gate]\ninfrared = "camera:0"\nvisible = "camera:1"\nfsp = 10\n',
     "rigs.toml:4 (rigs.gate.fsp): unknown key 'fsp'"),
    ('[rigs.gate]\ninfrared = "camera:0"\n', "rigs.toml:1 (rigs.gate): rig 'gate' needs 'visible'"),
    ('[rigs.gate]\ninfrared = "camera:0"\nvisible = "camera:1"\nfps = "ten"\n',
     "rigs.toml:4 (rigs.gate.fps): 'fps' must be"),
    ('[rigs.gate]\ninfrared = "camera:0"\nvisible = "camera:1"\nrecord = 1\n',
     "rigs.toml:4 (rigs.gate.record): 'record' must be bool"),
    ('[rigs.gate]\ninfrared = "rtsp://u:${NOPE_NOT_SET}@h/x"\nvisible = "camera:1"\n',
     "rigs.toml:2 (rigs.gate.infrared): the environment has no NOPE_NOT_SET"),
    ('[serve]\nmax_batch = 0\n', "rigs.toml:2 (serve.max_batch): max_batch must be at least 1"),
    ('[serve]\ndecoder_threads = -1\n', "rigs.toml:2 (serve.decoder_threads): decoder_threads must be 0"),
    ('[rigs."a b"]\ninfrared = "camera:0"\nvisible = "camera:1"\n', "rig name 'a b'"),
    ('[cameras]\n', "rigs.toml:1 (cameras): unknown table or key 'cameras'"),
    ('[rigs.gate\n', "not valid TOML"),
])
def test_errors_name_the_file_line_and_key(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(_write(tmp_path, text))
    assert says in str(caught.value), str(caught.value)


def test_a_missing_file_says_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the rigs file .*nowhere\.toml"):
        load(tmp_path / "nowhere.toml")
