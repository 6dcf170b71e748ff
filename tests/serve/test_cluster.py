"""``serve --ray`` on a real two-node Ray cluster (two ``ray start`` processes on this machine), real
RTSP cameras (GStreamer's server), one node killed while its rigs fuse."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.serve.test_serve import PASSWORD, _call, _rigs, _until
from tests.support import NO_GST_RTSP, free_port, have_gst_rtsp, rtsp_server

#: The time the docs state: from a node's death to its rigs fusing again on the others.
MOVED_WITHIN_S = 60.0
#: How long the rigs record before their node is lost: a segment begun more than 5 s before the loss
#: must play (a second's fragment and the 3 frames the live encoding holds, at a few fused fps).
RECORDED_BEFORE_LOSS_S = 7.0
RAY = Path(sys.executable).with_name("ray")
#: Ray's token authentication (on by default for ``ray start`` since Ray 2.5x): every node, the
#: service and the probes share the cluster's token, as a secured cluster's members do.
RAY_ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}


@contextmanager
def ray_node(*args: str) -> Iterator[subprocess.Popen[str]]:
    """A Ray node in the foreground (``ray start --block``), in a process group of its own: killing the
    group kills its raylet and workers at once, as a machine that loses power."""
    proc = subprocess.Popen([str(RAY), "start", "--block", "--num-cpus", "1", "--resources", '{"occo_engine": 1}',
                             "--object-store-memory", str(200 * 2**20), "--disable-usage-stats", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=RAY_ENV,
                            start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _nodes_alive(address: str) -> int:
    code = (f"import ray; ray.init(address='{address}', logging_level='ERROR', log_to_driver=False); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=RAY_ENV)
    return int(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 and result.stdout.strip() else 0


@pytest.mark.slow
@pytest.mark.skipif(not have_gst_rtsp(), reason=NO_GST_RTSP)
@pytest.mark.skipif(not RAY.is_file(), reason="needs Ray: pip install -e '.[ray]'")
def test_a_lost_node_s_rigs_fuse_again_on_the_other(exported: Path, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    ports = [free_port() for _ in range(4)]
    gcs, api = free_port(), free_port()
    address = f"127.0.0.1:{gcs}"
    # Ray's sockets live under its temp dir, whose path must stay short.
    temp_dir = Path(f"/tmp/occo-ray-{gcs}")
    rigs = "[serve]\nrigs_per_engine = 4\n\n" + "".join(
        f'[rigs.gate-{k}]\ninfrared = "rtsp://admin:${{CAM_PASSWORD}}@127.0.0.1:{port}/cam"\n'
        f'visible = "rtsp://admin:${{CAM_PASSWORD}}@127.0.0.1:{port}/cam"\nrecord = true\n\n'
        for k, port in enumerate(ports))
    (tmp_path / "rigs.toml").write_text(rigs)
    log_path = tmp_path / "serve.log"
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, temp_dir, True)
        for port in ports:
            stack.enter_context(rtsp_server(port, password=PASSWORD))
        stack.enter_context(ray_node("--head", "--port", str(gcs), "--include-dashboard", "false",
                                     "--temp-dir", str(temp_dir)))
        _until("the head node is up", lambda: _nodes_alive(address) == 1, timeout=90)
        worker_node = stack.enter_context(ray_node("--address", address))
        _until("the second node joined", lambda: _nodes_alive(address) == 2, timeout=90)
        log = stack.enter_context(log_path.open("w"))
        serve = subprocess.Popen([sys.executable, "-m", "occo_deploy", "--log-format", "json", "serve", "rigs.toml",
                                  "--engine", str(exported), "--listen", f"127.0.0.1:{api}", "--ray", address],
                                 cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, text=True,
                                 env={**RAY_ENV, "CAM_PASSWORD": PASSWORD})
        stack.callback(_kill_if_running, serve)
        base = f"http://127.0.0.1:{api}"

        def all_fuse() -> bool:
            if serve.poll() is not None:
                raise AssertionError(f"serve ended: {log_path.read_text()[-3000:]}")
            try:
                rigs_now = _rigs(base)
            except OSError:  # the API not up yet: the head waits for its workers' engines first
                return False
            return len(rigs_now) == 4 and all(r.get("fused", 0) > 0 for r in rigs_now.values())

        _until("all four rigs fuse", all_fuse, timeout=180)
        status, body = _call(base, "GET", "/rigs", token=None)
        assert status == 200
        workers = {w["name"]: w for w in body["workers"]}
        assert len(workers) == 2 and sorted(len(w["rigs"]) for w in workers.values()) == [2, 2]
        # A rig its worker cannot start (its align file is not there) is refused in one line, not served.
        status, body = _call(base, "POST", "/rigs", {"name": "bad", "align": "missing.json",
                                                     "infrared": f"rtsp://127.0.0.1:{ports[0]}/cam",
                                                     "visible": f"rtsp://127.0.0.1:{ports[0]}/cam"}, token=None)
        assert status == 400 and body["error"].startswith("rig file not found"), body
        assert "\n" not in body["error"] and "bad" not in _rigs(base)
        # The worker on the node about to die: the one not on the head's node (the head runs serve).
        by_node: dict[str, list[str]] = {}
        for worker in workers.values():
            by_node.setdefault(worker["node"], []).extend(worker["rigs"])
        head_node = _head_node_id(address)
        (lost_node,) = [node for node in by_node if node != head_node]
        moved = sorted(by_node[lost_node])
        stayed = sorted(by_node[head_node])
        # Their recordings several seconds old first: what a segment cut by the loss keeps is checked.
        time.sleep(RECORDED_BEFORE_LOSS_S)
        fused_before = {name: r["fused"] for name, r in _rigs(base).items()}

        lost_at = datetime.now(timezone.utc)
        _power_off(worker_node.pid)  # the node loses power: its raylet and every worker at once
        killed = time.monotonic()

        def fusing_again() -> bool:
            now = _rigs(base)
            return all(now[name].get("node") == head_node and now[name].get("state") == "live"
                       and now[name].get("fused", 0) > 0 for name in moved)

        _until("the lost node's rigs fuse on the other node", fusing_again, timeout=MOVED_WITHIN_S)
        took = time.monotonic() - killed
        after = _rigs(base)
        assert all(after[name]["fused"] > fused_before[name] for name in stayed)  # they kept fusing
        _, text = _call(base, "GET", "/metrics", token=None)
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(text) for s in family.samples}
        assert samples[("occo_engine_workers_lost_total", ())] == 1
        for name in moved:
            assert samples[("occo_rig_moves_total", (("rig", name),))] == 1
        fused = {labels: v for (metric, labels), v in samples.items() if metric == "occo_fused_frames_total"}
        assert {dict(labels)["rig"] for labels in fused} == {f"gate-{k}" for k in range(4)}
        assert all("worker" in dict(labels) for labels in fused)

        # No room left (one worker, rigs_per_engine = 4): a fifth rig waits, and the API says so.
        status, body = _call(base, "POST", "/rigs", {"name": "late", "infrared": f"rtsp://127.0.0.1:{ports[0]}/cam",
                                                     "visible": f"rtsp://127.0.0.1:{ports[0]}/cam"}, token=None)
        assert status == 201 and body["state"] == "waiting" and "rigs_per_engine" in body["cause"], body
        _, body = _call(base, "GET", "/rigs", token=None)
        assert body["waiting"] == ["late"]
        status, _ = _call(base, "DELETE", f"/rigs/{stayed[0]}", token=None)  # frees a place
        assert status == 200
        _until("the waiting rig is placed", lambda: _rigs(base)["late"]["state"] not in ("waiting",), timeout=15)

        # A node that joins gets a worker of its own, and the next rig goes to it, the least loaded.
        stack.enter_context(ray_node("--address", address))
        _until("a worker on the new node", lambda: len([w for w in _call(base, "GET", "/rigs", token=None)[1]["workers"]
                                                        if w["node"] not in (head_node, lost_node)]) == 1, timeout=90)
        # The old worker is full again (the late rig took the freed place): the new rig goes to the new
        # worker, at once if its engine is loaded, else as soon as it is.
        camera = f"rtsp://admin:{PASSWORD}@127.0.0.1:{ports[1]}/cam"
        status, body = _call(base, "POST", "/rigs", {"name": "later", "infrared": camera, "visible": camera},
                             token=None)
        assert status == 201
        _until("the new rig fuses on the new node", lambda: _rigs(base)["later"].get("node") not in (head_node, None)
               and _rigs(base)["later"].get("fused", 0) > 0, timeout=90)

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
    lines = log_path.read_text().splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    # The rest are Ray's own notices, plain: no terminal colour codes in a service's log.
    assert all(line.startswith(("(raylet)", "\t")) or not line.strip() for line in lines if not line.startswith("{")), \
        [line for line in lines if not line.startswith("{")][:5]
    lost = [e for e in events if e.get("event") == "worker_lost"]
    assert len(lost) == 1 and sorted(lost[0]["rigs"]) == moved, lost
    assert PASSWORD not in log_path.read_text()
    print(f"rigs {moved} fused again {took:.1f} s after their node was killed")
    # The segments: those of the rigs that stayed, and those the moved rigs wrote on the surviving
    # node, play whole. The lost node's were cut by the power: each plays up to its last whole
    # fragment (a second each), so one begun more than a few seconds before the loss plays; one begun
    # just before it may hold no whole fragment yet.
    import cv2

    def plays(segment: Path) -> bool:
        cap = cv2.VideoCapture(str(segment))
        try:
            return bool(cap.read()[0])
        finally:
            cap.release()

    segments = sorted((tmp_path / "recordings").rglob("*.mp4"))
    assert {s.parent.name for s in segments} >= {f"gate-{k}" for k in range(4)}
    cut_and_checked = set()
    for segment in segments:
        begun = datetime.strptime(segment.stem.rsplit("-", 1)[1], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=timezone.utc)
        cut_by_the_loss = segment.parent.name in moved and begun < lost_at
        if not cut_by_the_loss or (lost_at - begun).total_seconds() > 5:
            if cut_by_the_loss:
                cut_and_checked.add(segment.parent.name)
            assert plays(segment), (f"{segment.name} does not play: begun {begun:%H:%M:%S.%f}, the node lost at "
                                    f"{lost_at:%H:%M:%S.%f}, {segment.stat().st_size} bytes")
    assert cut_and_checked == set(moved)


def _power_off(pid: int) -> None:
    """SIGKILL to ``pid`` and every process under it, at once: Ray's workers are not all in the
    ``ray start`` process's group."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def _kill_if_running(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _head_node_id(address: str) -> str:
    code = (f"import ray; ray.init(address='{address}', logging_level='ERROR', log_to_driver=False); "
            "print([n['NodeID'] for n in ray.nodes() if n['Alive'] and "
            "n['Resources'].get('node:__internal_head__')][0])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=RAY_ENV)
    return result.stdout.strip().splitlines()[-1]
