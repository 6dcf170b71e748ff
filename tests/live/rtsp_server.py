"""A real RTSP server for the live tests: GStreamer's gst-rtsp-server (Debian's
gir1.2-gst-rtsp-server-1.0, python3-gi), H.264 at 160x120 (or --width/--height), optionally behind a
user and password. With ``--record`` it is the other end instead: it takes a stream pushed to it
(RECORD, as MediaMTX or a VMS's ingest takes one), depayloads its H.264 and counts the frames.

    /usr/bin/python3 tests/live/rtsp_server.py --port 8554 --path /cam [--user u --password p]
    /usr/bin/python3 tests/live/rtsp_server.py --port 8554 --path /fused --record

Run with the system Python (its gi bindings); prints "ready" once it serves, and with ``--record``
"received N" at the first frame pushed to it and every 10th after. Camera-like: a 1 s GOP, live
timestamps, Basic authentication as many cameras offer it.
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
    parser.add_argument("--path", default="/cam")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--record", action="store_true", help="take a pushed stream and count its frames")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    if args.record:
        record(factory)
    else:
        factory.set_launch(
            f"( videotestsrc is-live=true pattern=ball ! "
            f"video/x-raw,width={args.width},height={args.height},framerate={args.fps}/1 "
            f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} ! rtph264pay name=pay0 pt=96 )")
        factory.set_shared(True)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", "media.factory.access", True)
        permissions.add_permission_for_role("viewer", "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot serve on port {args.port}", file=sys.stderr)
        return 1
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


def record(factory: Any) -> None:
    """Make ``factory`` take a pushed H.264 stream and print how many frames it depayloaded."""
    factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
    factory.set_launch("( rtph264depay name=depay0 ! fakesink name=sink signal-handoffs=true )")
    received = [0]

    def handoff(*_: Any) -> None:
        received[0] += 1
        if received[0] % 10 == 1:
            print(f"received {received[0]}", flush=True)

    factory.connect("media-configure",
                    lambda _factory, media: media.get_element().get_by_name("sink").connect("handoff", handoff))


if __name__ == "__main__":
    sys.exit(main())
