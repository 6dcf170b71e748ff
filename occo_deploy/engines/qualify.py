"""``occo-deploy check ENGINE --requalify``: an engine's quality gate again, on this machine's CPU.

An INT8 or BF16 engine's results depend on the CPU class (``runtime.cpu.cpu_class``), so a gate
passed where it was built says nothing certain about another class. This re-runs the same gate
(the frames the build held out, chosen again from the same folder and seed, against the FP32 export
it was built from) with the engine as it runs here, and records the result per class in the
sidecar's ``requalified``; loading the engine on a class it passed on then says nothing more.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

from occo_deploy import backends, log
from occo_deploy.engines.gate import DEFAULT_MIN_PSNR, GateResult, compare
from occo_deploy.errors import EngineError, InputError, option
from occo_deploy.files import sha256_file
from occo_deploy.progress import Progress
from occo_deploy.runtime.cpu import cpu_class, cpu_description
from occo_deploy.sidecar import Sidecar, read_sidecar, write_sidecar

logger = log.get("engines")


@dataclass
class Requalified:
    engine: Path
    gate: GateResult
    #: The CPU classes the engine has passed on, this one included when it passed.
    passed_on: list[str]


def _reference(sidecar: Sidecar, given: Path | None) -> Path:
    """The FP32 export the engine was built from (unchanged), or the one the caller names."""
    if given is not None:
        if not given.is_file():
            raise InputError(f"reference ONNX not found: {given}")
        return given
    source = sidecar.get("source") or {}
    path = Path(str(source.get("onnx", "")))
    made_from = source.get("made_from") or {}
    if made_from.get("onnx"):  # built from an --onnx-only ONNX: its own FP32 source
        path = Path(str(made_from["onnx"]))
    if not path.is_file():
        raise InputError(f"the FP32 export this engine was built from ({path}) is not here; name it with "
                         f"{option('reference')} PATH")
    return path


def requalify(engine: str | Path, calib: Path | None = None, reference: Path | None = None,
              provider: str | None = None, progress: Progress | None = None) -> Requalified:
    """The engine's gate on this CPU, recorded in its sidecar; an engine below the gate is kept (it
    may pass elsewhere) and the caller decides what failing means."""
    engine = Path(engine)
    if not engine.is_file():
        raise EngineError(f"engine not found: {engine}")
    sidecar = read_sidecar(engine)
    if not sidecar or sidecar.get("kind") != "engine" or "quality" not in sidecar:
        raise InputError(f"{engine} has no quality gate to run again (not an engine occo-deploy built); "
                         "build it with: occo-deploy build")
    if sidecar.get("sha256") and sidecar["sha256"] != sha256_file(engine):
        raise EngineError(f"{engine} changed after its gate (its sidecar's hash differs); rebuild it")
    quality = sidecar["quality"]
    frames = sidecar.get("gate_frames") or {}
    calibration = sidecar.get("calibration") or {}
    folder = calib or Path(str(frames.get("folder") or "calibration"))
    hw = tuple(frames.get("size_hw") or calibration.get("size_hw") or (480, 640))
    large = tuple(frames.get("large_hw") or quality.get("largest_hw") or hw)
    count = int(frames.get("count") or quality.get("pairs", 5) - 1)
    seed = int(frames.get("seed", calibration.get("seed", 0)))
    from occo_deploy.engines.build import gate_pairs

    if calibration and not folder.is_dir():  # its held-out frames are those its calibration did not see
        raise InputError(f"the pairs this engine was gated on ({folder}) are not here; name the folder with "
                         f"{option('calib')} DIR (the same pairs, or others of the scenes it will see)")
    # The same seeded split as the build's: the same held-out frames (calibration frames stay unused).
    pairs, _ = gate_pairs(folder, False, (int(hw[0]), int(hw[1])), (int(large[0]), int(large[1])), count, seed)
    min_psnr = float(quality.get("min_psnr") or DEFAULT_MIN_PSNR[str(sidecar.get("precision"))])
    with contextlib.closing(backends.reference_backend(_reference(sidecar, reference))) as ref:
        spec, runner = backends.open_backend(engine, sidecar, provider, None)
        with contextlib.closing(runner):
            for notice in runner.notices:
                logger.warning("%s", notice)
            gate = compare(ref, runner, pairs, min_psnr, progress)
    if spec.cpu:
        gate.cpu_class, gate.cpu = cpu_class(), cpu_description()
    record = gate.as_dict()
    record["date"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    key = gate.cpu_class or spec.name
    sidecar.setdefault("requalified", {})[key] = record
    write_sidecar(engine, sidecar, force=True)
    from occo_deploy.runtime.gated import gated_classes

    passed_on = [c for c, g in gated_classes(sidecar).items() if g.get("passed", True)]
    return Requalified(engine, gate, passed_on)
