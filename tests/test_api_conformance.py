"""Every TensorRT and cuda-python call occo-deploy makes, checked against those libraries' own APIs.

TensorRT cannot run here, but its Python bindings' signatures can be read (``tools/tensorrt_api.py``
wrote ``tests/data/tensorrt_api/`` from the 10.x and 11.x wheels). This test walks the package's
source: it follows the objects that come out of ``tensorrt()`` and ``cuda.bindings.runtime`` (by
assignment, by return type, by ``trt.X`` annotations) and checks that every attribute exists in
each TensorRT major the code path serves, that each call's arguments fit one of its signatures,
that TensorRT objects passed as arguments have the declared class, and that enum members exist.
cuda-python installs and imports on a CPU, so its functions are checked against the installed module.

A TensorRT member name used on an object the walker cannot type is an error, so a new call cannot
slip past unchecked: annotate the variable (``x: trt.IBuilderConfig``) instead.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "occo_deploy"
API_DIR = ROOT / "tests" / "data" / "tensorrt_api"
APIS = {int(p.name.split("-")[1].split(".")[0]): json.loads(p.read_text()) for p in sorted(API_DIR.glob("*.json"))}
MAJORS = frozenset(APIS)

# Resolved types: ("trt",) the module, ("trt_class", C), ("trt_obj", C), ("enum", C) an enum member,
# ("cuda",) the runtime module, ("cuda_obj", name) something from it, ("other",) a known non-library type.
T = tuple[str, ...]


def _split_params(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(<":
            depth += 1
        elif ch in "])>":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


@dataclass(frozen=True)
class Signature:
    params: tuple[tuple[str, str, bool], ...]  # name, type, has default
    returns: str

    @classmethod
    def parse(cls, text: str, method: bool) -> Signature:
        m = re.fullmatch(r"\w+\((.*)\)(?: -> (.*))?", text)
        assert m, text
        params = []
        for p in _split_params(m.group(1)):
            name, _, rest = p.partition(":")
            typ, _, default = rest.partition(" = ")
            params.append((name.strip(), typ.strip(), bool(default)))
        if method and params and params[0][0] in ("self", "arg0"):
            params = params[1:]
        return cls(tuple(params), (m.group(2) or "").strip())

    def accepts(self, positional: int, keywords: list[str]) -> bool:
        names = [p[0] for p in self.params]
        if positional > len(names) or any(k not in names[positional:] for k in keywords):
            return False
        return all(has_default or i < positional or name in keywords
                   for i, (name, _, has_default) in enumerate(self.params))


class TrtApi:
    def __init__(self, data: dict[str, Any]) -> None:
        self.version = data["version"]
        self.classes: dict[str, Any] = data["classes"]
        self.functions: dict[str, list[str]] = data["functions"]
        self.values: dict[str, str] = data["values"]

    def member(self, cls: str, name: str) -> dict[str, Any] | None:
        info = self.classes.get(cls)
        if info is None:
            return None
        if name in info["members"]:
            return info["members"][name]  # type: ignore[no-any-return]
        for base in info["bases"]:
            found = self.member(base, name)
            if found:
                return found
        return None

    def class_name(self, type_text: str) -> str | None:
        """A TensorRT class from a signature's type text (``ITimingCache``, ``nvonnxparser::IParserError``)."""
        name = type_text.split("::")[-1].strip()
        for candidate in (name, name[1:] if name.startswith("I") else name):
            if candidate in self.classes:
                return candidate
        return None

    def is_a(self, cls: str, wanted: str) -> bool:
        if cls == wanted:
            return True
        return any(self.is_a(b, wanted) for b in self.classes.get(cls, {}).get("bases", []))


TRT = {major: TrtApi(data) for major, data in APIS.items()}
TRT_MEMBER_NAMES = {name for api in TRT.values() for c in api.classes.values() for name in c["members"]
                    if not name.startswith("_")}


