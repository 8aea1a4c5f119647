"""HTTP clients for the real player, one connection per session as a browser would:
aiohttp for HTTP/1.1, our thin client on `h2` for HTTP/2 (TLS + ALPN), aioquic (edge.h3client) for HTTP/3.

Every client offers one call, :meth:`HttpClient.request`: send a GET, report the reply
(status, headers, negotiated protocol), then hand the body over chunk by chunk to an
async callback that may stop it (abandonment, shaping). Transport failures become
:class:`TransportFailure`, which the player retries; the client reconnects by itself.
Failures that no retry can fix (an untrusted certificate, a hostname mismatch, a refused
first connection to a host) become a plain :class:`PlayerError` with a hint instead.

No client follows redirects: the player does, hop by hop, checking each hop's host.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from player_sim.errors import PlayerError

PROTOCOLS = ("h1", "h2", "h3")
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Reply:
    """Status line and headers of a response."""

    status: int
    headers: dict[str, str]
    """Header names in lower case."""
    protocol: str
    """Negotiated HTTP version: ``1.1``, ``2`` or ``3``."""


class TransportFailure(PlayerError):
    """The connection failed, timed out or was reset (retried by the player)."""


OnChunk = Callable[[bytes], Awaitable[bool]]
"""Called with each body chunk; returns False to stop reading (the request is cancelled)."""


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def host_port(url: str) -> str:
    """``HOST:PORT`` of a URL (the scheme's default port when none is given)."""
    u = urlsplit(url)
    return f"{u.hostname or ''}:{u.port or (443 if u.scheme == 'https' else 80)}"


def failure(exc: BaseException, url: str, reached: set[str]) -> PlayerError:
    """What a failed request becomes: a :class:`TransportFailure` (retried) unless retrying cannot
    fix it; ``reached`` holds the ``HOST:PORT``s that have answered before in this session."""
    hp = host_port(url)
    causes = list(_causes(exc))
    tls = [e for e in causes if isinstance(e, ssl.SSLCertVerificationError)]
    if tls:  # the innermost is ssl's own (aiohttp's wrapper subclasses it without verify_message)
        reason = (getattr(tls[-1], "verify_message", None) or "verification failed").rstrip(".")
        return PlayerError(f"the certificate of {hp} is not trusted ({reason}): pass --cacert FILE "
                           "(e.g. the edge's cert.pem) or --insecure")
    for e in causes:
        if isinstance(e, ConnectionRefusedError) and hp not in reached:
            # Refused after an earlier answer is a restart (retried); refused at once is a wrong port.
            return PlayerError(f"nothing listens on {hp} (connection refused for {url})")
    return TransportFailure(f"{url}: {type(exc).__name__}: {exc}")


def ssl_context(cafile: str | None, insecure: bool) -> ssl.SSLContext | bool:
    if insecure:
        return False
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx


class HttpClient:
    """Base: `request(url, headers, on_reply, on_chunk) -> Reply`."""

    protocol = ""
    reached: set[str]
    """``HOST:PORT``s that have answered in this session (see :func:`failure`)."""

    def __init__(self) -> None:
        self.reached = set()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection."""

    async def request(self, url: str, headers: dict[str, str], on_chunk: OnChunk,
                      method: str = "GET") -> Reply:
        raise NotImplementedError


class H1Client(HttpClient):
    """HTTP/1.1 over one keep-alive connection (aiohttp)."""

    protocol = "h1"

    def __init__(self, cafile: str | None = None, insecure: bool = False) -> None:
        super().__init__()
        self._ssl = ssl_context(cafile, insecure)
        self._session: Any = None

    def _client(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=1, ssl=self._ssl, force_close=False)
            timeout = aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                                  auto_decompress=False)
        return self._session

    async def request(self, url: str, headers: dict[str, str], on_chunk: OnChunk,
                      method: str = "GET") -> Reply:

        import aiohttp

        try:
            async with self._client().request(method, url, headers=headers, allow_redirects=False) as r:
                self.reached.add(host_port(url))
                reply = Reply(r.status, {k.lower(): v for k, v in r.headers.items()},
                              f"{r.version.major}.{r.version.minor}")
                async for chunk in r.content.iter_any():
                    if not await on_chunk(chunk):
                        r.close()  # HTTP/1.1 cannot cancel a response but by closing
                        break
                return reply
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            await self.close()
            raise failure(exc, url, self.reached) from None

    async def close(self) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None


class H2Client(HttpClient):
    """HTTP/2 over one TLS connection (player_sim.h2client, on the h2 state machine)."""

    protocol = "h2"

    def __init__(self, cafile: str | None = None, insecure: bool = False) -> None:
        super().__init__()
        from player_sim.h2client import H2Connection, tls_context

        self._conn = H2Connection(tls_context(cafile, insecure), CONNECT_TIMEOUT_S, READ_TIMEOUT_S)

    async def request(self, url: str, headers: dict[str, str], on_chunk: OnChunk,
                      method: str = "GET") -> Reply:
        if not url.startswith("https://"):
            raise PlayerError(f"HTTP/2 needs an https:// URL (TLS with ALPN): {url}")
        try:
            status, head, body = await self._conn.request(method, url, headers)
            self.reached.add(host_port(url))
            try:
                async for chunk in body:
                    if not await on_chunk(chunk):
                        break  # closing the body resets the stream (RST_STREAM)
            finally:
                body.close()
            return Reply(status, head, "2")
        except (TimeoutError, OSError, ConnectionError, ssl.SSLError) as exc:
            await self.close()
            raise failure(exc, url, self.reached) from None

    async def close(self) -> None:
        await self._conn.close()


class H3Client(HttpClient):
    """HTTP/3 over one QUIC connection (aioquic, through edge.h3client)."""

    protocol = "h3"

    def __init__(self, cafile: str | None = None, insecure: bool = False,
                 max_datagram_bytes: int = 1350) -> None:
        super().__init__()
        self._cafile, self._insecure = cafile, insecure
        self._datagram = max_datagram_bytes
        self._conn: Any = None
        self._key: tuple[str, int] | None = None

    async def _get(self, host: str, port: int) -> Any:
        from edge.h3client import H3Client as Quic

        if self._conn is None or self._key != (host, port):
            await self.close()
            conn = Quic(host, port, verify=not self._insecure, cafile=self._cafile,
                        max_datagram_bytes=self._datagram)
            await conn.__aenter__()
            self._conn, self._key = conn, (host, port)
        return self._conn

    async def request(self, url: str, headers: dict[str, str], on_chunk: OnChunk,
                      method: str = "GET") -> Reply:
        import asyncio

        u = urlsplit(url)
        if u.scheme != "https":
            raise PlayerError(f"HTTP/3 needs an https:// URL: {url}")
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        box: dict[str, Reply] = {}

        def on_headers(status: int, hd: dict[str, str]) -> None:
            self.reached.add(host_port(url))
            box["reply"] = Reply(status, {k.lower(): v for k, v in hd.items()}, "3")

        try:
            conn = await asyncio.wait_for(self._get(u.hostname or "127.0.0.1", u.port or 443),
                                          CONNECT_TIMEOUT_S)
            body = conn.stream(path, headers, method, on_headers)
            try:
                while True:
                    chunk = await asyncio.wait_for(body.__anext__(), READ_TIMEOUT_S)
                    if not await on_chunk(chunk):
                        break
            except StopAsyncIteration:
                pass
            finally:
                with contextlib.suppress(Exception):
                    await body.aclose()
        except (TimeoutError, OSError, ConnectionError) as exc:
            await self.close()
            raise failure(exc, url, self.reached) from None
        except Exception as exc:  # aioquic / H3Error: the connection is unusable
            if isinstance(exc, PlayerError):
                raise
            await self.close()
            raise failure(exc, url, self.reached) from None
        if "reply" not in box:
            await self.close()
            raise TransportFailure(f"{url}: the stream ended without a response")
        return box["reply"]

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.__aexit__(None, None, None)
            self._conn = None


def make_client(protocol: str, cafile: str | None = None, insecure: bool = False,
                quic_datagram_bytes: int = 1350) -> HttpClient:
    """The client for ``h1``, ``h2`` or ``h3`` (QUIC datagrams up to ``quic_datagram_bytes``)."""
    if protocol == "h1":
        return H1Client(cafile, insecure)
    if protocol == "h2":
        return H2Client(cafile, insecure)
    if protocol == "h3":
        return H3Client(cafile, insecure, quic_datagram_bytes)
    raise PlayerError(f"unknown protocol {protocol!r}; choose h1, h2 or h3")
