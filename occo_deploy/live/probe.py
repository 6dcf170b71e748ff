"""Why a network source does not open: the cause in words, found the way the transport finds it.

OpenCV's FFmpeg backend knows (``DESCRIBE failed: 401``) but says only that it could not open. So
when a URL does not open, this asks the server itself, within ``timeout`` seconds: TCP connect
(refused, no answer, unknown host, unreachable), then for RTSP a ``DESCRIBE`` with the URL's user and
password (Basic, or Digest when the server asks for it), for HTTP a ``GET``: 401/403 (the user or
password), 404 (the path), no answer after connecting, no video track in the SDP. Nothing here is
printed or logged with the password.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import ssl
from urllib.parse import unquote, urlsplit, urlunsplit

#: Default ports per scheme.
PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935, "tcp": None, "srt": None}


def _strip_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def _digest(header: str, method: str, uri: str, user: str, password: str) -> str:
    """An RFC 2617 Digest ``Authorization`` (MD5, as cameras use) answering ``WWW-Authenticate``."""
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', header))
    realm, nonce = fields.get("realm", ""), fields.get("nonce", "")
    # MD5: what the Digest scheme of RTSP cameras specifies, not a choice.
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}"')


def _exchange(sock: socket.socket, request: bytes, timeout: float) -> bytes:
    sock.settimeout(timeout)
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    while length and len(body) < int(length.group(1)):
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _status(reply: bytes) -> tuple[int, str, str]:
    """(code, reason, the reply's text) of an RTSP or HTTP reply."""
    text = reply.decode("latin-1")
    first = text.split("\r\n", 1)[0].split(" ", 2)
    if len(first) < 2 or not first[1].isdigit():
        return 0, "", text
    return int(first[1]), first[2] if len(first) > 2 else "", text


def diagnose(url: str, timeout: float = 2.0) -> str:
    """The cause in a few words ("connection refused", "401 unauthorized: ..."), for the message that
    says a source is down; "" when the server answers as a working stream does (then the fault is
    the decoder's, or the stream's content)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in PORTS or not parts.hostname:
        return ""
    port = parts.port or PORTS[scheme]
    if port is None:
        return ""
    where = f"{parts.hostname}:{port}"
    try:
        sock = socket.create_connection((parts.hostname, port), timeout=timeout)
    except ConnectionRefusedError:
        return f"connection refused by {where}: nothing listens there"
    except socket.gaierror:
        return f"unknown host {parts.hostname}"
    except TimeoutError:
        return f"no answer from {where} within {timeout:g} s (down, or a firewall drops it)"
    except OSError as exc:
        return f"cannot reach {where}: {exc.strerror or exc}"
    try:
        if scheme in ("https", "rtsps"):
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
        if scheme.startswith("rtsp"):
            return _rtsp(sock, url, parts.username, parts.password, timeout)
        if scheme.startswith("http"):
            return _http(sock, url, parts.username, parts.password, timeout)
        return ""
    except TimeoutError:
        return f"{where} accepted the connection but did not answer within {timeout:g} s"
    except (OSError, ssl.SSLError) as exc:
        return f"{where} closed the connection ({exc.__class__.__name__})"
    finally:
        sock.close()


def _meaning(code: int, reason: str, has_credentials: bool, path: str) -> str:
    if code in (401, 407):
        return ("401 unauthorized: wrong user or password" if has_credentials
                else "401 unauthorized: the stream needs a user and password (scheme://user:password@host/...)")
    if code == 403:
        return "403 forbidden: this user may not watch this stream"
    if code == 404:
        return f"404 not found: no stream at {path or '/'} on this server"
    return f"{code} {reason}".strip()


def _rtsp(sock: socket.socket, url: str, user: str | None, password: str | None, timeout: float) -> str:
    uri = _strip_credentials(url)
    user, password = unquote(user or ""), unquote(password or "")

    def describe(cseq: int, auth: str | None) -> tuple[int, str, str]:
        lines = [f"DESCRIBE {uri} RTSP/1.0", f"CSeq: {cseq}", "Accept: application/sdp", "User-Agent: occo-deploy"]
        if auth:
            lines.append(f"Authorization: {auth}")
        return _status(_exchange(sock, ("\r\n".join(lines) + "\r\n\r\n").encode(), timeout))

    basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() if user else None
    code, reason, text = describe(1, basic)
    if code == 401 and user:
        challenge = re.search(r"(?im)^WWW-Authenticate:\s*(Digest .*)$", text)
        if challenge:
            code, reason, text = describe(2, _digest(challenge.group(1), "DESCRIBE", uri, user, password))
    if code == 0:
        return "the server's reply is not RTSP"
    if code != 200:
        return _meaning(code, reason, bool(user), urlsplit(url).path)
    if "m=video" not in text:
        return "no video track in the stream (its SDP lists none)"
    return ""


def _http(sock: socket.socket, url: str, user: str | None, password: str | None, timeout: float) -> str:
    parts = urlsplit(url)
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    lines = [f"GET {path} HTTP/1.0", f"Host: {parts.hostname}", "User-Agent: occo-deploy"]
    if user:
        token = base64.b64encode(f"{unquote(user)}:{unquote(password or '')}".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    code, reason, _ = _status(_exchange(sock, ("\r\n".join(lines) + "\r\n\r\n").encode(), timeout))
    if code == 0:
        return "the server's reply is not HTTP"
    return "" if 200 <= code < 300 else _meaning(code, reason, bool(user), parts.path)