@dataclass
class Walker:
    path: Path
    errors: list[str] = field(default_factory=list)
    checked: set[str] = field(default_factory=set)  # "Class.member" / "cudaFunction" seen and found
    env: dict[str, T] = field(default_factory=dict)  # module-wide: self.x, slot.device["k"]

    def where(self, node: ast.AST) -> str:
        name = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path.name
        return f"{name}:{getattr(node, 'lineno', '?')}"

    def error(self, node: ast.AST, message: str) -> None:
        line = f"{self.where(node)}: {message}"
        if line not in self.errors:  # an expression is resolved once per enclosing expression
            self.errors.append(line)

    # -- types of expressions ---------------------------------------------------------------
    def annotation(self, ann: ast.expr | None) -> T | None:
        if ann is None:
            return None
        text = ast.unparse(ann).strip("'\"")
        if text.startswith("trt."):
            return ("trt_obj", text[4:])
        if text in ("Any", "object"):
            return None
        return ("other",)

    def typeof(self, node: ast.expr, local: dict[str, T], majors: frozenset[int]) -> T | None:
        key = ast.unparse(node)
        if key in local:
            return local[key]
        if key in self.env:
            return self.env[key]
        if isinstance(node, ast.Call):
            return self.call(node, local, majors)
        if isinstance(node, ast.IfExp):  # x if cond else None
            return self.typeof(node.body, local, majors) or self.typeof(node.orelse, local, majors)
        if isinstance(node, ast.Attribute):
            return self.attribute(node, self.typeof(node.value, local, majors), majors)
        return None

    def attribute(self, node: ast.Attribute, owner: T | None, majors: frozenset[int]) -> T | None:
        name = node.attr
        if owner is None:
            return None
        kind = owner[0]
        if kind == "other":
            return owner  # an attribute of a known non-library object is not the library's
        if kind == "trt":
            if name == "__version__":
                return ("other",)
            results = set()
            for major in sorted(majors):
                api = TRT[major]
                if name in api.classes:
                    results.add(("trt_class", name))
                elif name in api.functions:
                    results.add(("trt_func", name))
                elif name in api.values:
                    results.add(("enum", api.values[name]))
                else:
                    self.error(node, f"tensorrt.{name} does not exist in TensorRT {api.version}")
                    return None
            self.checked.add(f"tensorrt.{name}")
            return results.pop() if len(results) == 1 else None
        if kind in ("trt_class", "trt_obj", "enum"):
            cls = owner[1]
            found: T | None = None
            for major in sorted(majors):
                api = TRT[major]
                info = api.classes.get(cls, {})
                member = api.member(cls, name)
                if name in info.get("enum", []):
                    found = ("enum", cls)
                elif member is None:
                    self.error(node, f"{cls}.{name} does not exist in TensorRT {api.version}")
                    return None
                elif member["kind"] == "class":
                    found = ("trt_class", member["ref"])
                elif member["kind"] == "property":
                    target = api.class_name(member["type"] or "")
                    found = ("trt_obj", target) if target else ("other",)
                elif member["kind"] == "attribute":
                    found = ("enum", member["type"]) if api.class_name(member["type"]) else ("other",)
                else:
                    found = ("trt_method", cls, name)
            self.checked.add(f"{cls}.{name}")
            return found
        if kind == "cuda":
            from cuda.bindings import runtime as rt

            if not hasattr(rt, name):
                self.error(node, f"cuda.bindings.runtime.{name} does not exist (cuda-python {_cuda_version()})")
                return None
            self.checked.add(f"cudart.{name}")
            return ("cuda_obj", name)
        if kind == "cuda_obj":
            from cuda.bindings import runtime as rt

            obj = getattr(rt, owner[1], None)
            if obj is None or not hasattr(obj() if owner[1].endswith("Prop") else obj, name):
                self.error(node, f"cuda.bindings.runtime.{owner[1]}.{name} does not exist")
                return None
            self.checked.add(f"cudart.{owner[1]}.{name}")
            return ("other",)
        return None

    def call(self, node: ast.Call, local: dict[str, T], majors: frozenset[int]) -> T | None:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in ("tensorrt", "_tensorrt") or (
                    func.id == "require" and node.args and ast.literal_eval(node.args[0]) == "tensorrt"):
                return ("trt",)
            if func.id == "_runtime":
                return ("cuda",)
            if func.id == "check" and node.args and isinstance(node.args[0], ast.Call):
                inner = self.typeof(node.args[0], local, majors)
                return self.cuda_returns(inner)
            if func.id in ("int", "bool", "str", "len", "memoryview", "bytes", "float"):
                for arg in node.args:
                    self.typeof(arg, local, majors)
                return ("other",)
        callee = self.typeof(func, local, majors)
        positional = len(node.args)
        keywords = [k.arg for k in node.keywords if k.arg]
        arg_types = [self.typeof(a, local, majors) for a in node.args]
        for k in node.keywords:
            self.typeof(k.value, local, majors)
        if callee is None:
            return None
        if callee[0] == "trt_class":
            return self.check_call(node, callee[1], "__init__", positional, keywords, arg_types, majors,
                                   result=("trt_obj", callee[1]))
        if callee[0] == "trt_method":
            return self.check_call(node, callee[1], callee[2], positional, keywords, arg_types, majors)
        if callee[0] == "cuda_obj":
            from cuda.bindings import runtime as rt

            fn = getattr(rt, callee[1])
            try:
                inspect.signature(fn).bind(*range(positional), **{k: None for k in keywords})
            except TypeError as exc:
                self.error(node, f"cudart.{callee[1]}{inspect.signature(fn)} does not take these arguments: {exc}")
            return ("cuda_call", callee[1])
        return None

    def check_call(self, node: ast.Call, cls: str, name: str, positional: int, keywords: list[str],
                   arg_types: list[T | None], majors: frozenset[int], result: T | None = None) -> T | None:
        returns: set[T] = set()
        for major in sorted(majors):
            api = TRT[major]
            member = api.member(cls, name)
            if member is None or member["kind"] != "method":
                self.error(node, f"{cls}.{name} is not callable in TensorRT {api.version}")
                return None
            sigs = [Signature.parse(s, method=True) for s in member["signatures"]]
            fitting = [s for s in sigs if s.accepts(positional, keywords) and self.types_fit(s, arg_types, api)]
            if not fitting:
                self.error(node, f"{cls}.{name} in TensorRT {api.version} takes none of these arguments "
                                 f"({positional} positional, keywords {keywords}); "
                                 f"its signatures: {member['signatures']}")
                return None
            target = api.class_name(fitting[0].returns)
            returns.add(("trt_obj", target) if target else ("other",))
        self.checked.add(f"{cls}.{name}()")
        return result or (returns.pop() if len(returns) == 1 else None)

    @staticmethod
    def types_fit(sig: Signature, arg_types: list[T | None], api: TrtApi) -> bool:
        for (_, typ, _), got in zip(sig.params, arg_types):
            wanted = api.class_name(typ)
            if got is None or wanted is None or got[0] not in ("trt_obj", "enum"):
                continue
            if not api.is_a(got[1], wanted):
                return False
        return True

    @staticmethod
    def cuda_returns(call_type: T | None) -> T | None:
        """What ``check(cudart.f(...))`` returns: f's first value after the error code, from its docstring."""
        if call_type is None or call_type[0] != "cuda_call":
            return None
        from cuda.bindings import runtime as rt

        doc = getattr(rt, call_type[1]).__doc__ or ""
        found = re.findall(r"^\w+ : :py:obj:`~\.(\w+)`", doc.split("Returns\n-------", 1)[-1], re.M)
        return ("cuda_obj", found[0]) if found else ("other",)

    # -- statements ---------------------------------------------------------------------------
    def walk_function(self, fn: ast.FunctionDef, majors: frozenset[int]) -> None:
        local: dict[str, T] = {}
        for arg in fn.args.args + fn.args.kwonlyargs:
            if arg.arg == "trt":
                local["trt"] = ("trt",)
            else:
                t = self.annotation(arg.annotation)
                if t is not None:
                    local[arg.arg] = t
        self.walk_body(fn.body, local, majors)

    def walk_body(self, body: list[ast.stmt], local: dict[str, T], majors: frozenset[int]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.If):
                self.typeof(stmt.test, local, majors)
                self.scan(stmt.test, local, majors)
                yes, no = _branch_majors(stmt.test, majors)
                self.walk_body(stmt.body, local, yes)
                self.walk_body(stmt.orelse, local, no)
                continue
            if isinstance(stmt, (ast.For, ast.While, ast.With, ast.Try)):
                for part in ("iter", "test"):
                    if hasattr(stmt, part):
                        self.scan(getattr(stmt, part), local, majors)
                for item in getattr(stmt, "items", []):
                    self.scan(item.context_expr, local, majors)
                for block in ("body", "orelse", "finalbody"):
                    self.walk_body(getattr(stmt, block, []), local, majors)
                for handler in getattr(stmt, "handlers", []):
                    self.walk_body(handler.body, local, majors)
                continue
            if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
                continue
            if isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                t = self.annotation(stmt.annotation) or self.typeof(stmt.value, local, majors)
                self.scan(stmt.value, local, majors)
                self.bind(stmt.target, t, local)
                continue
            if isinstance(stmt, ast.Assign):
                self.scan(stmt.value, local, majors)
                for target in stmt.targets:
                    if isinstance(target, ast.Tuple) and isinstance(stmt.value, ast.Tuple):
                        for t_el, v_el in zip(target.elts, stmt.value.elts):
                            self.bind(t_el, self.typeof(v_el, local, majors), local)
                    else:
                        self.bind(target, self.typeof(stmt.value, local, majors), local)
                continue
            self.scan(stmt, local, majors)

    def bind(self, target: ast.expr, t: T | None, local: dict[str, T]) -> None:
        if t is None:
            return
        key = ast.unparse(target)
        if isinstance(target, ast.Name):
            local[key] = t
        else:
            self.env[key] = t  # self.x = ..., slot.device["k"] = ...: seen by every method

    def scan(self, node: ast.AST, local: dict[str, T], majors: frozenset[int]) -> None:
        """Resolve every call and attribute inside ``node``; flag TensorRT names on untyped objects."""
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                self.typeof(sub, local, majors)
            elif isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Load):
                owner = self.typeof(sub.value, local, majors)
                self.attribute(sub, owner, majors) if owner else None
                if owner is None and sub.attr in TRT_MEMBER_NAMES and self.uses_tensorrt:
                    self.error(sub, f"'{ast.unparse(sub)}': '{sub.attr}' is a TensorRT member, but the walker "
                                    "cannot tell the object's class; annotate it (x: trt.Class)")

    uses_tensorrt: bool = False


