"""The backend registry: one line per backend module, and every question the package asks of backends.

Each module in ``MODULES`` ends with ``SPEC``, a ``BackendSpec`` (``spec.py``) declaring what it
reads, the providers it serves, its extra, builder, runner, memory lines and check rules. Nothing
else in the package names a backend: ``Fuser`` opens what ``resolve`` picks, ``build`` takes the
builder ``builder_for`` picks, ``check`` runs the specs' rules, the memory estimate reads
``memory_model`` and the CLI's help lists ``providers()`` and ``builders()``.

Modules are imported at the first question, not at ``import occo_deploy``; a spec module imports its
library (ONNX Runtime, OpenVINO, TensorRT, cuda-python) only when its runner or builder runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from occo_deploy.errors import EngineError, InputError, option
from occo_deploy.interface.spec import BackendSpec
from occo_deploy.sidecar import Sidecar

if TYPE_CHECKING:
    from occo_deploy.runtime.backend import Backend
    from occo_deploy.runtime.memory import MemoryModel

__all__ = [
    "MODULES",
    "BackendSpec",
    "builder_for",
    "builders",
    "by_provider",
    "declared_options",
    "describe",
    "for_suffix",
    "get",
    "memory_model",
    "missing_hint",
    "open_backend",
    "option_takers",
    "providers",
    "reference_backend",
    "refuse_options",
    "register",
    "resolve",
    "specs",
]

#: The registry: one line per backend, in the order help texts list them.
MODULES = (
    "occo_deploy.backends.onnxruntime_cpu",
    "occo_deploy.backends.openvino",
    "occo_deploy.backends.onnxruntime_gpu",
    "occo_deploy.backends.tensorrt",
)

_SPECS: dict[str, BackendSpec] = {}
_loaded = False


def _load() -> dict[str, BackendSpec]:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in MODULES:
            _add(importlib.import_module(module).SPEC)
    return _SPECS


def _add(spec: BackendSpec) -> None:
    taken = {p: s.name for s in _SPECS.values() for p in s.providers if s.name != spec.name}
    clash = [p for p in spec.providers if p in taken]
    if clash:
        raise ValueError(f"provider {clash[0]!r} of backend {spec.name!r} is already {taken[clash[0]]!r}'s")
    _SPECS[spec.name] = spec


def register(spec: BackendSpec) -> None:
    """Add a backend at run time (a plugin, a benchmark's test backend) after the built-in ones; its
    providers must be new. A backend of the package itself is a line in ``MODULES`` instead."""
    _load()
    _add(spec)


def specs() -> list[BackendSpec]:
    """Every registered backend, in the registry's order."""
    return list(_load().values())


@overload
def get(name: str, strict: Literal[True] = ...) -> BackendSpec: ...
@overload
def get(name: str, strict: bool) -> BackendSpec | None: ...
def get(name: str, strict: bool = True) -> BackendSpec | None:
    """The backend called ``name``; an ``InputError`` listing the names, or None when not ``strict``."""
    spec = _load().get(name)
    if spec is None and strict:
        raise InputError(f"unknown backend {name!r}; use one of {', '.join(_load())}")
    return spec


def providers() -> dict[str, str]:
    """Every ``--provider`` value and what it runs on, in the registry's order."""
    return {p: what for s in specs() for p, what in s.providers.items()}


@overload
def by_provider(provider: str, strict: Literal[True] = ...) -> BackendSpec: ...
@overload
def by_provider(provider: str, strict: bool) -> BackendSpec | None: ...
def by_provider(provider: str, strict: bool = True) -> BackendSpec | None:
    """The backend serving ``provider``; an ``InputError`` listing the providers, or None when not ``strict``."""
    spec = next((s for s in specs() if provider in s.providers), None)
    if spec is None and strict:
        raise InputError(f"unknown {option('provider')} {provider!r}; use one of {', '.join(providers())}")
    return spec


def builders() -> list[BackendSpec]:
    """The backends that build engines (``build --backend``)."""
    return [s for s in specs() if s.builder is not None]


def for_suffix(artifact: Path) -> BackendSpec | None:
    """The default backend for the artifact format its file suffix means, if any."""
    suffix = artifact.suffix.lower()
    matches = [s for s in specs() if suffix in s.suffixes]
    return next((s for s in matches if s.default_for_format), matches[0] if matches else None)


def artifact_format(artifact: Path, sidecar: Mapping[str, Any] | None) -> str:
    """The artifact's format from its sidecar, else from its suffix."""
    if sidecar and sidecar.get("format"):
        return str(sidecar["format"])
    spec = for_suffix(artifact)
    return spec.reads if spec is not None else artifact.suffix.lower().lstrip(".")


def resolve(artifact: Path, sidecar: Mapping[str, Any] | None, provider: str | None) -> tuple[BackendSpec, str]:
    """(backend, provider) for this artifact: the provider asked for, else the sidecar's, else the
    default for its format; an error that lists what exists when none fits."""
    fmt = artifact_format(artifact, sidecar)
    readers = [s for s in specs() if s.reads == fmt]
    if provider is None:
        provider = (sidecar or {}).get("provider")
        if provider is None:
            default = next((s for s in readers if s.default_for_format), None)
            if default is None:
                known = ", ".join(sorted({suffix for s in specs() for suffix in s.suffixes}))
                raise EngineError(f"{artifact.name}: no backend runs '{fmt}' artifacts (known: {known}); "
                                  "pass an exported .onnx or a built engine")
            return default, default.provider
    spec = by_provider(provider)
    if spec.reads != fmt:
        here = [p for s in readers for p in s.providers]
        via = "; for the CPU, fuse the .onnx it was built from" if fmt != "onnx" else ""
        raise EngineError(f"a .{fmt} artifact runs on {option('provider')} {' or '.join(here) or 'none'}, not "
                          f"{provider!r} ({spec.providers[provider]}){via}")
    return spec, provider


def open_backend(artifact: Path, sidecar: Sidecar | None, provider: str | None, threads: int | None,
                 options: Mapping[str, Any] | None = None) -> tuple[BackendSpec, Backend]:
    """(spec, open runner) for ``artifact``: ``resolve``, then the spec's runner; an option that
    runner does not take is refused first, naming the backends that do."""
    spec, chosen = resolve(artifact, sidecar, provider)
    refuse_options(spec, {"threads": threads, **(options or {})}, "run", artifact.name)
    return spec, spec.runner(artifact, sidecar, chosen, threads, options)


def refuse_options(spec: BackendSpec, given: Mapping[str, Any], stage: Literal["run", "build"],
                   artifact: str | None = None) -> None:
    """An ``InputError`` for the first option given (not None or False) that ``spec``'s runner (stage
    "run") or builder ("build") does not declare, naming the backends that take it: an option is
    honoured or refused, never dropped."""
    for name, value in given.items():
        if value is None or value is False or name in declared_options(spec, stage):
            continue
        takers = option_takers(name, stage)
        what = declared_options(takers[0], stage)[name] if takers else ""
        kind = "engines" if stage == "run" else "builds"
        only = f"only {', '.join(s.name for s in takers)} {kind} take it ({what})" if takers else "no backend takes it"
        if stage == "run":
            raise InputError(f"{option(name)} does not apply: {artifact or 'this engine'} runs on {spec.name}, and "
                             f"{only}; drop it")
        build_with = f", or build with {option('backend', takers[0].name)}" if takers else ""
        raise InputError(f"{option(name)} does not apply to a {spec.name} build: {only}; drop it{build_with}")


def option_takers(name: str, stage: Literal["run", "build", "check"]) -> list[BackendSpec]:
    """The backends whose runner (builder, check rules) declares option ``name``: help texts group
    options by them."""
    return [s for s in specs() if name in declared_options(s, stage)]


def declared_options(spec: BackendSpec, stage: Literal["run", "build", "check"]) -> Mapping[str, str]:
    """The options ``spec``'s runner ("run"), builder ("build") or check rules ("check") take, with
    what each does."""
    return {"run": spec.run_options, "build": spec.build_options, "check": spec.check_options}[stage]


def reference_backend(artifact: Path) -> Backend:
    """The gates' yardstick: a runner computing what the precision ONNX ``artifact`` states, on any
    CPU (the backend whose spec offers ``reference``)."""
    spec = next((s for s in specs() if s.reference is not None), None)
    if spec is None or spec.reference is None:
        raise EngineError("no registered backend offers a reference runner (ONNX Runtime's is built in)")
    return spec.reference(artifact)


def builder_for(requested: str) -> tuple[BackendSpec, str]:
    """(backend, why) for ``build --backend``: the one named, or for ``auto`` the first backend by rank
    whose builder can run here (TensorRT where it and a GPU are, else ONNX Runtime)."""
    if requested != "auto":
        spec = get(requested, strict=False)
        if spec is None or spec.builder is None:
            raise InputError(f"unknown backend {requested!r} to build for; use auto, "
                             f"{', '.join(s.name for s in builders())}")
        return spec, "as asked"
    ranked = sorted((s for s in builders() if s.auto_rank is not None), key=lambda s: s.auto_rank or 0)
    skipped: list[str] = []
    for spec in ranked:
        reason = spec.make_builder().unavailable()
        if reason is None:
            return spec, "; ".join(skipped) if skipped else f"{spec.title} is usable here"
        # The reason's own trailing detail (the import error) would nest a third pair of brackets.
        skipped.append(f"{spec.title} not usable here: {reason.split(' (')[0]}")
    raise InputError("no backend can build here: " + "; ".join(skipped))


def memory_model(spec: BackendSpec, precision: str) -> MemoryModel | None:
    """The ``runtime.memory.MemoryModel`` of this backend's ``precision`` engines, or None for a backend
    host memory does not bound. A precision nobody measured takes the steepest line of any engine."""
    from occo_deploy.runtime.memory import MemoryModel

    if spec.memory is None:
        return None
    lines = spec.memory.get(precision)
    if not lines:  # the steepest line measured on any engine, for every size: conservative
        _, base, slope = max((line for s in specs() if s.memory for ls in s.memory.values() for line in ls),
                             key=lambda line: line[2])
        lines = ((float("inf"), base, slope),)
    # The leanest other backend that builds engines, if it needs far less per pixel than this one.
    slope = max(x[2] for x in lines)
    others = [(min(max(x[2] for x in ls) for ls in s.memory.values()), s) for s in specs()
              if s.memory and s.builder is not None and s is not spec]
    leaner = None
    if others:
        best_slope, best = min(others, key=lambda pair: pair[0])
        if best_slope < 0.75 * slope:
            leaner = f"an {best.title} engine (build --backend {best.name}), which needs far less"
    return MemoryModel(f"{spec.name} {precision}", tuple(lines), leaner)


def missing_hint(engine: Path) -> str:
    """The command that makes a missing engine of this kind."""
    spec = for_suffix(engine)
    if spec is not None and spec.missing_hint:
        return spec.missing_hint
    # The default names say what built them: engines/occo_<precision>_<backend>[_<shape>]<suffix>.
    words = engine.stem.split("_")
    precision = next((w for w in words if w in ("fp32", "fp16", "bf16", "int8")), None)
    backend = next((w for w in words if w in {s.name for s in builders()}), None)
    if precision is not None:
        flags = f"--{precision}" + (f" --backend {backend}" if backend else "")
        return f"build one with: occo-deploy build {flags} (from export/occo.onnx)"
    return "make one with: occo-deploy export CHECKPOINT (or --demo)"


def describe(artifact: Path, provider: str | None = None) -> dict[str, Any]:
    """What a report says about an engine without opening it (a driver that leaves the running to
    workers): artifact, backend, provider, precision, as ``Backend.describe`` has them."""
    from occo_deploy.sidecar import read_sidecar

    sidecar = read_sidecar(artifact)
    spec, chosen = resolve(artifact, sidecar, provider)
    return {"backend": spec.name, "provider": chosen, "artifact": str(artifact),
            "precision": (sidecar or {}).get("precision", "unknown")}
