"""``occo-deploy archive``: a real nested archive, in one process and on a real Ray instance,
past bad items, resumed after deletions and after SIGKILL of the driver or of a Ray worker."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from occo_deploy import Fuser
from occo_deploy.archive.items import discover, read_manifest
from occo_deploy.archive.tasks import RunSettings, run_task
from occo_deploy.fusing.options import RunOptions
from tests.conftest import PAIRS, make_video, run_cli, sequence_frames
from tests.support import one_line_error

SIZE_WH = (160, 120)
GOOD_IMAGES = ["day1/MSRS/00004N", "day1/MSRS/00537D", "day1/RoadScene/FLIR_00006", "day2/TNO/01", "day2/LLVIP/190001"]
BAD = {
    "day1/MSRS/broken": "cannot decode infrared image",
    "day2/lonely": "has no visible partner",
    "clips/empty": "cannot open",
    "clips/mixed": "an image and a video",
}


def _copy_pair(src_group: str, stem: str, ir_root: Path, vis_root: Path, key: str) -> None:
    """A real pair from ../shared/data/pairs, scaled down (CI time) and stored at ``key``."""
    for side, root in (("ir", ir_root), ("vi", vis_root)):
        src = next((PAIRS / src_group / side).glob(f"{stem}.*"))
        image = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
        dst = root / f"{key}{src.suffix}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dst), cv2.resize(image, SIZE_WH, interpolation=cv2.INTER_AREA))


def _clip(root_ir: Path, root_vis: Path, key: str, frames: int) -> None:
    ir, vis = sequence_frames("ir"), sequence_frames("vi")
    make_video(root_ir / f"{key}.mp4", [ir[k % len(ir)] for k in range(frames)], 10.0)
    make_video(root_vis / f"{key}.mp4", [vis[k % len(vis)] for k in range(frames)], 10.0)


def build_archive(root: Path, clips: int = 2, clip_frames: int = 6, bad: bool = True) -> tuple[Path, Path]:
    ir_root, vis_root = root / "ir", root / "vis"
    for key in GOOD_IMAGES:
        group, stem = key.split("/")[1], key.split("/")[2]
        _copy_pair(group, stem, ir_root, vis_root, key)
    for k in range(clips):
        _clip(ir_root / "clips", vis_root / "clips", f"c{k}", clip_frames)
    if bad:
        (ir_root / "day1/MSRS/broken.png").write_bytes(b"\x89PNG but truncated")
        shutil.copy(next((vis_root / "day1/MSRS").glob("00004N.*")), vis_root / "day1/MSRS/broken.png")
        shutil.copy(next((ir_root / "day1/MSRS").glob("00004N.*")), ir_root / "day2/lonely.png")
        (ir_root / "clips/empty.mp4").write_bytes(b"")
        (vis_root / "clips/empty.mp4").write_bytes(b"")
        shutil.copy(next((ir_root / "day1/MSRS").glob("00004N.*")), ir_root / "clips/mixed.png")
        shutil.copy(vis_root / "clips/c0.mp4", vis_root / "clips/mixed.mp4")
    return ir_root, vis_root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_archive(tmp_path_factory.mktemp("archive"))


def _video_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames
        frames.append(frame)


def _assert_outputs_match_fuse(out: Path, ir_root: Path, vis_root: Path, exported: Path, clips: int = 2) -> None:
    """Every good image equals the single-process fuse of the same pair within 1 grey level; every
    clip has all its frames and matches `fuse` of the same videos."""
    with Fuser(exported) as fuser:
        for key in GOOD_IMAGES:
            ir = cv2.imread(str(next(ir_root.glob(f"{key}.*"))), cv2.IMREAD_UNCHANGED)
            vis = cv2.imread(str(next(vis_root.glob(f"{key}.*"))), cv2.IMREAD_UNCHANGED)
            got = cv2.imread(str(out / f"{key}.png"))
            assert got is not None, key
            assert np.abs(got.astype(int) - fuser.fuse(ir, vis).astype(int)).max() <= 1, key
    for k in range(clips):
        got = _video_frames(out / "clips" / f"c{k}.mp4")
        ref_path = out.parent / f"ref_c{k}.mp4"
        if not ref_path.exists():
            result = run_cli("fuse", str(ir_root / "clips" / f"c{k}.mp4"), str(vis_root / "clips" / f"c{k}.mp4"),
                             "-o", str(ref_path), "--engine", str(exported), "-q", cwd=out.parent)
            assert result.returncode == 0, result.stderr
        want = _video_frames(ref_path)
        assert len(got) == len(want) > 0
        assert max(np.abs(g.astype(int) - w.astype(int)).mean() for g, w in zip(got, want)) < 1.0


@pytest.mark.shared
def test_items_pair_by_relative_path_and_keep_the_bad_ones(tree: tuple[Path, Path], tmp_path: Path) -> None:
    items = {i.key: i for i in discover(*tree, tmp_path / "out")}
    assert {k for k, i in items.items() if i.kind == "image"} == {*GOOD_IMAGES, "day1/MSRS/broken"}  # fails later
    assert {k for k, i in items.items() if i.kind == "video"} == {"clips/c0", "clips/c1", "clips/empty"}
    assert items["day2/lonely"].kind == "bad" and "visible partner" in (items["day2/lonely"].error or "")
    assert items["clips/mixed"].kind == "bad"
    assert items["day1/MSRS/00004N"].output == str(tmp_path / "out/day1/MSRS/00004N.png")
    assert items["clips/c0"].output == str(tmp_path / "out/clips/c0.mp4")


@pytest.mark.shared
def test_a_retried_task_keeps_what_its_first_attempt_wrote(tree: tuple[Path, Path], exported: Path,
                                                            tmp_path: Path) -> None:
    """Ray retries a task whose worker died; an output that attempt finished is whole (atomic) and is
    counted done, not fused again nor refused as an existing file."""
    items = {i.key: i for i in discover(*tree, tmp_path / "out")}
    task = [items["day1/MSRS/00004N"], items["day2/TNO/01"]]
    clip = [items["clips/c0"]]
    settings = RunSettings(str(exported), RunOptions(batch=2))
    with Fuser(exported) as fuser:
        first = run_task(fuser, task[:1], settings) + run_task(fuser, clip, settings)  # the attempt that died
        written = {i.key: Path(i.output or "").stat().st_mtime_ns for i in (task[0], clip[0])}
        again = {r.key: r for r in run_task(fuser, task, settings) + run_task(fuser, clip, settings)}
    assert [r.status for r in first] == ["done", "done"]
    assert {k: r.status for k, r in again.items()} == {"day1/MSRS/00004N": "done", "day2/TNO/01": "done",
                                                       "clips/c0": "done"}
    for key, mtime in written.items():
        assert Path(items[key].output or "").stat().st_mtime_ns == mtime, key  # not written twice
        assert any("earlier attempt" in n for n in again[key].notices), again[key]
    assert again["clips/c0"].frames == 6 and not again["day2/TNO/01"].notices  # fused now, for the first time
    with Fuser(exported) as fuser:  # with --force an existing output is fused again
        forced = run_task(fuser, task[:1], RunSettings(str(exported), RunOptions(batch=2), force=True))
    assert forced[0].status == "done" and Path(task[0].output or "").stat().st_mtime_ns != written[task[0].key]


@pytest.mark.shared
def test_manifest(tree: tuple[Path, Path], tmp_path: Path) -> None:
    ir_root, vis_root = tree
    manifest = tmp_path / "list.csv"
    ir0, vis0 = next(ir_root.glob("day1/MSRS/00004N.*")), next(vis_root.glob("day1/MSRS/00004N.*"))
    manifest.write_text(f"ir,vis,output\n{os.path.relpath(ir0, tmp_path)},{os.path.relpath(vis0, tmp_path)},a/first\n"
                        f"{os.path.relpath(ir0, tmp_path)},missing.png,\n,,\n")
    items = read_manifest(manifest, tmp_path / "out")
    assert items[0].kind == "image" and items[0].output == str(tmp_path / "out/a/first.png")
    assert items[1].kind == "bad" and "not found" in (items[1].error or "")
    assert items[2].kind == "bad" and "needs both ir and vis" in (items[2].error or "")
    (tmp_path / "bad.csv").write_text("infrared,visible\na,b\n")
    one_line_error(run_cli("archive", "--manifest", str(tmp_path / "bad.csv"), "-o", "out", cwd=tmp_path),
                    "expected ir,vis")


@pytest.mark.shared
def test_local_archive_skips_bad_items_and_resumes(tree: tuple[Path, Path], exported: Path, tmp_path: Path) -> None:
    ir_root, vis_root = tree
    out = tmp_path / "out"
    args = ["archive", str(ir_root), str(vis_root), "-o", str(out), "--engine", str(exported), "--batch", "2", "-q"]
    first = run_cli(*args, "--report", str(tmp_path / "r.json"), cwd=tmp_path)
    assert first.returncode == 8, first.stderr
    assert "7 done, 0 skipped, 4 failed" in first.stdout
    for key, words in BAD.items():
        assert any(line.startswith(f"failed: {key}: ") and words in line for line in first.stderr.splitlines()), key
    assert "Traceback" not in first.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["totals"]["failed"] == 4 and {f["item"] for f in report["failures"]} == set(BAD)
    assert report["totals"]["frames"] == len(GOOD_IMAGES) + 2 * 6 and report["mode"] == "local"
    _assert_outputs_match_fuse(out, ir_root, vis_root, exported)
    assert not list(out.rglob(".*.partial.*"))

    # Existing outputs are never silently redone or overwritten.
    one_line_error(run_cli(*args, cwd=tmp_path), "outputs exist", "--resume")
    # Resume after deleting two outputs: only those two are fused again.
    (out / "day2/TNO/01.png").unlink()
    (out / "clips/c1.mp4").unlink()
    kept = out / "day1/MSRS/00004N.png"
    before = kept.stat().st_mtime_ns
    again = run_cli(*args, "--resume", cwd=tmp_path)
    assert again.returncode == 8 and "2 done, 5 skipped, 4 failed" in again.stdout, again.stdout
    assert kept.stat().st_mtime_ns == before
    _assert_outputs_match_fuse(out, ir_root, vis_root, exported)


@pytest.mark.slow
@pytest.mark.shared
def test_driver_killed_then_resumed(exported: Path, tmp_path: Path) -> None:
    """SIGKILL of the whole job mid-way: what exists is whole, and --resume does only the rest."""
    ir_root, vis_root = build_archive(tmp_path / "a", clips=4, clip_frames=30, bad=False)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "occo_deploy", "archive", str(ir_root), str(vis_root), "-o", str(out),
            "--engine", str(exported), "-q"]
    proc = subprocess.Popen(args, cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not [p for p in out.rglob("*.mp4") if not p.name.startswith(".")]:
        time.sleep(0.2)
    time.sleep(1.0)  # into the next clip
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert 1 <= len([f for f in finished if f.endswith(".mp4")]) < 4, finished
    for f in finished:  # whole files only: every video that exists decodes completely
        if f.endswith(".mp4"):
            assert len(_video_frames(out / f)) == 30, f
    mtimes = {f: (out / f).stat().st_mtime_ns for f in finished}
    resumed = run_cli(*args[3:], "--resume", "--report", str(tmp_path / "r.json"), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["totals"]["skipped"] == len(finished)
    assert report["totals"]["done"] == len(GOOD_IMAGES) + 4 - len(finished)
    assert all((out / f).stat().st_mtime_ns == t for f, t in mtimes.items())
    _assert_outputs_match_fuse(out, ir_root, vis_root, exported, clips=4)
    assert not list(out.rglob(".*.partial.*"))


def _ray() -> Any:
    """Ray, or a skip of the one test that needs it (the ray extra; dev installs it)."""
    return pytest.importorskip("ray", reason="the ray extra (dev installs it)")


@pytest.mark.slow
@pytest.mark.shared
def test_ray_local_instance_matches_one_process(tree: tuple[Path, Path], exported: Path, tmp_path: Path) -> None:
    ray = _ray()
    ir_root, vis_root = tree
    out = tmp_path / "out"
    # A process of its own: a Ray instance started inside the test process would outlive the test.
    result = run_cli("archive", str(ir_root), str(vis_root), "-o", str(out), "--engine", str(exported), "--ray",
                     "--workers", "2", "--batch", "2", "--report", str(tmp_path / "r.json"), "-q", cwd=tmp_path,
                     process=True)
    assert result.returncode == 8, result.stderr
    assert "7 done, 0 skipped, 4 failed" in result.stdout
    # -q: our lines only; no line of Ray's own (its C++ core's "logging.cc:303 ..." was one).
    assert all(line.startswith("failed: ") for line in result.stderr.splitlines() if line.strip()), result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["workers"]["count"] == 2 and report["workers"]["threads"] == 1
    assert report["mode"] == "ray" and report["ray"]["version"] == ray.__version__
    assert report["ray"]["cluster_resources"]["CPU"] >= 2
    workers = {i["worker"] for i in report["items"] if i["status"] == "done"}
    assert 1 <= len(workers) <= 2 < report["totals"]["done"]  # each actor holds its engine for many items
    _assert_outputs_match_fuse(out, ir_root, vis_root, exported)


def _ray_worker_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"OccoArchiveWorker" in cmdline:
                pids.append(int(proc.name))
    return pids


@pytest.mark.slow
@pytest.mark.shared
def test_ray_cluster_survives_a_killed_worker(exported: Path, tmp_path: Path) -> None:
    """A head node started with `ray start --head` on loopback; one worker SIGKILLed mid-job: Ray
    restarts it, retries its task, and every output is complete and correct."""
    _ray()
    ir_root, vis_root = build_archive(tmp_path / "a", clips=4, clip_frames=30, bad=False)
    port = 20000 + os.getpid() % 10000
    env = {**os.environ, "RAY_AUTH_MODE": "token"}  # Ray 2.59+: the head and its clients agree on tokens
    head = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={port}",
                             "--node-ip-address=127.0.0.1",
                             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(8)
        out = tmp_path / "out"
        job = subprocess.Popen([sys.executable, "-m", "occo_deploy", "archive", str(ir_root), str(vis_root), "-o",
                                str(out), "--engine", str(exported), "--ray", f"127.0.0.1:{port}", "--workers", "2",
                                "--report", str(tmp_path / "r.json"), "-q"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        killed = None
        while time.monotonic() < deadline and killed is None and job.poll() is None:
            pids = _ray_worker_pids()
            if len(pids) == 2 and [p for p in out.rglob("*.mp4") if not p.name.startswith(".")]:
                killed = pids[0]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.3)
        _, stderr = job.communicate(timeout=600)
        assert killed is not None, "no worker to kill"
        assert job.returncode == 0, stderr
        report = json.loads((tmp_path / "r.json").read_text())
        assert report["totals"]["done"] == len(GOOD_IMAGES) + 4 and report["ray"]["address"] == f"127.0.0.1:{port}"
        _assert_outputs_match_fuse(out, ir_root, vis_root, exported, clips=4)
        assert not list(out.rglob(".*.partial.*"))
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)


def test_bad_invocations(tmp_path: Path) -> None:
    (tmp_path / "ir").mkdir()
    (tmp_path / "vis").mkdir()
    one_line_error(run_cli("archive", "ir", "-o", "out", cwd=tmp_path), "two root folders")
    one_line_error(run_cli("archive", "ir", "vis", "-o", "out", cwd=tmp_path), "no image or video files")
    one_line_error(run_cli("archive", "ir", "vis", "-o", "out", "--workers", "2", cwd=tmp_path), "are for --ray")
    one_line_error(run_cli("archive", "ir", "vis", "-o", "out", "--resume", "--force", cwd=tmp_path), "choose one")