def _branch_majors(test: ast.expr, majors: frozenset[int]) -> tuple[frozenset[int], frozenset[int]]:
    """Majors served by an ``if`` on a TensorRT major version (``major == 10``, ``major >= 11``), else all."""
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and "major" in ast.unparse(test.left):
        right = test.comparators[0]
        if isinstance(right, ast.Constant) and isinstance(right.value, int):
            ops = {ast.Eq: int.__eq__, ast.NotEq: int.__ne__, ast.GtE: int.__ge__, ast.Gt: int.__gt__,
                   ast.LtE: int.__le__, ast.Lt: int.__lt__}
            op = ops[type(test.ops[0])]
            yes = frozenset(m for m in majors if op(m, right.value))
            return yes, majors - yes
    return majors, majors


def _cuda_version() -> str:
    from importlib.metadata import version

    return version("cuda-bindings")


def _walk_package() -> list[Walker]:
    walkers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        if "tensorrt" not in text and "cuda.bindings" not in text:
            continue
        tree = ast.parse(text)
        walker = Walker(path)
        walker.uses_tensorrt = bool(re.search(r"\btrt\.", text))
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        for _ in range(2):  # the second pass sees attributes assigned in methods defined further down
            walker.errors.clear()
            for fn in functions:
                walker.walk_function(fn, MAJORS)
        walkers.append(walker)
    return walkers


