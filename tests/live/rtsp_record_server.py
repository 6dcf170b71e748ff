"""A real RTSP server that takes streams pushed to it (RECORD, as MediaMTX or a VMS's ingest takes
them): GStreamer's gst-rtsp-server, H.264 depayloaded and counted. For the serve tests.

    /usr/bin/python3 tests/live/rtsp_record_server.py --port 8554 --path /fused

Run with the system Python (its gi bindings); prints "ready" once it serves, then "received N" at
the first H.264 frame pushed to it and every 10th after.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/fused")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
    factory.set_launch("( rtph264depay name=depay0 ! fakesink name=sink signal-handoffs=true )")
    received = [0]

    def handoff(*_: Any) -> None:
        received[0] += 1
        if received[0] % 10 == 1:
            print(f"received {received[0]}", flush=True)

    def configure(_factory: Any, media: Any) -> None:
        media.get_element().get_by_name("sink").connect("handoff", handoff)

    factory.connect("media-configure", configure)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot serve on port {args.port}", file=sys.stderr)
        return 1
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
