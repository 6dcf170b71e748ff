"""Camera credentials never leave the URL: ``rtsp://user:secret@host/...`` is shown as
``rtsp://user:***@host/...`` in every message, log, report and page.

Cameras take their user and password in the URL (RTSP, HTTP MJPEG, RTMP), so any text that quotes a
source can leak them: an error line, a ``--report`` JSON, the preview's ``/stats.json``, which
``--preview 0.0.0.0:PORT`` serves to the network. ``mask_credentials`` is applied where a source is
named and once more where text leaves the program (the CLI's error line, reports, the preview).
"""

from __future__ import annotations

import re
from typing import Any

#: ``scheme://user:password@`` (the password masked) or ``scheme://token@`` (a lone user part of a URL
#: that carries no password is left: it is a user name, not a secret).
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s?#]*):(?P<password>[^/\s?#]*)@")
#: Secrets some cameras take in the query string instead (``?user=admin&password=...``).
_QUERY = re.compile(r"(?P<key>[?&;](?:password|passwd|pwd|pass|token|auth|key|secret)=)(?P<value>[^&;#\s]*)",
                    re.IGNORECASE)
MASK = "***"


def mask_credentials(text: str) -> str:
    """``text`` with every URL password (and password-like query value) replaced by ``***``."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _QUERY.sub(lambda m: f"{m['key']}{MASK}", text)


def mask_all(value: Any) -> Any:
    """``mask_credentials`` through a JSON-like value (dicts, lists, strings): for reports and pages."""
    if isinstance(value, str):
        return mask_credentials(value)
    if isinstance(value, dict):
        return {k: mask_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_all(v) for v in value]
    return value
