"""Fault-injection proxies for the tests: TCP and UDP, with toxiproxy's fault types.

No toxiproxy server can be installed here, so this is a small one of ours with the same
vocabulary (Shopify/toxiproxy, README "Toxics"): a proxy listens on 127.0.0.1, forwards to
one upstream address, and applies *toxics* to the bytes (TCP) or datagrams (UDP) going
``upstream`` (client → server) or ``downstream`` (server → client):

| toxic | attributes | effect |
|---|---|---|
| ``latency`` | ``latency_ms``, ``jitter_ms`` | each chunk is delayed (order kept) |
| ``bandwidth`` | ``rate_kbps`` (KB/s, as toxiproxy) | at most that rate |
| ``slow_close`` | ``delay_ms`` | the close is passed on late |
| ``timeout`` | ``timeout_ms`` | no data passes; closed after the timeout (0: held open) |
| ``reset_peer`` | ``timeout_ms`` | both sides get a TCP RST after the timeout |
| ``limit_data`` | ``bytes`` | the connection is closed once that many bytes passed |
| ``loss`` (UDP) | ``probability`` | datagrams dropped at random (seeded) |
| ``reorder`` (UDP) | ``probability``, ``delay_ms`` | datagrams held back so later ones overtake |

Toxics can be changed while connections are open (:meth:`TcpProxy.set`); they apply to
what passes from then on. The proxy runs on its own event loop in a thread, so that tests
written with blocking clients and subprocesses can use it; it is the outside world from
the services' point of view (a network), never a stand-in for our own code.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["upstream", "downstream"]
KINDS = frozenset({"latency", "bandwidth", "slow_close", "timeout", "reset_peer",
                   "limit_data", "loss", "reorder"})
UDP_ONLY = frozenset({"loss", "reorder"})
READ_BYTES = 64 * 1024


@dataclass(frozen=True)
class Toxic:
    """One fault, as toxiproxy names it."""

    kind: str
    """One of :data:`KINDS`."""
    direction: Direction = "downstream"
    """``upstream`` (client → server) or ``downstream`` (server → client)."""
    latency_ms: float = 0.0
    """latency: added delay per chunk or datagram."""
    jitter_ms: float = 0.0
    """latency: ± uniform jitter (order kept for TCP)."""
    rate_kbps: float = 0.0
    """bandwidth: KB/s (1 KB = 1000 bytes, as toxiproxy's ``rate``)."""
    delay_ms: float = 0.0
    """slow_close: delay of the close; reorder: how long a held datagram waits."""
    timeout_ms: float = 0.0
    """timeout / reset_peer: when the connection is closed or reset."""
    bytes: int = 0
    """limit_data: bytes that pass before the connection closes."""
    probability: float = 0.0
    """loss / reorder: share of datagrams affected."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown toxic {self.kind!r}; known: {', '.join(sorted(KINDS))}")
        if self.direction not in ("upstream", "downstream"):
            raise ValueError("direction is 'upstream' or 'downstream'")


@dataclass
class ProxyStats:
    """What passed through (read by tests)."""

    connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    datagrams_in: int = 0
    datagrams_dropped: int = 0
    datagrams_reordered: int = 0
    resets: int = 0


@dataclass
class _Proxy:
    target: tuple[str, int]
    seed: int = 1
    toxics: list[Toxic] = field(default_factory=list)
    stats: ProxyStats = field(default_factory=ProxyStats)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _rng: random.Random = field(default_factory=random.Random)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def url_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, *toxics: Toxic) -> None:
        """Replace the toxics (thread-safe: a list swap)."""
        self.toxics = list(toxics)

    def clear(self) -> None:
        self.toxics = []

    def _of(self, kind: str, direction: Direction) -> Toxic | None:
        for t in self.toxics:
            if t.kind == kind and t.direction == direction:
                return t
        return None


class _Closed(Exception):
    """The pump's connection ended (by a toxic or by a peer)."""


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy(_Proxy):
    """A TCP proxy with toxics; use :func:`tcp_proxy`."""

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _rst(c_writer)
            return
        start = time.monotonic()
        pumps = [asyncio.ensure_future(self._pump(c_reader, s_writer, "upstream", start)),
                 asyncio.ensure_future(self._pump(s_reader, c_writer, "downstream", start))]
        reset = asyncio.ensure_future(self._reset_watch(start))
        waiting: set[asyncio.Future[object]] = {*pumps, reset}  # type: ignore[arg-type]
        while True:
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if reset in done:
                self.stats.resets += 1
                _rst(c_writer)
                _rst(s_writer)
                break
            # A side's clean EOF is passed on (half-close) and the other side goes on;
            # a toxic's close (limit_data, timeout) or an error ends both.
            if any(t.cancelled() or t.exception() is not None for t in done) \
                    or all(p.done() for p in pumps):
                break
        for t in (*pumps, reset):
            t.cancel()
        await asyncio.gather(*pumps, reset, return_exceptions=True)
        for w in (c_writer, s_writer):
            if not w.transport.is_closing():
                w.close()

    async def _reset_watch(self, start: float) -> bool:
        """Returns True when a reset_peer toxic's time has come."""
        while True:
            for t in self.toxics:
                if t.kind == "reset_peer" and time.monotonic() - start >= t.timeout_ms / 1000:
                    return True
            await asyncio.sleep(0.01)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    direction: Direction, start: float) -> None:
        passed = 0
        last_due = 0.0
        while True:
            data = await reader.read(READ_BYTES)
            if not data:
                slow = self._of("slow_close", direction)
                if slow is not None:
                    await asyncio.sleep(slow.delay_ms / 1000)
                with suppress(OSError, RuntimeError):
                    writer.write_eof()
                return
            stop = self._of("timeout", direction)
            if stop is not None:
                if stop.timeout_ms:
                    rest = stop.timeout_ms / 1000 - (time.monotonic() - start)
                    await asyncio.sleep(max(rest, 0))
                    raise _Closed("timeout")
                await asyncio.Event().wait()  # held open, nothing passes
            limit = self._of("limit_data", direction)
            if limit is not None:
                data = data[:max(limit.bytes - passed, 0)]
            lat = self._of("latency", direction)
            if lat is not None:
                delay = lat.latency_ms + self._rng.uniform(-lat.jitter_ms, lat.jitter_ms)
                due = max(time.monotonic() + max(delay, 0) / 1000, last_due)  # order kept
                last_due = due
                await asyncio.sleep(max(due - time.monotonic(), 0))
            bw = self._of("bandwidth", direction)
            if bw is not None and bw.rate_kbps > 0:
                rate = bw.rate_kbps * 1000
                piece = max(int(rate / 20), 1)  # 50-ms slices
                for i in range(0, len(data), piece):
                    writer.write(data[i:i + piece])
                    await writer.drain()
                    await asyncio.sleep(len(data[i:i + piece]) / rate)
            else:
                writer.write(data)
                await writer.drain()
            passed += len(data)
            if direction == "upstream":
                self.stats.bytes_up += len(data)
            else:
                self.stats.bytes_down += len(data)
            if limit is not None and passed >= limit.bytes:
                raise _Closed(direction)


