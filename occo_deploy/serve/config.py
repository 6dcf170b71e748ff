"""The rigs file ``serve`` reads: TOML, validated, every error naming the file, line and key.

    [serve]                                   # optional; the command line overrides it
    engine = "engines/occo_int8_openvino.onnx"
    max_batch = 4                             # frames of all rigs per engine call (default 1 on a CPU, 4 on a GPU)
    batch_wait_ms = 20                        # how long a batch waits for more rigs' frames
    recordings = "recordings"                 # where rigs with record = true write
    decoder_threads = 0                       # per camera stream; 0: FFmpeg's own (one per core each)

    [rigs.gate]
    infrared = "rtsp://admin:${CAM_PASSWORD}@10.0.0.5/thermal"   # ${NAME}: from the environment
    visible = "rtsp://admin:${file:/run/secrets/cam}@10.0.0.6/main"  # ${file:PATH}: a secret file
    align = "gate.json"                       # optional, from occo-deploy align
    fps = 10                                  # optional cap on fused frames per second
    record = true                             # optional: H.264 segments under recordings/gate/

Credentials come from the environment or a secret file, never from the command line (where ``ps``
shows them); they are masked in every message. Relative paths are relative to the file's folder.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from occo_deploy.errors import InputError
from occo_deploy.urls import mask_credentials

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6): the same parser, from PyPI
    import tomli as tomllib

#: Rig names: they label metrics, name folders and URLs.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_VARIABLE = re.compile(r"\$\{([^}]+)\}")
SERVE_KEYS = {"engine": str, "max_batch": int, "batch_wait_ms": (int, float), "recordings": str,
              "segment_s": (int, float), "keep_hours": (int, float), "keep_gb": (int, float), "webhook": str,
              "decoder_threads": int, "rigs_per_engine": int}
RIG_KEYS = {"infrared": str, "visible": str, "align": str, "fps": (int, float), "record": bool, "publish": str}
REQUIRED_RIG_KEYS = ("infrared", "visible")


@dataclass(frozen=True)
class RigConfig:
    name: str
    infrared: str
    visible: str
    align: Path | None = None
    fps: float | None = None
    record: bool = False
    #: An RTSP URL the fused stream is pushed to (MediaMTX, GStreamer's server, a VMS's ingest).
    publish: str | None = None

    def public(self) -> dict[str, Any]:
        """What the API and logs show: the URLs with their passwords masked."""
        return {"name": self.name, "infrared": mask_credentials(self.infrared),
                "visible": mask_credentials(self.visible), "align": str(self.align) if self.align else None,
                "fps": self.fps, "record": self.record,
                "publish": mask_credentials(self.publish) if self.publish else None}


@dataclass(frozen=True)
class ServeConfig:
    path: Path | None
    rigs: dict[str, RigConfig] = field(default_factory=dict)
    engine: Path | None = None
    #: None: 1 on a CPU engine (batches buy no speed there, only memory), 4 on a GPU.
    max_batch: int | None = None
    batch_wait_ms: float = 20.0
    recordings: Path = Path("recordings")
    #: Length of a recording's segments, and how long segments are kept.
    segment_s: float = 60.0
    keep_hours: float = 24.0
    #: Per rig, the most its segments may take (GB); the oldest go first. None: no limit.
    keep_gb: float | None = None
    #: A URL that gets a JSON POST when a rig goes down or comes back.
    webhook: str | None = None
    #: Threads per camera stream's decoder; 0: FFmpeg's own, one per core for every stream. On 2
    #: cores, 4 rigs fused 10% fewer frames with 1 than with FFmpeg's own (benchmarks/README.md,
    #: "Serving: decoder threads"); on many cores with many rigs, 1 or 2 bounds the thread count.
    decoder_threads: int = 0
    #: serve --ray: the most rigs one engine worker takes; beyond the cluster's room rigs wait.
    rigs_per_engine: int = 8


class ConfigError(InputError):
    """A rigs file (or an API request's rig) that cannot be served; the message names where."""


def load(path: str | Path) -> ServeConfig:
    """The rigs file at ``path``, validated; ``ConfigError`` names the file, line and key of a problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the rigs file {path}: {exc.strerror}; give the path of a TOML file") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    where = _Locator(path, text)
    unknown = sorted(set(data) - {"serve", "rigs"})
    if unknown:
        raise ConfigError(f"{where.key((), unknown[0])}: unknown table or key '{unknown[0]}'; the file has [serve] "
                          "and [rigs.NAME] tables")
    serve = data.get("serve", {})
    _check_table(serve, SERVE_KEYS, where, ("serve",))
    rigs_table = data.get("rigs", {})
    if not isinstance(rigs_table, dict):
        raise ConfigError(f"{where.key((), 'rigs')}: 'rigs' must hold tables, [rigs.NAME]")
    # Absolute: the paths are opened by processes whose working folder is not this one (serve --ray's
    # engine workers), and by threads long after the file was read.
    base = path.absolute().parent
    rigs = {name: rig_from(name, table, base, where) for name, table in rigs_table.items()}
    max_batch = serve.get("max_batch")
    if max_batch is not None and max_batch < 1:
        raise ConfigError(f"{where.key(('serve',), 'max_batch')}: max_batch must be at least 1")
    rigs_per_engine = serve.get("rigs_per_engine", 8)
    if rigs_per_engine < 1:
        raise ConfigError(f"{where.key(('serve',), 'rigs_per_engine')}: rigs_per_engine must be at least 1")
    decoder_threads = serve.get("decoder_threads", 0)
    if decoder_threads < 0:
        raise ConfigError(f"{where.key(('serve',), 'decoder_threads')}: decoder_threads must be 0 (FFmpeg's own "
                          "choice) or more")
    return ServeConfig(path, rigs, engine=_path(serve.get("engine"), base), max_batch=max_batch,
                       batch_wait_ms=float(serve.get("batch_wait_ms", 20.0)),
                       recordings=_path(serve.get("recordings"), base) or base / "recordings",
                       segment_s=float(serve.get("segment_s", 60.0)), keep_hours=float(serve.get("keep_hours", 24.0)),
                       keep_gb=float(serve["keep_gb"]) if "keep_gb" in serve else None,
                       webhook=_expand(serve["webhook"], where, ("serve",), "webhook") if "webhook" in serve else None,
                       decoder_threads=decoder_threads, rigs_per_engine=rigs_per_engine)


def rig_from(name: str, table: Any, base: Path, where: _Locator | None = None, expand: bool = True) -> RigConfig:
    """One rig from its table (a file's ``[rigs.NAME]`` or an API request's JSON), validated.

    ``expand=False`` (a rig from the API): ``${...}`` is refused rather than filled in from the
    service's environment, which would let a caller send its secrets to a host of the caller's choice.
    """
    where = where or _Locator(None, "")
    if not expand:
        for key, value in table.items() if isinstance(table, dict) else ():
            if isinstance(value, str) and _VARIABLE.search(value):
                raise ConfigError(f"rig '{name}': '{key}' names ${{...}}: variables are filled in from the rigs "
                                  "file only; give the value itself, or add the rig to the file and reload (SIGHUP)")
    if not NAME.match(name):
        raise ConfigError(f"{where.table(('rigs', name))}: rig name {name!r}: use letters, digits, '-' and '_' "
                          "(it names metrics, folders and URLs)")
    if not isinstance(table, dict):
        raise ConfigError(f"{where.table(('rigs', name))}: rig '{name}' must be a table of keys")
    _check_table(table, RIG_KEYS, where, ("rigs", name))
    for key in REQUIRED_RIG_KEYS:
        if key not in table:
            raise ConfigError(f"{where.table(('rigs', name))}: rig '{name}' needs '{key}' (a stream URL, camera:N "
                              "or a file)")
    values = {key: _expand(table[key], where, ("rigs", name), key) for key in REQUIRED_RIG_KEYS}
    fps = table.get("fps")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"{where.key(('rigs', name), 'fps')}: fps must be above 0 (got {fps})")
    publish = table.get("publish")
    if publish is not None and not publish.lower().startswith(("rtsp://", "rtsps://")):
        raise ConfigError(f"{where.key(('rigs', name), 'publish')}: publish takes an rtsp:// URL (an RTSP server "
                          "such as MediaMTX that takes pushed streams)")
    return RigConfig(name, values["infrared"], values["visible"], align=_path(table.get("align"), base),
                     fps=float(fps) if fps is not None else None, record=bool(table.get("record", False)),
                     publish=_expand(publish, where, ("rigs", name), "publish") if publish else None)


def _check_table(table: Any, keys: dict[str, Any], where: _Locator, at: tuple[str, ...]) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where.table(at)}: [{'.'.join(at)}] must be a table")
    for key, value in table.items():
        if key not in keys:
            raise ConfigError(f"{where.key(at, key)}: unknown key '{key}' in [{'.'.join(at)}]; known: "
                              f"{', '.join(keys)}")
        wanted = keys[key]
        if (isinstance(value, bool) and wanted is not bool) or not isinstance(value, wanted):
            names = " or ".join(t.__name__ for t in (wanted if isinstance(wanted, tuple) else (wanted,)))
            raise ConfigError(f"{where.key(at, key)}: '{key}' must be {names.replace('str', 'a string')}, got "
                              f"{type(value).__name__}")


def _expand(value: str, where: _Locator, at: tuple[str, ...], key: str) -> str:
    """``${NAME}`` from the environment, ``${file:PATH}`` from a secret file's first line."""

    def one(match: re.Match[str]) -> str:
        ref = match.group(1)
        if ref.startswith("file:"):
            secret = Path(ref[5:])
            try:
                lines = secret.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ConfigError(f"{where.key(at, key)}: cannot read the secret file {secret}: "
                                  f"{exc.strerror}") from exc
            return lines[0].strip() if lines else ""
        if ref not in os.environ:
            raise ConfigError(f"{where.key(at, key)}: the environment has no {ref} (the value names ${{{ref}}}); set "
                              "it in the service's environment")
        return os.environ[ref]

    return _VARIABLE.sub(one, value)


def _path(value: str | None, base: Path) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


class _Locator:
    """Where a table or key is written in the file: ``rigs.toml:12 (rigs.gate.fps)``."""

    def __init__(self, path: Path | None, text: str) -> None:
        self.path = path
        self._tables: dict[tuple[str, ...], int] = {}
        self._keys: dict[tuple[tuple[str, ...], str], int] = {}
        current: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            header = re.match(r"^\[([^\[\]]+)\]", stripped)
            if header:
                current = tuple(part.strip().strip('"') for part in header.group(1).split("."))
                self._tables.setdefault(current, number)
                continue
            key = re.match(r'^"?([A-Za-z0-9_-]+)"?\s*=', stripped)
            if key:
                self._keys.setdefault((current, key.group(1)), number)

    def _at(self, number: int | None, what: str) -> str:
        if self.path is None:
            return what
        return f"{self.path}:{number} ({what})" if number else f"{self.path} ({what})"

    def table(self, at: tuple[str, ...]) -> str:
        return self._at(self._tables.get(at), ".".join(at))

    def key(self, at: tuple[str, ...], key: str) -> str:
        number = self._keys.get((at, key)) or self._tables.get((*at, key))
        return self._at(number, ".".join((*at, key)))
