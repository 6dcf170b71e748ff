"""Which CPU classes an engine's quality gate measured, and what to tell a user who runs it elsewhere.

The same INT8 engine computes differently on CPUs whose INT8 arithmetic differs (``runtime.cpu``:
int16 pair sums that saturate on AVX2, exact int32 sums with VNNI and AMX, BF16 only on some), so a
gate passed on one class says nothing certain about another: the OpenVINO INT8 engine that scored
38.0 dB on an AVX2 EPYC scored 33.6 dB on an AVX-512 VNNI one, same frames. The build records its
CPU class in the sidecar's ``quality``; ``occo-deploy check ENGINE --requalify`` (``engines.qualify.
requalify``) adds one entry per class to ``requalified``.
"""

from __future__ import annotations

from pathlib import Path

from occo_deploy.errors import cli_names
from occo_deploy.runtime.cpu import cpu_class, describe_class
from occo_deploy.sidecar import Gate, Sidecar

#: Precisions whose results depend on the CPU class (FP32 is the same everywhere, to rounding).
CLASS_DEPENDENT = ("int8", "bf16")


def gated_classes(sidecar: Sidecar | None) -> dict[str, Gate]:
    """CPU class -> the gate measured there (the build's, then any requalification), for engines
    whose gate recorded one."""
    found: dict[str, Gate] = {}
    quality = (sidecar or {}).get("quality") or {}
    if quality.get("cpu_class"):
        found[str(quality["cpu_class"])] = quality
    for name, gate in ((sidecar or {}).get("requalified") or {}).items():
        found[str(name)] = gate
    return found


def requalify_command(artifact: Path) -> str:
    if cli_names():
        return f"occo-deploy check {artifact} --requalify"
    return f"occo_deploy.engines.qualify.requalify({str(artifact)!r})"


def gate_notice(artifact: Path, sidecar: Sidecar | None) -> str | None:
    """One line when this CPU's class is not one the engine's gate passed on; None otherwise (or for
    an engine whose results do not depend on the class, or that recorded none)."""
    if (sidecar or {}).get("precision") not in CLASS_DEPENDENT:
        return None
    classes = gated_classes(sidecar)
    if not classes:
        return None
    here = cpu_class()
    gate = classes.get(here)
    if gate is not None and gate.get("passed", True):
        return None
    if gate is not None:
        return (f"{artifact.name} failed its quality gate on this CPU class ({describe_class(here)}: worst "
                f"{gate.get('psnr_min')} dB, gate {gate.get('min_psnr')} dB); rebuild it on this machine")
    measured = ", ".join(describe_class(c) for c in classes)
    return (f"{artifact.name} was quality-gated on {measured} CPUs, not on this one ({describe_class(here)}), "
            f"whose {sidecar.get('precision', '').upper() if sidecar else ''} arithmetic differs; check it here "
            f"with: {requalify_command(artifact)}")
