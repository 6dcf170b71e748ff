"""The runtime never imports torch: importing the package, fusing with Fuser, and the fuse CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import PAIRS

# A None entry in sys.modules makes every `import torch` fail, so any torch import in the run
# path turns into a failure instead of passing unnoticed because torch happens to be installed.
_BLOCK = "import sys; sys.modules['torch'] = None\n"


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _BLOCK + code], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_import_does_not_load_torch_or_heavy_runtimes(tmp_path: Path) -> None:
    code = (
        "import occo_deploy, sys\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'cv2', 'onnx') if sys.modules.get(m) is not None]\n"
        "print('loaded', heavy)\n"
    )
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "loaded []" in result.stdout


def test_fuser_runs_without_torch(exported: Path, tmp_path: Path) -> None:
    code = (
        "import cv2, sys\n"
        "from occo_deploy import Fuser\n"
        f"ir = cv2.imread({str(PAIRS / 'TNO' / 'ir' / '07.png')!r})\n"
        f"vis = cv2.imread({str(PAIRS / 'TNO' / 'vi' / '07.png')!r})\n"
        f"with Fuser({str(exported)!r}) as f:\n"
        "    out = f.fuse(ir, vis)\n"
        "print('shape', out.shape, 'torch' in sys.modules and sys.modules['torch'] is not None)\n"
    )
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "shape (256, 256, 3) False" in result.stdout


def test_fuse_cli_runs_without_torch(exported: Path, tmp_path: Path) -> None:
    ir, vis = PAIRS / "TNO" / "ir" / "07.png", PAIRS / "TNO" / "vi" / "07.png"
    code = (
        "import sys\n"
        f"sys.argv = ['occo-deploy', 'fuse', {str(ir)!r}, {str(vis)!r}, '--engine', {str(exported)!r}]\n"
        "from occo_deploy.cli.app import main\n"
        "main()\n"
    )
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "fused.png").is_file()
