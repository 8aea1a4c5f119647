"""QUIC over a UDP socket on the event loop: the I/O half that aioquic's sans-I/O
``QuicConnection`` leaves to its user, shared by the server (edge/h3server.py) and the
client (edge/h3client.py).

- Reads: every waiting datagram per readiness event, handed over as one batch (asyncio's
  datagram transport reads one per loop iteration, and aioquic's protocol transmitted
  after each), so a connection processes a batch and sends once.
- Sends: right away, datagrams of one connection coalesced into one ``sendmsg`` with UDP
  generic segmentation offload (Linux ``UDP_SEGMENT``: the kernel cuts the buffer into
  datagrams; one system call for up to 64 of them) where the kernel allows it, else one
  ``sendto`` each. A full socket buffer drops the datagram, as the network would (QUIC
  retransmits).
- Timers: aioquic's one timer per connection on ``loop.call_at``, re-armed only when it
  moves; transmissions asked for during a loop iteration are made once, at its end
  (:meth:`QuicDriver.schedule`), so a response's headers, body and FIN share packets.

The socket buffers are raised to 4 MiB (the 208 KB default dropped packets, FACTS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any

from aioquic.quic.connection import QuicConnection

READ_BATCH = 64
"""Datagrams read per readiness event."""
BUFFER_BYTES = 4 * 2**20
"""SO_RCVBUF and SO_SNDBUF of every QUIC socket."""
_UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # linux/udp.h
_GSO_MAX_SEGMENTS = 64
_GSO_MAX_BYTES = 65000

Address = Any
Batch = list[tuple[bytes, Address]]


def udp_socket(host: str, port: int, reuseport: bool = False) -> socket.socket:
    """A bound, non-blocking UDP socket with 4 MiB buffers."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            s.setsockopt(socket.SOL_SOCKET, opt, BUFFER_BYTES)
    s.bind((host, port))
    s.setblocking(False)
    return s


class DatagramSocket:
    """A UDP socket served by the event loop (``loop.add_reader``): ``on_batch`` gets
    every datagram waiting at each readiness event. On a connected socket (a client's) the
    kernel reports ICMP errors (port unreachable: ``ConnectionRefusedError``) to ``on_error``."""

    def __init__(self, sock: socket.socket, on_batch: Callable[[Batch], None],
                 loop: asyncio.AbstractEventLoop | None = None, gso: bool = True,
                 on_error: Callable[[OSError], None] | None = None) -> None:
        self.sock = sock
        self.loop = loop or asyncio.get_running_loop()
        self.on_batch = on_batch
        self.on_error = on_error
        self.gso = gso and hasattr(sock, "sendmsg")
        self.closed = False
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        recvfrom = self.sock.recvfrom
        batch: Batch = []
        try:
            for _ in range(READ_BATCH):
                batch.append(recvfrom(65536))
        except BlockingIOError:  # drained
            pass
        except OSError as e:  # an ICMP error queued on the socket: reported, then go on
            if self.on_error is not None:
                self.on_error(e)
        if batch:
            self.on_batch(batch)

    def send(self, datagrams: Batch) -> None:
        """Send now; runs of equal-sized datagrams to one address go as one GSO buffer."""
        if self.closed:
            return
        sock = self.sock
        i, n = 0, len(datagrams)
        while i < n:
            data, addr = datagrams[i]
            size = len(data)
            j = i + 1
            if self.gso:
                total = size
                while (j < n and j - i < _GSO_MAX_SEGMENTS and datagrams[j][1] == addr
                       and len(datagrams[j][0]) <= size and total + size <= _GSO_MAX_BYTES):
                    total += len(datagrams[j][0])
                    j += 1
                    if len(datagrams[j - 1][0]) < size:
                        break  # a shorter datagram ends a segmented buffer
            try:
                if j - i > 1:
                    sock.sendmsg([b"".join([d for d, _ in datagrams[i:j]])],
                                 [(socket.SOL_UDP, _UDP_SEGMENT, struct.pack("=H", size))],
                                 0, addr)
                else:
                    sock.sendto(data, addr)
            except BlockingIOError:
                pass  # a full buffer: lost, as on the network
            except OSError:
                if j - i > 1:  # this kernel or device refuses GSO: one datagram each
                    self.gso = False
                    continue
            i = j

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


class QuicDriver:
    """Drives one ``QuicConnection``: its timer and its transmissions. Subclasses handle
    the connection's events in :meth:`handle_events` (drain ``quic.next_event()``)."""

    def __init__(self, quic: QuicConnection, endpoint: DatagramSocket) -> None:
        self.quic = quic
        self.endpoint = endpoint
        self.loop = endpoint.loop
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None
        self.flush_pending = False
        self.closed = False

    def handle_events(self) -> None:
        """Drain and act on ``self.quic.next_event()``."""
        raise NotImplementedError

    def received(self, batch: Batch) -> None:
        """Feed datagrams of this connection to aioquic, then act and send once."""
        quic, clock = self.quic, self.loop.time
        for data, addr in batch:
            quic.receive_datagram(data, addr, now=clock())
        self.handle_events()
        self.transmit()

    def transmit(self) -> None:
        """Send what aioquic has to send now and re-arm its timer."""
        self.flush_pending = False
        quic = self.quic
        datagrams = quic.datagrams_to_send(now=self.loop.time())
        if datagrams:
            self.endpoint.send(datagrams)
        self.after_transmit()
        self.arm(None if self.closed else quic.get_timer())

    def arm(self, timer_at: float | None) -> None:
        """Make aioquic's timer fire at ``timer_at`` (None: not at all)."""
        if timer_at != self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            if timer_at is not None:
                self.timer = self.loop.call_at(timer_at, self._on_timer)
            self.timer_at = timer_at

    def after_transmit(self) -> None:
        """Hook: runs after each transmission (e.g. to wake writers waiting for room)."""

    def schedule(self) -> None:
        """Transmit once, at the end of this loop iteration (writes made meanwhile share
        packets and one ``datagrams_to_send``)."""
        if not self.flush_pending:
            self.flush_pending = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        if self.flush_pending:
            self.transmit()

    def _on_timer(self) -> None:
        self.timer = None
        now = max(self.timer_at or 0.0, self.loop.time())
        self.timer_at = None
        self.quic.handle_timer(now=now)
        self.handle_events()
        self.transmit()

    def stop_timer(self) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.timer_at = None
