"""Every error the library raises on purpose has its own documented exit code; options are named as
the caller knows them; install hints are worded one way."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from occo_deploy import errors
from tests.conftest import ROOT


def _error_classes() -> list[type[errors.OccoDeployError]]:
    found, todo = [], [errors.OccoDeployError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if c is not errors.OccoDeployError]


def test_every_error_class_exits_with_a_code_the_readme_documents() -> None:
    table = re.findall(r"^\| (\d+) \| ", (ROOT / "README.md").read_text(), re.M)
    documented = {int(code) for code in table}
    classes = _error_classes()
    assert len(classes) >= 9  # the package's own, and any subclass defined elsewhere in it
    for cls in classes:
        assert cls.exit_code != 1, f"{cls.__name__} exits 1, the code of an unexpected error"
        assert cls.exit_code in documented, f"{cls.__name__} exits {cls.exit_code}, not in README's table"


def test_the_package_raises_only_subclasses() -> None:
    """``raise OccoDeployError(...)`` would exit 1, a code that means a bug."""
    offenders = []
    for path in sorted((ROOT / "occo_deploy").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and \
                    getattr(node.exc.func, "id", getattr(node.exc.func, "attr", "")) == "OccoDeployError":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_options_are_named_for_the_caller() -> None:
    assert errors.option("max_side", 640) == "max_side=640"
    assert errors.option("backend", "openvino") == "backend='openvino'"
    assert errors.option("force", True) == "force=True" and errors.option("onnx_only") == "onnx_only"
    with errors.cli_context():
        assert errors.option("max_side", 640) == "--max-side 640"
        assert errors.option("force", True) == "--force" and errors.option("onnx_only") == "--onnx-only"
        assert errors.cli_names()
    assert not errors.cli_names()


def test_install_hints_name_the_checkout_or_the_requirements(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.chdir(ROOT)
    assert errors.install_hint("openvino") == "pip install -e '.[openvino]'"
    monkeypatch.chdir(tmp_path)  # elsewhere: the checkout's own path, which works from anywhere
    assert errors.install_hint("openvino") == f"pip install -e '{ROOT}[openvino]'"
    with pytest.raises(errors.MissingDependencyError, match=r"needs 'no_such_module', which is not installed: "
                                                            r"pip install -e '.*\[ray\]'"):
        errors.require("no_such_module", "ray", "Something")


def test_every_public_error_class_is_exported_by_the_package() -> None:
    import occo_deploy

    # Every class occo_deploy.errors declares; one declared elsewhere (live's LiveRunError, which carries
    # the run's report) subclasses one of them, so `except occo_deploy.SourceError` catches it.
    declared = {cls for cls in _error_classes() if cls.__module__ == errors.__name__}
    public = {cls.__name__ for cls in declared} | {"Terminated"}
    assert public <= set(occo_deploy.__all__)
    assert all(getattr(occo_deploy, name) is getattr(errors, name) for name in public)
    import occo_deploy.live.job

    others = [cls for cls in _error_classes() if cls not in declared]
    assert others and all(set(cls.__mro__) & (declared - {errors.OccoDeployError}) for cls in others), others