class UdpProxy(_Proxy):
    """A UDP proxy (one upstream socket per client address) with toxics; use :func:`udp_proxy`."""

    _server: asyncio.DatagramTransport | None = None
    _clients: dict[tuple[str, int], asyncio.DatagramTransport]

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._clients = {}
        proxy = self

        class Front(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                loop.create_task(proxy._from_client(data, addr))

        transport, _ = await loop.create_datagram_endpoint(Front, local_addr=("127.0.0.1", 0))
        self._server = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]

    async def _from_client(self, data: bytes, addr: tuple[str, int]) -> None:
        back = self._clients.get(addr)
        if back is None:
            loop = asyncio.get_running_loop()
            proxy = self

            class Back(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, _addr: tuple[str, int]) -> None:
                    loop.create_task(proxy._deliver(data, "downstream",
                                                    lambda d: proxy._to_client(d, addr)))

            t, _ = await loop.create_datagram_endpoint(Back, remote_addr=self.target)
            back = t  # type: ignore[assignment]
            self._clients[addr] = back
        await self._deliver(data, "upstream", back.sendto)

    def _to_client(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._server is not None:
            self._server.sendto(data, addr)

    async def _deliver(self, data: bytes, direction: Direction, send: object) -> None:
        self.stats.datagrams_in += 1
        loss = self._of("loss", direction)
        if loss is not None and self._rng.random() < loss.probability:
            self.stats.datagrams_dropped += 1
            return
        if self._of("timeout", direction) is not None:
            self.stats.datagrams_dropped += 1
            return
        delay = 0.0
        lat = self._of("latency", direction)
        if lat is not None:
            delay += max(lat.latency_ms + self._rng.uniform(-lat.jitter_ms, lat.jitter_ms), 0)
        reo = self._of("reorder", direction)
        if reo is not None and self._rng.random() < reo.probability:
            self.stats.datagrams_reordered += 1
            delay += reo.delay_ms
        if delay:
            await asyncio.sleep(delay / 1000)
        if direction == "upstream":
            self.stats.bytes_up += len(data)
        else:
            self.stats.bytes_down += len(data)
        send(data)  # type: ignore[operator]

    def _close(self) -> None:
        for t in self._clients.values():
            t.close()
        if self._server is not None:
            self._server.close()


@contextmanager
def _running(proxy: _Proxy, start: object) -> Iterator[None]:
    loop = asyncio.new_event_loop()
    proxy._loop = loop
    proxy._rng = random.Random(proxy.seed)
    ready = threading.Event()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            try:
                closer = await start()  # type: ignore[operator]
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                failure.append(exc)
                ready.set()
                return
            ready.set()
            await stop.wait()
            closer()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=run, daemon=True, name="fault-proxy")
    thread.start()
    ready.wait(10)
    if failure:
        raise failure[0]
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


@contextmanager
def tcp_proxy(host: str, port: int, *toxics: Toxic, seed: int = 1) -> Iterator[TcpProxy]:
    """A TCP proxy on 127.0.0.1 (a free port) to ``host:port`` until the block ends."""
    for t in toxics:
        if t.kind in UDP_ONLY:
            raise ValueError(f"{t.kind} is a UDP toxic")
    proxy = TcpProxy((host, port), seed=seed, toxics=list(toxics))

    async def start() -> object:
        server = await asyncio.start_server(proxy._handle, "127.0.0.1", 0)
        proxy.port = server.sockets[0].getsockname()[1]
        return server.close

    with _running(proxy, start):
        yield proxy


@contextmanager
def udp_proxy(host: str, port: int, *toxics: Toxic, seed: int = 1) -> Iterator[UdpProxy]:
    """A UDP proxy on 127.0.0.1 (a free port) to ``host:port`` until the block ends."""
    proxy = UdpProxy((host, port), seed=seed, toxics=list(toxics))

    async def start() -> object:
        await proxy._start()
        return proxy._close

    with _running(proxy, start):
        yield proxy