@pytest.fixture(scope="module")
def walked() -> list[Walker]:
    pytest.importorskip("cuda.bindings", reason="cuda-python comes with the dev extra")
    return _walk_package()


def test_api_data_covers_both_tensorrt_majors() -> None:
    assert {10, 11} == MAJORS, "regenerate with: python tools/tensorrt_api.py 10.x.y.z 11.x.y.z"
    assert "STRONGLY_TYPED" in TRT[11].classes["NetworkDefinitionCreationFlag"]["enum"]
    assert "FP16" in TRT[10].classes["BuilderFlag"]["enum"] and "FP16" not in TRT[11].classes["BuilderFlag"]["enum"]


def test_every_tensorrt_and_cuda_call_exists_with_our_arguments(walked: list[Walker]) -> None:
    errors = [e for w in walked for e in w.errors]
    assert not errors, "\n".join(errors)


def test_the_walk_reaches_every_call_of_the_tensorrt_path(walked: list[Walker]) -> None:
    """Guards the walker itself: these calls are in the package, so they must have been found and checked."""
    checked = set().union(*(w.checked for w in walked))
    expected = {
        "Builder.__init__()", "Builder.create_network()", "OnnxParser.__init__()", "OnnxParser.parse_from_file()",
        "OnnxParser.get_error()", "ParserError.desc()", "ParserError.node_name()", "Builder.create_builder_config()",
        "IBuilderConfig.clear_flag()", "BuilderFlag.TF32", "IBuilderConfig.set_memory_pool_limit()",
        "IOptimizationProfile.set_shape()", "IBuilderConfig.add_optimization_profile()",
        "IBuilderConfig.create_timing_cache()", "IBuilderConfig.set_timing_cache()",
        "Builder.build_serialized_network()", "IBuilderConfig.get_timing_cache()", "ITimingCache.serialize()",
        "Runtime.__init__()", "Runtime.deserialize_cuda_engine()", "ICudaEngine.num_io_tensors",
        "ICudaEngine.get_tensor_name()", "ICudaEngine.get_tensor_mode()", "ICudaEngine.get_tensor_dtype()",
        "ICudaEngine.get_tensor_shape()", "ICudaEngine.get_tensor_profile_shape()",
        "ICudaEngine.create_execution_context()", "IExecutionContext.set_input_shape()",
        "IExecutionContext.set_tensor_address()", "IExecutionContext.execute_async_v3()",
        "NetworkDefinitionCreationFlag.STRONGLY_TYPED", "TensorIOMode.INPUT", "DataType.UINT8",
        "cudart.cudaMallocHost", "cudart.cudaMemcpyAsync", "cudart.cudaStreamBeginCapture",
        "cudart.cudaStreamEndCapture", "cudart.cudaGraphInstantiate", "cudart.cudaGraphLaunch",
        "cudart.cudaEventElapsedTime", "cudart.cudaGetDeviceProperties", "cudart.cudaDeviceProp.major",
    }
    assert expected <= checked, sorted(expected - checked)


