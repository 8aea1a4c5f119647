"""Carry the emulated link's server side to a server on this machine's loopback.

The edge that ``abr play URL --emulate`` measures already runs on 127.0.0.1, outside the
namespaces. A process inside the server namespace makes one TCP listener and one UDP socket
on ``SERVER_ADDR:port`` and hands them over a Unix socket (SCM_RIGHTS) to this process,
which stays in the root namespace: a socket keeps the namespace it was made in. Each TCP
connection and each UDP peer accepted there is relayed to ``127.0.0.1:port``. So the players
in the client namespace reach the URL's server only through the emulated link.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys

from player_sim.netem import SERVER_ADDR, EmulatedLink

_MAKE = """
import socket, sys
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind((sys.argv[1], int(sys.argv[2]))); tcp.listen(128)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind((sys.argv[1], int(sys.argv[2])))
u = socket.socket(fileno=int(sys.argv[3]))  # the parent's end of a socketpair, inherited
socket.send_fds(u, [b"fds"], [tcp.fileno(), udp.fileno()])
"""


def sockets_in_server_ns(link: EmulatedLink, port: int) -> tuple[socket.socket, socket.socket]:
    """A TCP listener and a UDP socket on ``SERVER_ADDR:port`` that belong to the server namespace."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    p = subprocess.Popen(["ip", "netns", "exec", link.server_ns, sys.executable, "-c", _MAKE, SERVER_ADDR, str(port), str(b.fileno())], pass_fds=(b.fileno(),))
    b.close()
    _, fds, _, _ = socket.recv_fds(a, 16, 2)
    p.wait(10)
    a.close()
    if len(fds) != 2:
        raise OSError("the server namespace did not hand over its sockets")
    tcp = socket.socket(fileno=fds[0])
    udp = socket.socket(fileno=fds[1])
    tcp.setblocking(False)
    udp.setblocking(False)
    return tcp, udp


async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.CancelledError):
        while data := await r.read(1 << 16):
            w.write(data)
            await w.drain()
    with contextlib.suppress(OSError):
        w.close()


class _UdpPeer(asyncio.DatagramProtocol):
    """Upstream socket of one client address: replies go back out through the namespace socket."""

    def __init__(self, downstream: asyncio.DatagramTransport, client: tuple[str, int]) -> None:
        self.downstream, self.client = downstream, client

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.downstream.sendto(data, self.client)


class _UdpFront(asyncio.DatagramProtocol):
    def __init__(self, port: int) -> None:
        self.port = port
        self.transport: asyncio.DatagramTransport | None = None
        self.peers: dict[tuple[str, int], asyncio.DatagramTransport] = {}
        self.pending: dict[tuple[str, int], list[bytes]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        up = self.peers.get(addr)
        if up is not None:
            up.sendto(data)
            return
        if addr in self.pending:
            self.pending[addr].append(data)
            return
        self.pending[addr] = [data]
        asyncio.get_running_loop().create_task(self._open(addr))

    async def _open(self, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        up, _ = await loop.create_datagram_endpoint(lambda: _UdpPeer(self.transport, addr),  # type: ignore[arg-type]
                                                    remote_addr=("127.0.0.1", self.port))
        self.peers[addr] = up
        for d in self.pending.pop(addr, []):
            up.sendto(d)


async def relay(tcp: socket.socket, udp: socket.socket, port: int, until: asyncio.Future[None]) -> None:
    """Relay TCP connections and UDP peers to ``127.0.0.1:port`` until ``until`` is done."""

    async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            w.close()
            return
        await asyncio.gather(_pipe(r, uw), _pipe(ur, w))

    server = await asyncio.start_server(on_conn, sock=tcp)
    loop = asyncio.get_running_loop()
    front_t, front = await loop.create_datagram_endpoint(lambda: _UdpFront(port), sock=udp)
    try:
        await until
    finally:
        server.close()
        front_t.close()
        for t in front.peers.values():
            t.close()
