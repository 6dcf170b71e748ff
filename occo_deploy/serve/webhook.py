"""A webhook on rigs going down and coming back: one JSON POST per change, off the engine's path.

    {"event": "rig_down", "rig": "gate", "state": "down", "was": "live",
     "causes": {"infrared": "connection refused ..."}, "time": "2026-12-05T10:15:00.123+00:00"}

Posts are queued and sent by a thread of their own (a slow receiver never delays fusion); a post
that fails is logged, once per cause, and not retried: the next change is posted anyway.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import queue
import threading
import urllib.error
import urllib.request
from typing import Any

from occo_deploy import log
from occo_deploy.urls import mask_all, mask_credentials

_log = log.get("serve")

#: Seconds a receiver has to answer.
TIMEOUT_S = 5.0
#: State changes worth a post: down, and back from down.
EVENTS = {("live", "down"): "rig_down", ("connecting", "down"): "rig_down", ("down", "live"): "rig_up"}


class Webhook:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sent = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=1000)
        self._said: str | None = None
        self._thread = threading.Thread(target=self._run, name="serve-webhook", daemon=True)
        self._thread.start()

    def state_changed(self, rig: str, state: str, was: str, causes: dict[str, str]) -> None:
        event = EVENTS.get((was, state))
        if event is None:
            return
        when = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
        # A receiver down for a long time: changes beyond the queue are only in the log.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait({"event": event, "rig": rig, "state": state, "was": was,
                                    "causes": mask_all(causes), "time": when})

    def close(self, wait_s: float = 2.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout=wait_s)

    def _run(self) -> None:
        while (body := self._queue.get()) is not None:
            request = urllib.request.Request(self.url, data=json.dumps(body).encode(), method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_S):
                    self.sent += 1
                self._said = None
            except (urllib.error.URLError, OSError, ValueError) as exc:
                cause = str(getattr(exc, "reason", exc))
                if cause != self._said:
                    self._said = cause
                    _log.warning("webhook %s did not take a post: %s", mask_credentials(self.url), cause,
                                 extra={"fields": {"event": "webhook_failed", "cause": cause}})
