"""Live cameras: two streams fused in real time, newest frames first, with a browser preview.

``sources`` reads a stream (RTSP, UDP, TCP, HTTP, SRT, a local camera, or a file played at its own
rate) on a thread of its own, keeps only the newest frames and reconnects when it drops;
``fusion`` pairs the newest visible frame with the infrared frame nearest in time, fuses it and
measures capture-to-output latency, dropping what it cannot keep up with; ``preview`` serves the
fused stream as MJPEG with the live figures; ``job`` is what ``fuse --live`` runs.

    from occo_deploy import Fuser
    from occo_deploy.live import LiveFusion, open_source

    with Fuser("engines/occo_int8_openvino.onnx") as fuser, \\
            open_source("rtsp://cam-ir/stream", "infrared") as ir, open_source("camera:0", "visible") as vis:
        for frame in LiveFusion(fuser, ir, vis):
            show(frame.fused, frame.latency_ms)
"""

from occo_deploy.errors import SourceError
from occo_deploy.live.fusion import LiveFrame, LiveFusion
from occo_deploy.live.sources import Source, open_source

__all__ = ["LiveFrame", "LiveFusion", "Source", "SourceError", "open_source"]
