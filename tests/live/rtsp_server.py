"""A real RTSP server for the live tests: GStreamer's gst-rtsp-server (Debian's
gir1.2-gst-rtsp-server-1.0, python3-gi), H.264 at 160x120 (or --width/--height), optionally behind a
user and password.

    /usr/bin/python3 tests/live/rtsp_server.py --port 8554 --path /cam [--user u --password p]

Run with the system Python (its gi bindings); prints "ready" once it serves. Camera-like: a 1 s GOP,
live timestamps, Basic authentication as many cameras offer it.
"""

from __future__ import annotations

import argparse
import sys

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
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
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


if __name__ == "__main__":
    sys.exit(main())
