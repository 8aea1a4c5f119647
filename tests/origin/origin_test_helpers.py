"""Helpers of the origin tests (a module of its own so that test files can import it)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


def raw_request(
    base_url: str, method: str, target: bytes | str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Sends one HTTP/1.1 request with the request-target exactly as given (no client
    normalises ``..`` or percent-escapes) and returns (status, lower-case headers, body)."""
    parts = urlsplit(base_url)
    assert parts.hostname is not None and parts.port is not None
    raw_target = target.encode("latin-1") if isinstance(target, str) else target
    lines = [method.encode() + b" " + raw_target + b" HTTP/1.1", b"Host: " + parts.netloc.encode()]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}".encode("latin-1"))
    lines.append(b"Connection: close")
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        parsed[key.strip().lower()] = value.strip()
    return int(status_line.split()[1]), parsed, body
