"""The service's Prometheus metrics, in a registry of its own (``/metrics``).

Per rig, labelled ``rig="NAME"``: fused frames, frames dropped (arrived while the engine was busy
with others, or beyond the rig's fps cap), reconnections, the capture-to-output latency, fps in and
out over the last seconds, and the state (1 for the current one). Per engine: the batch sizes and
the share of time it was busy.
"""

from __future__ import annotations

import contextlib
from typing import Any

#: The states a rig reports, one gauge each (1 for the current one), as kube-state-metrics does.
STATES = ("connecting", "live", "down", "stopped")
#: Why a visible frame was never fused: the engine took a newer one, the rig's fps cap, no infrared
#: partner, refused by the engine.
DROP_REASONS = ("busy", "fps_cap", "unpaired", "failed")
#: Capture-to-output latency buckets (s): a CPU engine takes a second or more, a GPU some ms.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.fused = Counter("occo_fused_frames", "Fused frames written out", ["rig"], registry=r)
        self.dropped = Counter("occo_dropped_frames", "Visible frames never fused (engine busy, fps cap, no partner, "
                               "refused by the engine)",
                               ["rig", "reason"], registry=r)
        self.recording_dropped = Counter("occo_recording_dropped_frames", "Fused frames the recording skipped: its "
                                         "encoder or disk was behind", ["rig"], registry=r)
        self.reconnections = Counter("occo_reconnections", "Times a camera came back after an outage",
                                     ["rig", "camera"], registry=r)
        self.latency = Histogram("occo_capture_to_output_seconds", "From a visible frame's arrival to its fused "
                                 "frame", ["rig"], buckets=LATENCY_BUCKETS, registry=r)
        self.fps_in = Gauge("occo_fps_in", "Visible frames arriving per second, last seconds", ["rig"], registry=r)
        self.fps_out = Gauge("occo_fps_out", "Fused frames per second, last seconds", ["rig"], registry=r)
        self.state = Gauge("occo_rig_state", "1 for the rig's current state", ["rig", "state"], registry=r)
        self.batch = Histogram("occo_engine_batch_frames", "Frames per engine call", buckets=(1, 2, 3, 4, 6, 8, 12, 16),
                               registry=r)
        self.busy = Gauge("occo_engine_busy_ratio", "Share of the last seconds the engine was computing", registry=r)
        self.rigs = Gauge("occo_rigs", "Rigs configured", registry=r)

    def set_state(self, rig: str, state: str) -> None:
        for name in STATES:
            self.state.labels(rig, name).set(1.0 if name == state else 0.0)

    def forget(self, rig: str) -> None:
        """A removed rig's series go (its counters would otherwise stay frozen in every scrape)."""
        for metric in (self.fused, self.latency, self.fps_in, self.fps_out, self.recording_dropped):
            _remove(metric, rig)
        for name in STATES:
            _remove(self.state, rig, name)
        for reason in DROP_REASONS:
            _remove(self.dropped, rig, reason)
        for camera in ("infrared", "visible"):
            _remove(self.reconnections, rig, camera)

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


def _remove(metric: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
