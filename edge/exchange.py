"""One request's exchange with the ASGI server: what the edge sends, and how it hears the
client leave. The edge's only I/O towards players; the same for h1, h2 and h3.

Bodies go out through :meth:`Exchange.body`, which waits while the server's buffer for the
response is full (granian and our HTTP/3 shell apply backpressure), at most
``send_timeout_s``: a client that takes no bytes for that long is cut (:class:`SlowReader`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from edge.errors import SlowReader
from edge.stalled import close_connection

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_PROTOCOLS = {"1.0": "h1", "1.1": "h1", "2": "h2", "3": "h3"}


class Exchange:
    """One request's response state (so the access log sees what was sent)."""

    def __init__(self, scope: Scope, send: Send, send_timeout_s: float = 30.0) -> None:
        self.scope = scope
        self._send = send
        self.send_timeout_s = send_timeout_s
        self.status = 0
        self.cache = "NONE"
        self.body_bytes = 0
        self.started = False
        self.cut = ""
        self.alt_svc: str | None = None
        self.receive: Receive | None = None
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                        for k, v in scope.get("headers", [])}

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def protocol(self) -> str:
        return _PROTOCOLS.get(self.scope.get("http_version", "1.1"), "h1")

    async def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.started = True
        if self.alt_svc:
            headers = [*headers, ("alt-svc", self.alt_svc)]
        await self._send({"type": "http.response.start", "status": status,
                          "headers": [(k.encode("latin-1"), v.encode("latin-1"))
                                      for k, v in headers]})

    async def body(self, data: bytes, more: bool) -> None:
        """Send body bytes; waits while the server's buffer for this response is full, at
        most ``send_timeout_s`` (then :class:`SlowReader`)."""
        try:
            async with asyncio.timeout(self.send_timeout_s):
                await self._send({"type": "http.response.body", "body": data, "more_body": more})
        except TimeoutError:
            if self.protocol == "h2":  # the stream cannot be reset from here: the connection goes
                close_connection(self.scope.get("server"), self.scope.get("client"))
            raise SlowReader(f"the client took no bytes for {self.send_timeout_s:g} s") from None
        self.body_bytes += len(data)

    async def send_full(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        headers = [h for h in headers if h[0] != "content-length"]
        headers.append(("content-length", str(len(data))))
        await self.start(status, headers)
        await self.body(b"" if self.method == "HEAD" else data, more=False)

    async def simple(self, status: int, text: str, cache: str | None = None) -> None:
        if cache is not None:
            self.cache = cache
        await self.send_full(status, [("content-type", "text/plain; charset=utf-8"),
                                      ("x-cache", self.cache if cache else "NONE")],
                             text.encode())

    async def json(self, status: int, obj: object) -> None:
        await self.send_full(status, [("content-type", "application/json"),
                                      ("cache-control", "no-store")],
                             json.dumps(obj).encode())


async def disconnected(receive: Receive | None) -> None:
    """Return when the client hangs up (ASGI ``http.disconnect``)."""
    if receive is None:
        await asyncio.Event().wait()
        return
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return
        if msg["type"] == "http.request" and not msg.get("more_body"):
            continue  # the (empty) request body; the next message is the hang-up
        await asyncio.sleep(0.05)  # pragma: no cover - a server that repeats itself


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes (the rest is not read)."""
    out = bytearray()
    while True:
        msg = await receive()
        if msg["type"] != "http.request":
            break
        out += msg.get("body", b"")
        if len(out) > limit:
            break
        if not msg.get("more_body"):
            break
    return bytes(out[:limit])


__all__ = ["Exchange", "Message", "Receive", "Scope", "Send", "disconnected", "read_body"]