def test_the_walker_catches_what_would_fail(tmp_path: Path) -> None:
    """The checks can fail: calls TensorRT 11 removed, wrong arity, wrong argument class, unknown enums."""
    pytest.importorskip("cuda.bindings", reason="cuda-python comes with the dev extra")
    source = tmp_path / "bad.py"
    source.write_text(
        "def build(path):\n"
        "    trt = tensorrt()\n"
        "    logger = trt.Logger(trt.Logger.WARNING)\n"
        "    builder = trt.Builder(logger)\n"
        "    network = builder.create_network(0, 1)\n"           # too many arguments
        "    config = builder.create_builder_config()\n"
        "    config.set_flag(trt.BuilderFlag.FP16)\n"            # removed in 11
        "    config.set_flag(trt.BuilderFlag.FP17)\n"            # no such flag
        "    config.add_optimization_profile(logger)\n"          # wrong class
        "    if major == 10:\n"
        "        config.set_flag(trt.BuilderFlag.INT8)\n"        # fine: 10 only
        "    context = thing.execute_async_v3(0)\n"              # untyped receiver of a TensorRT name
    )
    walker = Walker(source)
    walker.uses_tensorrt = True
    for fn in [n for n in ast.walk(ast.parse(source.read_text())) if isinstance(n, ast.FunctionDef)]:
        walker.walk_function(fn, MAJORS)
    text = "\n".join(walker.errors)
    assert "Builder.create_network in TensorRT 10" in text
    assert "BuilderFlag.FP16 does not exist in TensorRT 11" in text
    assert "BuilderFlag.FP17 does not exist in TensorRT 10" in text
    assert "IBuilderConfig.add_optimization_profile in TensorRT 10" in text
    assert "BuilderFlag.INT8" not in text
    assert "'thing.execute_async_v3'" in text
    assert len(walker.errors) == 5, text
