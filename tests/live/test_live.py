"""Live fusion on real streams: two real-time MPEG-TS senders on loopback (tests/live/sender.py),
reconnection, a source that never returns, files played at their own rate, and the preview page in
a real headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from occo_deploy import Fuser
from occo_deploy.live import LiveFusion, SourceError, open_source
from tests.conftest import make_video, run_cli, sequence_frames
from tests.support import one_line_error

pytest.importorskip("av", reason="PyAV sends the test streams (the dev extra installs it)")
SENDER = Path(__file__).with_name("sender.py")
SIZE = "160x120"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sender(port: int, what: str, fps: float = 20.0) -> Iterator[subprocess.Popen[bytes]]:
    """A real-time sender listening on tcp://127.0.0.1:port (the receiver connects to it)."""
    proc = subprocess.Popen([sys.executable, str(SENDER), f"tcp://127.0.0.1:{port}?listen=1", "--what", what,
                             "--fps", str(fps), "--size", SIZE], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # listening
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return out
        out.append(frame)


@pytest.mark.slow
@pytest.mark.shared
def test_live_streams_fused_newest_first_with_bounded_latency(exported: Path) -> None:
    """Two 20 fps cameras, an engine slower than that: every fused frame is the engine's output for
    the pair it was given, pairs are close in time, the backlog is dropped (counted), latency stays
    bounded."""
    ir_port, vis_port = _free_port(), _free_port()
    # Each frame over its own range here, so that each fused frame can be checked against fuse() alone.
    with sender(ir_port, "ir"), sender(vis_port, "vis"), Fuser(exported, stretch="frame") as fuser, \
            open_source(f"tcp://127.0.0.1:{ir_port}", "infrared") as ir, \
            open_source(f"tcp://127.0.0.1:{vis_port}", "visible") as vis:
        live = LiveFusion(fuser, ir, vis, duration_s=6.0)
        frames = []
        for frame in live:
            frames.append(frame)
            time.sleep(0.1)  # a consumer with work of its own: the engine falls behind 20 fps
        figures = live.figures()
        with Fuser(exported) as check:
            for frame in frames[::3]:
                assert np.array_equal(frame.fused, check.fuse(frame.ir, frame.vis))
    assert len(frames) >= 5 and figures["fused"] == len(frames)
    assert figures["dropped"] > 0 and figures["fps_in"]["visible"] > 10
    assert all(abs(f.pair_dt_ms) <= figures["tolerance_ms"] for f in frames)
    latency = figures["latency_ms"]
    assert latency["count"] == len(frames) and latency["p99_ms"] < 2000
    # Bounded: the second half is no slower than the first (a queue would make it grow).
    half = len(frames) // 2
    first = np.median([f.latency_ms for f in frames[:half]])
    assert np.median([f.latency_ms for f in frames[half:]]) < first + 500
    assert figures["stopped_because"] == "6 s elapsed"


@pytest.mark.slow
@pytest.mark.shared
def test_cli_live_run_writes_a_playable_real_time_video(workspace: Path) -> None:
    ir_port, vis_port = _free_port(), _free_port()
    with sender(ir_port, "ir"), sender(vis_port, "vis"):
        result = run_cli("fuse", f"tcp://127.0.0.1:{ir_port}", f"tcp://127.0.0.1:{vis_port}", "--live",
                         "--duration", "5", "-o", "live.mp4", "--report", "r.json", cwd=workspace)
    assert result.returncode == 0, result.stderr
    report = json.loads((workspace / "r.json").read_text())
    live = report["live"]
    assert live["fused"] >= 3 and live["latency_ms"]["count"] == live["fused"]
    # A live run holds the stretch steady (the video default), and its held range followed the frames.
    assert report["engine"]["stretch"]["mode"] == "steady" and report["engine"]["steerable_stretch"]
    assert "capture-to-output latency: p50" in result.stdout and "dropped" in result.stdout
    frames = _frames(workspace / "live.mp4")
    # Real time: about 5 s of video at the cameras' 20 fps, however few frames were fused.
    assert len(frames) == report["frames_written"] and 60 <= len(frames) <= 130
    assert frames[-1].shape == (120, 160, 3) and frames[-1].std() > 5


@pytest.mark.slow
@pytest.mark.shared
def test_a_dropped_source_reconnects(exported: Path) -> None:
    ir_port, vis_port = _free_port(), _free_port()
    with sender(vis_port, "vis"), Fuser(exported) as fuser:
        first = subprocess.Popen([sys.executable, str(SENDER), f"tcp://127.0.0.1:{ir_port}?listen=1", "--what", "ir",
                                  "--fps", "20", "--size", SIZE], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        with open_source(f"tcp://127.0.0.1:{ir_port}", "infrared", reconnect_timeout_s=15) as ir, \
                open_source(f"tcp://127.0.0.1:{vis_port}", "visible") as vis:
            live = LiveFusion(fuser, ir, vis, duration_s=12.0)
            restarted_at = None
            after_restart = 0
            for frame in live:
                elapsed = time.monotonic() - live.started
                if first is not None and elapsed > 3:
                    first.kill()
                    first.wait()
                    first = None
                    time.sleep(1.5)  # the camera is away
                    second = subprocess.Popen([sys.executable, str(SENDER), f"tcp://127.0.0.1:{ir_port}?listen=1",
                                               "--what", "ir", "--fps", "20", "--size", SIZE],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    restarted_at = time.monotonic()
                elif restarted_at is not None and frame.t_capture > restarted_at + 1:
                    after_restart += 1
            second.kill()
            second.wait()
            # One outage, one reconnection (the tries to open it are counted apart).
            assert ir.reconnects == 1 and ir.attempts >= 1 and after_restart >= 2, (ir.figures(), after_restart)
            assert vis.reconnects == 0


@pytest.mark.slow
@pytest.mark.shared
def test_a_source_that_never_returns_ends_the_run_with_a_finished_output(workspace: Path) -> None:
    ir_port, vis_port = _free_port(), _free_port()
    out = workspace / "cut.mp4"
    with sender(vis_port, "vis"):
        ir = subprocess.Popen([sys.executable, str(SENDER), f"tcp://127.0.0.1:{ir_port}?listen=1", "--what", "ir",
                               "--fps", "20", "--size", SIZE], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        run = subprocess.Popen([sys.executable, "-m", "occo_deploy", "fuse", f"tcp://127.0.0.1:{ir_port}",
                                f"tcp://127.0.0.1:{vis_port}", "--live", "-o", str(out), "--reconnect-timeout", "2",
                                "-q"], cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(6)
        ir.kill()
        ir.wait()
        _, stderr = run.communicate(timeout=60)
    assert run.returncode == 2, stderr
    *said, last = [ln for ln in stderr.splitlines() if ln.strip()]
    assert last.startswith("error: infrared source") and "down for more than 2 s" in last
    # Before it, the outage as it happened: one line per cause, each naming the source (-q keeps notes).
    assert said and said[0].startswith("note: infrared source") and "went down" in said[0], said
    assert all(ln.startswith("note: infrared source") for ln in said) and len(said) == len(set(said))
    frames = _frames(out)  # finalised, playable
    assert len(frames) > 10 and not list(workspace.glob(".cut.*"))


def test_files_play_at_their_own_rate_and_end(exported: Path, tmp_path: Path) -> None:
    ir_frames, vis_frames = sequence_frames("ir"), sequence_frames("vi")
    ir_file = make_video(tmp_path / "ir.mp4", ir_frames * 2, 10.0)
    vis_file = make_video(tmp_path / "vis.mp4", vis_frames * 2, 10.0)
    with Fuser(exported) as fuser, open_source(str(ir_file), "infrared") as ir, \
            open_source(str(vis_file), "visible") as vis:
        start = time.monotonic()
        frames = list(LiveFusion(fuser, ir, vis))
        took = time.monotonic() - start
    n = len(vis_frames) * 2
    assert took >= 0.8 * n / 10.0  # played in real time, not as fast as decoding goes
    assert 0 < len(frames) <= n and vis.state == "ended"
    with pytest.raises(SourceError, match="neither a stream URL"):
        open_source("nowhere.mp4", "visible")


def test_the_slow_notice_names_the_speed_and_the_ways_out() -> None:
    # Decided on the first frame's own figures, so both branches run on any machine.
    from occo_deploy.live.fusion import LiveFrame
    from occo_deploy.live.job import slow_notice

    def first(seconds: float, side: int) -> LiveFrame:
        image = np.zeros((side * 3 // 4, side, 3), np.uint8)
        return LiveFrame(0, 0, 0, 100.0, 100.0 + seconds, 0.0, image, image[..., 0], image)

    said = slow_notice(first(2.5, 1280), 10.0, None)
    assert said is not None and "takes 2.5 s each" in said and "0.40 fps against the cameras' 10 fps" in said
    assert "max_side=640" in said and "openvino --int8" in said  # from Python, the option as Python spells it
    assert "max_side" not in (slow_notice(first(2.5, 640), 10.0, None) or "")  # already small: a faster engine
    # Running the engine it would recommend: not recommended again; a GPU is the way left.
    on_int8 = slow_notice(first(2.5, 640), 10.0, None, {"backend": "openvino", "precision": "int8"})
    assert on_int8 is not None and "openvino --int8" not in on_int8 and "a GPU" in on_int8
    assert "a stop waits" not in said  # a stop does not wait for the frame in progress
    assert slow_notice(first(0.5, 1280), 10.0, None) is None  # two frames a second: nothing to say


def test_a_slow_live_run_says_so_at_the_second_frame(workspace: Path) -> None:
    # 640x480 on the FP32 export: over a second per frame on a 2-core Zen 3, less on faster CPUs. Whatever
    # this machine's speed, a notice is said at most once, as it starts, and kept in the report.
    ir = [cv2.resize(f, (640, 480)) for f in sequence_frames("ir", None)[:6]]
    vis = [cv2.resize(f, (640, 480)) for f in sequence_frames("vi", None)[:6]]
    make_video(workspace / "ir.mp4", ir, 3.0)
    make_video(workspace / "vis.mp4", vis, 3.0)
    done = run_cli("fuse", "ir.mp4", "vis.mp4", "--live", "--report", "r.json", cwd=workspace)
    assert done.returncode == 0, done.stderr
    said = [ln for ln in done.stderr.splitlines() if ln.startswith("note: fusing 640x480 frames takes")]
    report = json.loads((workspace / "r.json").read_text())
    assert len(said) <= 1  # at the second frame (the first pays for warm-up), not again in the summary
    for line in said:  # said only when that frame took over a second, and kept in the report
        assert float(line.split("takes ")[1].split(" s")[0]) >= 1.0  # said to 0.1 s: 1.04 reads 1.0
        assert line[len("note: "):] in report["notices"] and "fps against the cameras' 3 fps" in line
    # --duration is kept although a fuse takes long: the run stops on it (a frame that cannot end in time
    # is not begun), and the video covers the whole duration in real time (the last frame held). How
    # soon after the duration it stops is a wall-clock figure: benchmarks/live_latency.py prints it.
    timed = run_cli("fuse", "ir.mp4", "vis.mp4", "--live", "--duration", "2.5", "-o", "d.mp4", "--report", "d.json",
                    "-q", cwd=workspace)
    assert timed.returncode == 0, timed.stderr
    figures = json.loads((workspace / "d.json").read_text())["live"]
    assert figures["stopped_because"] == "2.5 s elapsed", figures
    frames = _frames(workspace / "d.mp4")
    assert frames and abs(len(frames) - 2.5 * 3) <= 2, len(frames)  # from the first fused frame to the end


@pytest.mark.slow
@pytest.mark.shared
def test_a_live_recording_on_a_full_disk_keeps_what_it_recorded(workspace: Path) -> None:
    # A real file-size limit (EFBIG, as a full disk's ENOSPC) on a live run recording 6 s of files
    # played in real time: it stops with one line, and the recording so far is in place and decodes.
    import resource
    import signal

    make_video(workspace / "ir.mp4", sequence_frames("ir") * 3, 10.0)
    make_video(workspace / "vis.mp4", sequence_frames("vi") * 3, 10.0)
    whole = run_cli("fuse", "ir.mp4", "vis.mp4", "--live", "-o", "whole.mp4", "-q", cwd=workspace)
    assert whole.returncode == 0, whole.stderr
    limit = (workspace / "whole.mp4").stat().st_size // 2

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    cut = subprocess.run([sys.executable, "-m", "occo_deploy", "fuse", "ir.mp4", "vis.mp4", "--live", "-o", "cut.mp4",
                          "-q"], cwd=workspace, capture_output=True, text=True, timeout=120, preexec_fn=limited)
    one_line_error(cut, "the disk filled after")
    assert "cut.mp4 and plays up to its last whole fragment" in cut.stderr
    assert 10 <= len(_frames(workspace / "cut.mp4")) < len(_frames(workspace / "whole.mp4"))


@pytest.mark.slow
@pytest.mark.shared
def test_ctrl_c_does_not_wait_for_a_long_fuse(workspace: Path) -> None:
    # 1600x1200 on the FP32 export: a fuse takes many seconds on a CPU. Ctrl-C during it ends the run
    # at once (it waited for the fuse to finish: 15 s at camera resolution on a loaded host).
    ir = [cv2.resize(f, (1600, 1200)) for f in sequence_frames("ir", None)[:4]]
    vis = [cv2.resize(f, (1600, 1200)) for f in sequence_frames("vi", None)[:4]]
    make_video(workspace / "ir.mp4", ir, 2.0)
    make_video(workspace / "vis.mp4", vis, 2.0)
    run = subprocess.Popen([sys.executable, "-m", "occo_deploy", "fuse", "ir.mp4", "vis.mp4", "--live", "-o", "o.mp4",
                            "--report", "r.json", "-q"], cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(6.0)  # started, and inside its first fuse
    sent = time.monotonic()
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    took = time.monotonic() - sent
    assert run.returncode in (0, 130), stderr
    assert took < 3.0, took
    assert json.loads((workspace / "r.json").read_text())["ended_by"] == "Ctrl-C"


def test_camera_passwords_never_leave_the_url(workspace: Path) -> None:
    # A camera that is not up (a closed port): the error line, the --report (written although the run
    # failed) and the preview's figures name the source with its password masked.
    port = _free_port()
    cam = f"rtsp://admin:hunter2@127.0.0.1:{port}/stream1"
    result = run_cli("fuse", cam, cam.replace("stream1", "stream2"), "--live", "--reconnect-timeout", "1",
                     "--report", "r.json", cwd=workspace)
    # The outage of each camera is logged as it happens (one line each), then the run's one error line.
    *said, last = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert last.startswith("error:") and f"rtsp://admin:***@127.0.0.1:{port}/stream" in last
    assert "down for more than 1 s" in last and result.returncode != 0
    assert len(said) == 2 and all(ln.startswith("note: ") and "is not live" in ln for ln in said), said
    assert "hunter2" not in result.stdout + result.stderr
    text = (workspace / "r.json").read_text()
    report = json.loads(text)
    assert "hunter2" not in text and report["ir"] == f"rtsp://admin:***@127.0.0.1:{port}/stream1"
    assert report["error"] and report["live"]["sources"]["infrared"]["reconnects"] == 0  # never up: no reconnection
    from occo_deploy.live.preview import PreviewServer

    server = PreviewServer("127.0.0.1", 0)
    try:
        server.publish(np.zeros((8, 8, 3), np.uint8), {"sources": {"visible": {"source": cam, "error": f"{cam} down"}}})
        page = server.figures_json().decode()
        assert "hunter2" not in page and "admin:***@" in page and not server.exposed
    finally:
        server.close()


def test_bad_live_invocations(workspace: Path) -> None:
    one_line_error(run_cli("fuse", "a.png", "b.png", "--duration", "3", cwd=workspace), "--duration is for --live")
    one_line_error(run_cli("fuse", "rtsp://x/y", "camera:0", "--live", "--preview", "nope", cwd=workspace),
                    "is not PORT or HOST:PORT")
    one_line_error(run_cli("fuse", "not-here", "camera:0", "--live", cwd=workspace), "neither a stream URL")


# -- the preview page -----------------------------------------------------------------------------
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.slow
@pytest.mark.shared
def test_preview_page_in_a_real_browser(workspace: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("needs Debian's chromium (.ci/run installs it)")
    ir_port, vis_port, web = _free_port(), _free_port(), _free_port()
    with sender(ir_port, "ir"), sender(vis_port, "vis"):
        run = subprocess.Popen([sys.executable, "-m", "occo_deploy", "fuse", f"tcp://127.0.0.1:{ir_port}",
                                # The run ends by Ctrl-C below; the duration only bounds a stuck run (25 s
                                # ran out first once under a loaded CI machine).
                                f"tcp://127.0.0.1:{vis_port}", "--live", "--duration", "120", "--preview", str(web),
                                "--report", "r.json", "-q"], cwd=workspace, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONFAULTHANDLER": "1"},
                               # An ignored SIGINT survives exec, and Python then leaves it ignored: if a
                               # library earlier in this test process ignored it, Ctrl-C would never
                               # reach the run. A user's terminal gives the default; so does this.
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            base = f"http://127.0.0.1:{web}"
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and _get_or_none(base + "/frame.jpg") != 200:
                time.sleep(0.3)
            status, body = _get(base + "/stats.json")
            assert status == 200 and json.loads(body)["fused"] >= 1
            assert _get(base + "/nothing-here")[0] == 404
            request = urllib.request.Request(base + "/", data=b"x", method="POST")
            try:
                urllib.request.urlopen(request, timeout=5)
                raise AssertionError("POST answered 2xx")
            except urllib.error.HTTPError as exc:
                assert exc.code == 405
            with socket.create_connection(("127.0.0.1", web), timeout=5) as raw:
                raw.sendall(b"GARBAGE\r\n\r\n")  # no version: an HTTP/0.9 answer, body only
                assert b"Error code: 400" in raw.recv(4096)
            with socket.create_connection(("127.0.0.1", web), timeout=5) as raw:
                raw.sendall(b"GET /" + b"a" * 70000 + b" HTTP/1.0\r\n\r\n")
                assert raw.recv(64).startswith(b"HTTP/1.0 414")
            # A viewer that connects to the stream and vanishes must not stall fusion.
            with socket.create_connection(("127.0.0.1", web), timeout=5) as viewer:
                viewer.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
                assert b"multipart/x-mixed-replace" in viewer.recv(4096)
            before = json.loads(_get(base + "/stats.json")[1])["fused"]
            shot = tmp_path / "page.png"
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
                            "--window-size=400,300", "--timeout=6000", f"--screenshot={shot}", base + "/"],
                           capture_output=True, timeout=90, check=False)
            after = json.loads(_get(base + "/stats.json")[1])["fused"]
            assert after > before  # fusion went on while a viewer came and went
            page = cv2.imread(str(shot))
            assert page is not None, "no screenshot"
            # The fused frame: below the header, 160x120 at the page's left; real picture, not the page's
            # #111 background or a broken-image icon.
            region = page[40:150, 5:155].astype(float)
            assert region.std() > 15 and abs(region.mean() - 17) > 10, (region.mean(), region.std())
            frame = cv2.imdecode(np.frombuffer(_get(base + "/frame.jpg")[1], np.uint8), cv2.IMREAD_COLOR)
            assert frame.shape == (120, 160, 3)
        finally:
            run.send_signal(signal.SIGINT)  # Ctrl-C ends a live run cleanly
            try:
                _, stderr = run.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                # Once, in a full CI run, Ctrl-C did not end the run within 60 s: SIGABRT makes the
                # fault handler print every thread's stack, so such a failure says where it waited.
                run.send_signal(signal.SIGABRT)
                stderr = run.communicate(timeout=30)[1]
                pytest.fail(f"the live run did not end within 60 s of Ctrl-C (SIGINT in this test process: "
                            f"{signal.getsignal(signal.SIGINT)}); its threads:\n{stderr[-6000:]}")
    assert run.returncode == 0, stderr
    assert json.loads((workspace / "r.json").read_text())["ended_by"] == "Ctrl-C"


def _screenshot(chromium: str, url: str, folder: Path) -> np.ndarray:
    shot = folder / "page.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={folder / 'profile'}", "--hide-scrollbars", "--window-size=400,300",
                    "--timeout=5000", f"--screenshot={shot}", url], capture_output=True, timeout=90, check=False)
    page = cv2.imread(str(shot))
    assert page is not None, "no screenshot"
    return page


@pytest.mark.slow
def test_the_preview_shows_the_newest_frame_at_once(tmp_path: Path) -> None:
    # Two fused frames published (green, then red), then a browser opens the page: it must show the
    # red one, the newest, although no third frame follows (multipart parts show once they end).
    chromium = _chromium()
    if chromium is None:
        pytest.skip("needs Debian's chromium (.ci/run installs it)")
    from occo_deploy.live.preview import PreviewServer

    green = np.zeros((120, 160, 3), np.uint8)
    green[:, :, 1] = 255
    red = np.zeros((120, 160, 3), np.uint8)
    red[:, :, 2] = 255
    with PreviewServer("127.0.0.1", _free_port()) as server:
        server.publish(green, {})
        server.publish(red, {})
        page = _screenshot(chromium, server.url, tmp_path)
    shown = page[40:150, 5:155].reshape(-1, 3).mean(axis=0)  # the image, below the header (BGR)
    assert shown[2] > 200 and shown[1] < 60, shown


def _get_or_none(url: str) -> int | None:
    try:
        return _get(url)[0]
    except OSError:
        return None


def test_a_stream_is_decoded_with_the_threads_it_is_given(tmp_path: Path) -> None:
    # serve's decoder_threads: a given count per stream, or FFmpeg's own choice (one per core).
    from occo_deploy.live.sources import Source

    video = make_video(tmp_path / "vis.mp4", sequence_frames("vi")[:3], 10.0)
    plain = cv2.VideoCapture(str(video))
    own = plain.get(cv2.CAP_PROP_N_THREADS)
    plain.release()
    for threads, expected in ((1, 1.0), (None, own)):
        source = Source(str(video), "visible", decoder_threads=threads)
        capture = source._kind.open(source)
        assert capture is not None and capture.get(cv2.CAP_PROP_N_THREADS) == expected
        capture.release()
