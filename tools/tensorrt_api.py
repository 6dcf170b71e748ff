"""Regenerate ``tests/data/tensorrt_api/tensorrt-<version>.json``: TensorRT's Python API, read from its wheels.

    python tools/tensorrt_api.py 10.16.1.11 11.4.0.106

No machine of this project can run TensorRT, but NVIDIA's Python bindings are small wheels on PyPI
(``tensorrt-cu12-bindings`` for 10.x, ``tensorrt-cu13-bindings`` for 11.x). Their extension module
needs libnvinfer only for a handful of C entry points (``createInferBuilder_INTERNAL`` and the
like), so this script links it against stand-ins that define those symbols and do nothing, imports
it in a child process, and writes down what pybind11 says of every class: method signatures,
properties with their types, enum members. Nothing TensorRT does is run or stubbed in the package;
the stand-ins exist only inside this script's temporary folder.

``tests/test_api_conformance.py`` checks every TensorRT call occo-deploy makes against these files.
Needs pip (to download the wheels), gcc and nm.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "tensorrt_api"
PACKAGE = {10: "tensorrt-cu12-bindings", 11: "tensorrt-cu13-bindings"}
_SYSTEM = re.compile(r"^(_Z|Py|_Py|__|_ITM|GLIBC|dl|pthread)|@")

# Runs in the child process: introspect the imported bindings and print JSON.
_DUMP = r'''
import inspect, json, sys
import tensorrt_bindings as trt

def first_lines(doc):
    if not doc:
        return []
    lines = [l.strip() for l in doc.strip().splitlines()]
    if any(l.startswith("Overloaded function") for l in lines[:2]):
        return [l.split(". ", 1)[1] for l in lines if l[:1].isdigit() and ". " in l and "(" in l]
    return [lines[0]] if "(" in lines[0] else []

nested = {}

def member(cls, name, value):
    if isinstance(value, type) and value.__module__.startswith("tensorrt"):
        nested[value.__qualname__] = value
        return {"kind": "class", "ref": value.__qualname__}
    if isinstance(value, property):
        sig = first_lines(value.fget.__doc__ if value.fget else "")
        return {"kind": "property", "type": sig[0].split("->")[-1].strip() if sig else None,
                "writable": value.fset is not None}
    if hasattr(type(value), "__members__") and isinstance(value, type(value)) and type(value) is cls:
        return {"kind": "enum_value"}
    if callable(value):
        return {"kind": "method", "signatures": first_lines(getattr(value, "__doc__", ""))}
    return {"kind": "attribute", "type": type(value).__name__}

def describe(cls):
    members = {}
    for name in dir(cls):
        if name.startswith("__") and name != "__init__":
            continue
        if name.startswith("_pybind11"):
            continue
        try:
            value = inspect.getattr_static(cls, name)
        except AttributeError:
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = getattr(cls, name)
        members[name] = member(cls, name, value)
    out = {"bases": [b.__name__ for b in cls.__mro__[1:] if b.__module__.startswith("tensorrt")],
           "members": members}
    if hasattr(cls, "__members__"):
        out["enum"] = sorted(cls.__members__)
    return out

api = {"version": trt.__version__, "classes": {}, "functions": {}, "values": {}}
for name, value in sorted(vars(trt).items()):
    if name.startswith("_"):
        continue
    if isinstance(value, type):
        api["classes"][name] = describe(value)
    elif callable(value) and getattr(value, "__module__", "").startswith("tensorrt"):
        api["functions"][name] = first_lines(value.__doc__)
    elif type(value).__module__.startswith("tensorrt"):
        api["values"][name] = type(value).__qualname__
while set(nested) - set(api["classes"]):
    for qualname in sorted(set(nested) - set(api["classes"])):
        api["classes"][qualname] = describe(nested[qualname])
text = json.dumps(api, indent=0, sort_keys=True)
sys.stdout.write(text.replace("tensorrt_bindings.tensorrt.", ""))
'''


def _run(*cmd: str, **kw: object) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout  # type: ignore[call-overload]


def extract(version: str, work: Path) -> dict[str, Any]:
    major = int(version.split(".")[0])
    _run(sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
         f"{PACKAGE[major]}=={version}", "-d", str(work))
    wheel = next(work.glob(f"{PACKAGE[major].replace('-', '_')}-{version}-*.whl"))
    site = work / f"site-{version}"
    zipfile.ZipFile(wheel).extractall(site)
    module = site / "tensorrt_bindings" / "tensorrt.so"
    needed = [line.split()[-1].strip("[]") for line in _run("readelf", "-d", str(module)).splitlines()
              if "(NEEDED)" in line]
    missing = [lib for lib in needed if lib.startswith("libnv")]
    symbols = sorted({line.split()[-1] for line in _run("nm", "-D", "--undefined-only", str(module)).splitlines()
                      if line.split()[0] == "U" and not _SYSTEM.search(line.split()[-1])})
    stub_dir = work / f"stubs-{version}"
    stub_dir.mkdir()
    source = stub_dir / "stub.c"
    # Entry points only: the bindings take no more from libnvinfer at import time. Nothing calls them.
    source.write_text("".join(f"void *{s}(void) {{ return 0; }}\n" for s in symbols))
    for lib in missing:
        _run("gcc", "-shared", "-fPIC", "-o", str(stub_dir / lib), str(source))
    env = {**os.environ, "LD_LIBRARY_PATH": str(stub_dir), "PYTHONPATH": str(site)}
    api = json.loads(_run(sys.executable, "-c", _DUMP, env=env))
    api["source"] = f"{PACKAGE[major]}=={version} (PyPI), pybind11 signatures read by tools/tensorrt_api.py"
    return api


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("versions", nargs="+", help="bindings versions, e.g. 10.16.1.11 11.4.0.106")
    args = ap.parse_args()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="trt-api-") as tmp:
        for version in args.versions:
            work = Path(tmp) / version
            work.mkdir()
            api = extract(version, work)
            out = OUT_DIR / f"tensorrt-{api['version']}.json"
            out.write_text(json.dumps(api, indent=0, sort_keys=True) + "\n")
            print(f"TensorRT {api['version']}: {len(api['classes'])} classes -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
