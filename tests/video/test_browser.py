"""A fused video plays in a real browser: headless Chromium (Debian's) plays what ``fuse`` writes in a
``<video>`` element to its end, every frame at the input's times."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import av
import pytest

from occo_deploy.demo import IR_CLIP, VIS_CLIP
from tests.conftest import run_cli

PAGE = """<!doctype html><html><body><video id="v" muted playsinline src="fused.mp4"></video><script>
const v = document.getElementById("v");
const say = (what) => fetch("/report?" + encodeURIComponent(what));
v.addEventListener("ended", () => say("ended " + v.duration.toFixed(3) + " " + v.videoWidth + "x" + v.videoHeight
  + " " + v.getVideoPlaybackQuality().totalVideoFrames));
v.addEventListener("error", () => say("error " + (v.error ? v.error.code : "?")));
v.play().catch((e) => say("play failed " + e.name));
</script></body></html>"""


def _times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [round(float(f.pts * stream.time_base), 3) for f in container.decode(stream)]


@pytest.mark.slow
def test_a_fused_mp4_plays_to_its_end_in_chromium(workspace: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("needs Debian's chromium (.ci/run installs it)")
    site = tmp_path / "site"
    site.mkdir()
    # The bundled real clip pair, fused small (--max-side) and scaled back to 640x480: a real fuse run.
    done = run_cli("fuse", str(IR_CLIP), str(VIS_CLIP), "-o", str(site / "fused.mp4"), "--max-side", "160", "-q",
                   cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert _times(site / "fused.mp4") == _times(VIS_CLIP)  # every frame, at the visible input's times
    (site / "index.html").write_text(PAGE)
    said: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/report?"):
                said.append(urllib.parse.unquote(self.path.split("?", 1)[1]))
                self.send_response(204)
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = subprocess.Popen([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                "--autoplay-policy=no-user-gesture-required", "--disable-background-media-suspend",
                                f"--user-data-dir={tmp_path / 'profile'}", "--remote-debugging-port=0",
                                f"http://127.0.0.1:{server.server_address[1]}/index.html"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(s.startswith(("ended", "error", "play failed")) for s in said):
            time.sleep(0.2)
    finally:
        browser.kill()
        browser.wait()
        server.shutdown()
    ended = [s for s in said if s.startswith("ended")]
    frames = len(_times(VIS_CLIP))
    assert ended == [f"ended {frames / 30:.3f} 640x480 {frames}"], said  # played through, every frame
