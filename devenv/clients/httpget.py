"""A plain HTTP GET for the server's health endpoints, without urllib's import cost (it pulls in http.client, email).

HTTP/1.0, one request per connection: the server sends the whole body and closes, so there is no chunked encoding
or keep-alive to handle. Only http:// (the server is published on the host's loopback or the engine's host).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_BODY = 1 << 20  # a health endpoint that sends more than 1 MiB is cut there


@dataclass(frozen=True)
class Response:
    """A status code and the body."""

    status: int
    body: bytes


def get(url: str, *, timeout: float = 2.0) -> Response:
    """GET URL; OSError when nothing answers (refused, reset, timed out) or the answer is not HTTP."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http:// URL: {url!r}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    request = f"GET {target} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: devenv\r\nAccept: */*\r\n\r\n".encode()
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout) as sock:
        sock.sendall(request)
        chunks: list[bytes] = []
        size = 0
        while size < MAX_BODY and (chunk := sock.recv(65536)):
            chunks.append(chunk)
            size += len(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/\d(?:\.\d)? (\d{3})", head)
    if not match:
        raise ConnectionError(f"not an HTTP answer from {url}: {head[:40]!r}")
    return Response(int(match.group(1)), body)
