"""``occo-deploy check``: lint an ONNX artifact against what its target backend accepts, without it.

Polygraphy's ``check lint`` idea for our graphs. Each backend brings its own rules in its spec
(``BackendSpec.check``, ``occo_deploy/backends/*.py``): TensorRT's are encoded from onnx-tensorrt and
checked on the ONNX it would parse, since TensorRT cannot run here; ONNX Runtime and OpenVINO ask the
library itself (a session is created; OpenVINO's ``query_model`` lists what its CPU plugin takes).
What is common lives here: the ONNX checker, the engine I/O contract every target checks and the
report; the graph view the rules read and their findings are ``interface.checks``. Findings name the
node; errors mean the backend would refuse the graph. onnx is imported only when a model is checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from occo_deploy import backends
from occo_deploy.contract import FUSED, INFRARED, RANGE, STRETCH, VISIBLE
from occo_deploy.errors import InputError, MissingDependencyError, first_line, option
from occo_deploy.interface.checks import CheckInput, Finding, Graph, type_name
from occo_deploy.sidecar import Sidecar, read_sidecar

if TYPE_CHECKING:
    import onnx

_UINT8 = 2
_FLOAT = 1
_IO_TYPES = {VISIBLE: (_UINT8, 4), INFRARED: (_UINT8, 3)}


@dataclass
class CheckReport:
    artifact: Path
    targets: list[str]
    findings: list[Finding]
    notes: list[str]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def passed(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {"artifact": str(self.artifact), "targets": self.targets, "passed": self.passed,
                "errors": len(self.errors), "warnings": len(self.warnings),
                "findings": [f.__dict__ for f in self.findings], "notes": self.notes}


# -- I/O contract (every target) ------------------------------------------------------------------
def _contract(g: Graph, target: str) -> Iterable[Finding]:
    for name, (dtype, rank) in _IO_TYPES.items():
        value = g.inputs.get(name)
        if value is None:
            yield Finding("error", target, name, "", "missing input: not an occo-deploy model (export one with "
                                                     "occo-deploy export CHECKPOINT)")
            continue
        t = value.type.tensor_type
        if t.elem_type != dtype or len(t.shape.dim) != rank:
            yield Finding("error", target, name, "", f"input is {type_name(t.elem_type)} rank "
                                                     f"{len(t.shape.dim)}; the contract is UINT8 rank {rank}")
    out = g.outputs.get(FUSED)
    if out is None or out.type.tensor_type.elem_type != _UINT8:
        yield Finding("error", target, FUSED, "", "output 'fused' (UINT8 N x H x W x 3) missing")
    # The stretch's steering: both or neither (an export made before it runs per frame).
    stretch, ranges = g.inputs.get(STRETCH), g.outputs.get(RANGE)
    if (stretch is None) != (ranges is None):
        yield Finding("error", target, STRETCH if stretch is None else RANGE, "",
                      "the stretch's steering needs input 'stretch' (FLOAT N x 4) and output 'range' (FLOAT N x 2) "
                      "together; re-export with occo-deploy export")
    for name, value in ((STRETCH, stretch), (RANGE, ranges)):
        t = None if value is None else value.type.tensor_type
        if t is not None and (t.elem_type != _FLOAT or len(t.shape.dim) != 2):
            yield Finding("error", target, name, "", f"'{name}' must be FLOAT rank 2; re-export with occo-deploy "
                                                     "export")


def targets() -> list[str]:
    """The backends that have rules to check, in the registry's order."""
    return [spec.name for spec in backends.specs() if spec.check is not None]


def default_targets(sidecar: Sidecar | None) -> list[str]:
    """What an artifact is for: its sidecar's target (``--onnx-only``), backend or provider; else
    every target (the FP32 export)."""
    meta = sidecar or {}
    known = targets()
    for key in ("target", "backend"):
        if meta.get(key) in known:
            return [str(meta[key])]
    if meta.get("provider"):
        spec = backends.by_provider(str(meta["provider"]), strict=False)
        if spec is not None and spec.name in known:
            return [spec.name]
    return known


def check_model(model: onnx.ModelProto, chosen: Iterable[str], *, path: Path | None = None,
                options: Mapping[str, Any] | None = None) -> list[Finding]:
    """Findings for a model; the library-backed targets need ``path`` (the file on disk)."""
    return _run(model, list(chosen), path, options or {}, skip_missing=False)[0]


def _run(model: onnx.ModelProto, chosen: list[str], path: Path | None, options: Mapping[str, Any],
         skip_missing: bool) -> tuple[list[Finding], list[str], list[str]]:
    """(findings, targets checked, notes). With ``skip_missing`` a target whose library is not
    installed is left out and said so, instead of failing the whole check."""
    import onnx

    given = {k: v for k, v in options.items() if v is not None}
    for name in given:  # an option the chosen targets' rules do not take is refused, never dropped
        if not any(name in spec.check_options for t in chosen if (spec := backends.get(t, strict=False))):
            takers = backends.option_takers(name, "check")
            also = f", or check for {option('target', takers[0].name)}" if takers else ""
            raise InputError(f"{option(name)} does not apply: this check is for {', '.join(chosen)}, and only "
                             f"{', '.join(s.name for s in takers) or 'no backend'} checks take it; drop it{also}")
    source = CheckInput(model, Graph(model), path, given)
    findings: list[Finding] = []
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        findings.append(Finding("error", "onnx", "model", "", f"ONNX checker: {first_line(exc)[:200]}"))
    checked: list[str] = []
    notes: list[str] = []
    for target in chosen:
        spec = backends.get(target, strict=False)
        if spec is None or spec.check is None:
            raise InputError(f"unknown check target {target!r}; use one of {', '.join(targets())}")
        try:
            found = list(spec.check(source))
        except MissingDependencyError as exc:
            if not skip_missing:
                raise
            notes.append(f"{target}'s check skipped: {exc}")
            continue
        findings.extend(_contract(source.graph, target))
        findings.extend(found)
        checked.append(target)
    return findings, checked, notes


def check_artifact(path: Path, chosen: list[str] | None = None, options: Mapping[str, Any] | None = None
                   ) -> CheckReport:
    """Lint the ONNX at ``path`` for the ``chosen`` targets (default: what its sidecar says it is for,
    leaving out, and noting, a target whose library is not installed here)."""
    import onnx

    if not path.is_file():
        raise InputError(f"not found: {path}; check an exported .onnx or a built ONNX engine")
    spec = backends.for_suffix(path)
    if spec is not None and spec.reads != "onnx":
        raise InputError(f"{path.name} is a {spec.title} {spec.reads}, which only {spec.title} can read; check the "
                         f"ONNX it was built from (occo-deploy build --backend {spec.name} --onnx-only writes it)")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise InputError(f"{path} is not an ONNX file ({type(exc).__name__})") from exc
    picked = chosen or default_targets(read_sidecar(path))
    findings, checked, notes = _run(model, picked, path, options or {}, skip_missing=chosen is None)
    for target in checked:
        about = backends.get(target).check_source
        if about is not None:
            notes.append(about())
    return CheckReport(path, checked, findings, notes)
