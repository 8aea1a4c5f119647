"""HTTP/3 serving: hypercorn's QUIC server with aioquic, tuned for throughput.

Tuning applied to hypercorn 0.18 / aioquic 1.7.2 (measured with bench/edge.py, loopback):

- hypercorn (``apply_quic_tuning``): larger flow-control windows (``max_data`` 16 MiB,
  ``max_stream_data`` 8 MiB; the 1 MiB defaults stall a 1 MB object); every waiting
  datagram read per readiness event and handled as one batch, one
  ``datagrams_to_send`` per connection per batch or loop iteration (a response's
  headers, body and FIN share packets), the QUIC timer on ``loop.call_at`` (hypercorn
  restarted a task per send), no 10-deep datagram queue that silently dropped
  datagrams; datagrams clamped to the peer's ``max_udp_payload_size``; glibc keeps
  freed heap (no page fault per 4 KiB sent).
- aioquic (``patch_aioquic``, both ends, also used by ``edge.h3client``): STREAM frames
  larger than 16 KB (datagrams up to 65000), fewer copies of each payload, O(1) rather
  than O(open streams) work per packet built, header checks in C.

The socket buffers (4 MiB ``SO_RCVBUF``/``SO_SNDBUF``: the 208 KB default drops packets,
FACTS.md) are set where the UDP socket is bound (edge/server.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from edge.handshakes import Admit, HandshakeBudget, HandshakeLimits

_TRIM_THRESHOLD = 32 * 2**20
_READ_BATCH = 64
"""Datagrams read per readiness event (one batch, one send per connection)."""
_MAX_BACKLOG = 4096
"""Datagrams queued for the QUIC protocol before new ones are dropped."""
H3_STREAM_BUFFER_BYTES = 1024 * 1024
"""Unacknowledged bytes one HTTP/3 response may hold in its QUIC stream buffer before the
app's next body ``send`` waits (backpressure: aioquic itself buffers without bound)."""

_patched = False
_aioquic_patched = False
_settings = {"max_datagram_bytes": 1350}
_settings_limits = {"handshakes": HandshakeLimits()}


def read_datagrams_directly(transport: Any, loop: Any,
                            on_readable: Callable[[], None]) -> socket.socket | None:
    """Take over the reads of an asyncio datagram transport: ``on_readable`` runs on each
    readiness event and reads the socket itself (with :func:`recv_batch`); asyncio reads
    one datagram per loop iteration. Returns the socket, or None where that is not
    possible (a loop without asyncio's ``_add_reader``, e.g. uvloop): asyncio's path
    stays in place."""
    sock = getattr(transport, "_sock", None)
    if transport is None or not isinstance(sock, socket.socket):
        return None
    add_reader = getattr(loop, "_add_reader", None)  # loop.add_reader refuses a transport's fd
    if add_reader is None:
        return None
    try:
        transport.pause_reading()
        add_reader(sock.fileno(), on_readable)
    except Exception:
        with contextlib.suppress(Exception):
            transport.resume_reading()
        return None
    return sock


def recv_batch(sock: socket.socket) -> list[tuple[bytes, Any]]:
    """Every datagram waiting on ``sock`` (at most ``_READ_BATCH``)."""
    recvfrom = sock.recvfrom
    batch = []
    try:
        for _ in range(_READ_BATCH):
            batch.append(recvfrom(65536))
    except OSError:  # BlockingIOError: drained; others: as asyncio, drop and go on
        pass
    return batch


def patch_aioquic() -> None:
    """Patch aioquic's QuicConnection (both ends; idempotent, safe on any path).

    - STREAM and CRYPTO frames: aioquic writes their length as a 2-byte varint, so a
      datagram larger than ~16 KB yields an unparseable frame (the peer closes with
      FRAME_ENCODING_ERROR). Use a 4-byte length when the packet has room for more than
      16383 bytes, so ``max_datagram_size`` up to 65000 works (loopback).
    """
    global _aioquic_patched
    if _aioquic_patched:
        return
    _aioquic_patched = True
    from aioquic.buffer import size_uint_var
    from aioquic.quic.connection import QuicConnection
    from aioquic.quic.packet import QuicFrameType

    stream_base = QuicFrameType.STREAM_BASE

    def _write_stream_frame(self: Any, builder: Any, space: Any, stream: Any,
                            max_offset: int) -> int:
        sender = stream.sender
        nxt = sender.next_offset
        base = 1 + size_uint_var(stream.stream_id) + (size_uint_var(nxt) if nxt else 0)
        room = builder.remaining_flight_space
        wide = room - base - 2 > 16383
        overhead = base + (4 if wide else 2)
        previous_send_highest = sender.highest_offset
        frame = sender.get_frame(room - overhead, max_offset)
        if frame is None:
            return 0
        frame_type = stream_base | 2
        if frame.offset:
            frame_type |= 4
        if frame.fin:
            frame_type |= 1
        n = len(frame.data)
        buf = builder.start_frame(frame_type, capacity=overhead,
                                  handler=sender.on_data_delivery,
                                  handler_args=(frame.offset, frame.offset + n, frame.fin))
        buf.push_uint_var(stream.stream_id)
        if frame.offset:
            buf.push_uint_var(frame.offset)
        if wide:
            buf.push_uint32(n | 0x80000000)
        else:
            buf.push_uint16(n | 0x4000)
        buf.push_bytes(frame.data)
        if self._quic_logger is not None:
            builder.quic_logger_frames.append(
                self._quic_logger.encode_stream_frame(frame, stream_id=stream.stream_id))
        return int(sender.highest_offset - previous_send_highest)

    def _write_crypto_frame(self: Any, builder: Any, space: Any, stream: Any) -> bool:
        overhead = 3 + size_uint_var(stream.sender.next_offset)
        frame = stream.sender.get_frame(min(builder.remaining_flight_space - overhead, 16383))
        if frame is None:
            return False
        buf = builder.start_frame(
            QuicFrameType.CRYPTO, capacity=overhead, handler=stream.sender.on_data_delivery,
            handler_args=(frame.offset, frame.offset + len(frame.data), False))
        buf.push_uint_var(frame.offset)
        buf.push_uint16(len(frame.data) | 0x4000)
        buf.push_bytes(frame.data)
        if self._quic_logger is not None:
            builder.quic_logger_frames.append(self._quic_logger.encode_crypto_frame(frame))
        return True

    QuicConnection._write_stream_frame = _write_stream_frame  # type: ignore[method-assign]
    _patch_copies()
    _patch_write_application()
    _patch_header_checks()
    _patch_h3_per_request()


class _Chunks:
    """A stream's unacknowledged send data as the ``bytes`` objects written (no copy
    into one bytearray); frames are copied out of them once. Supports what
    ``QuicStreamSender`` does with its buffer: ``+=``, ``len``, ``del buf[:n]``."""

    __slots__ = ("chunks", "size", "head")

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.head = 0  # bytes of chunks[0] already dropped

    def __len__(self) -> int:
        return self.size

    def __iadd__(self, data: bytes) -> _Chunks:
        if data:
            self.chunks.append(data if type(data) is bytes else bytes(data))
            self.size += len(data)
        return self

    def __delitem__(self, index: slice) -> None:
        n = min(index.stop or 0, self.size)
        self.size -= n
        n += self.head
        chunks = self.chunks
        while chunks and n >= len(chunks[0]):
            n -= len(chunks.popleft())
        self.head = n

    def view(self, start: int, stop: int) -> bytes:
        """Bytes ``start:stop`` (from the buffer start), copied once."""
        start += self.head
        stop += self.head
        parts: list[bytes | memoryview] = []
        for c in self.chunks:
            n = len(c)
            if start < n:
                if stop <= n and not parts:
                    # one copy (aioquic's Buffer.push_bytes takes no memoryview)
                    return c if start == 0 and stop == n else bytes(memoryview(c)[start:stop])
                parts.append(memoryview(c)[start:min(stop, n)])
                if stop <= n:
                    break
                start = 0
            else:
                start -= n
            stop -= n
        return b"".join(parts)


_MIN_FRAME_ROOM = 24
"""Bytes left in a packet below which no further stream is offered a STREAM frame."""

_WRITE_APPLICATION_EDITS = [
    # MAX_STREAM_DATA only change when data arrives, never while packets are built:
    # offer them in the first packet of a datagrams_to_send() call, not in each one.
    ("""        space = self._spaces[tls.Epoch.ONE_RTT]

        while True:
""", """        space = self._spaces[tls.Epoch.ONE_RTT]
        first_packet = True

        while True:
"""),
    ("""            # stream-level limits
            for stream in self._streams.values():
                self._write_stream_limits(builder=builder, space=space, stream=stream)
""", """            # stream-level limits
            if first_packet:
                first_packet = False
                for stream in self._streams.values():
                    self._write_stream_limits(builder=builder, space=space, stream=stream)
"""),
    # A full packet stops the round of streams (it offered every open stream a frame).
    ("""                for stream in self._streams_queue:
                    # if the stream is finished, discard it
""", """                for stream in self._streams_queue:
                    if builder.remaining_flight_space < _MIN_FRAME_ROOM:
                        break
                    # if the stream is finished, discard it
"""),
    ("""                self._streams_queue = [
                    stream
                    for stream in self._streams_queue
                    if not (stream in discarded or stream in sent)
                ]
                self._streams_queue.extend(sent)
""", """                if discarded or sent:
                    self._streams_queue = [
                        stream
                        for stream in self._streams_queue
                        if not (stream in discarded or stream in sent)
                    ]
                    self._streams_queue.extend(sent)
"""),
]


def _patch_write_application() -> bool:
    """``QuicConnection._write_application`` did O(open streams) work for every packet
    it built: each stream's MAX_STREAM_DATA check, then a STREAM frame offer to every
    stream although the first one had filled the packet (32 streams: ~30% of the
    edge's CPU at 16000-byte datagrams, more at 1350). Rebuilt from aioquic's own
    source with the edits above; left alone (returns False) if the source differs."""
    import inspect
    import textwrap

    import aioquic.quic.connection as qc

    try:
        src = inspect.getsource(qc.QuicConnection._write_application)
    except (OSError, TypeError):
        return False
    for old, new in _WRITE_APPLICATION_EDITS:
        if src.count(old) != 1:
            return False
        src = src.replace(old, new)
    src = textwrap.dedent(src)
    namespace = dict(vars(qc))
    namespace["_MIN_FRAME_ROOM"] = _MIN_FRAME_ROOM
    exec(compile(src, qc.__file__, "exec"), namespace)  # noqa: S102 - aioquic's own code
    qc.QuicConnection._write_application = namespace["_write_application"]  # type: ignore[method-assign]
    return True


_BAD_NAME_BYTE = re.compile(rb"[\x00-\x20A-Z\x7f-\xff]")


def _patch_header_checks() -> None:
    """aioquic checks every byte of every header name and value in a Python loop
    (~7% of the client's CPU on 100 KB responses); same checks, same errors, done by
    ``re``/``bytes`` in C."""
    import aioquic.h3.connection as h3c

    message_error = h3c.MessageError
    whitespace = h3c.WHITESPACE

    def validate_header_name(key: bytes) -> None:
        bad = _BAD_NAME_BYTE.search(key)
        colon = key.find(b":", 1)
        if bad is not None and (colon < 0 or bad.start() < colon):
            raise message_error(f"Header {key!r} contains invalid characters")
        if colon > 0:
            raise message_error(f"Header {key!r} contains a non-initial colon")

    def validate_header_value(key: bytes, value: bytes) -> None:
        if b"\x00" in value or b"\n" in value or b"\r" in value:
            raise message_error(f"Header {key!r} value has forbidden characters")
        if value:
            if value[0] in whitespace:
                raise message_error(f"Header {key!r} value starts with whitespace")
            if len(value) > 1 and value[-1] in whitespace:
                raise message_error(f"Header {key!r} value ends with whitespace")

    h3c.validate_header_name = validate_header_name
    h3c.validate_header_value = validate_header_value


_HEADER_CACHE_MAX = 4096
"""Header (name, value) pairs remembered as valid before the cache is emptied."""


def _read_varint(data: bytes, pos: int) -> tuple[int, int] | None:
    """QUIC variable-length integer at ``pos``: (value, next position), or None if cut."""
    if pos >= len(data):
        return None
    first = data[pos]
    n = 1 << (first >> 6)
    if pos + n > len(data):
        return None
    value = first & 0x3F
    for i in range(pos + 1, pos + n):
        value = (value << 8) | data[i]
    return value, pos + n


def _patch_h3_per_request() -> None:
    """Per-request costs of aioquic's HTTP/3 layer, same behaviour and errors:

    - ``validate_headers``: each (name, value) pair that passed the name and value
      checks is remembered (bounded), so a response's or request's usual headers are
      not checked byte by byte again; a remembered plain header (no pseudo-header, no
      content-length/te/connection-specific name) is only a set look-up. The response
      ``:status`` is read from the first header (validation guarantees it) rather than
      from a dict of every header.
    - ``H3Connection._get_or_create_stream``: a small object instead of a
      ``contextlib.contextmanager`` generator (3-4 per request on each end).
    - ``_receive_request_or_push_data``: a DATA frame payload that ends the data
      received is delivered as a slice of it (aioquic copied the stream buffer into a
      Buffer, then each frame out of it); a chunk that completes the open DATA frame
      is delivered as is.
    """
    import aioquic.h3.connection as h3c

    message_error = h3c.MessageError
    connection_specific = h3c.CONNECTION_SPECIFIC_HEADERS
    validate_name = h3c.validate_header_name
    validate_value = h3c.validate_header_value
    cache: dict[Any, bool] = {}  # pair -> True: plain regular header, False: needs logic
    special = frozenset((b"content-length", b"te")) | connection_specific

    def validate_headers(headers: Any, *, allow_te: bool = False,
                         allowed_pseudo_headers: frozenset[bytes],
                         required_pseudo_headers: frozenset[bytes],
                         stream: Any = None) -> None:
        after_pseudo_headers = False
        authority: bytes | None = None
        path: bytes | None = None
        scheme: bytes | None = None
        seen_pseudo_headers: set[bytes] = set()
        for pair in headers:
            known = cache.get(pair) if type(pair) is tuple else None
            if known:
                after_pseudo_headers = True
                continue
            key, value = pair
            if known is None:
                validate_name(key)
                validate_value(key, value)
                if type(pair) is tuple:
                    if len(cache) >= _HEADER_CACHE_MAX:
                        cache.clear()
                    cache[pair] = not key.startswith(b":") and key not in special
                    if cache[pair]:
                        after_pseudo_headers = True
                        continue
            if key.startswith(b":"):
                if after_pseudo_headers:
                    raise message_error(
                        f"Pseudo-header {key!r} is not allowed after regular headers")
                if key not in allowed_pseudo_headers:
                    raise message_error(f"Pseudo-header {key!r} is not valid")
                if key in seen_pseudo_headers:
                    raise message_error(f"Pseudo-header {key!r} is included twice")
                seen_pseudo_headers.add(key)
                if key == b":authority":
                    authority = value
                elif key == b":path":
                    path = value
                elif key == b":scheme":
                    scheme = value
            else:
                after_pseudo_headers = True
                if key == b"content-length":
                    try:
                        content_length = int(value)
                        if content_length < 0:
                            raise ValueError
                    except ValueError:
                        raise message_error(
                            "content-length is not a non-negative integer") from None
                    if stream:
                        stream.expected_content_length = content_length
                elif key == b"te" and allow_te:
                    if value.lower() != b"trailers":
                        raise message_error(f"Header {key!r} value is not trailers")
                elif key in connection_specific:
                    raise message_error(f"Header {key!r} is connection-specific")
        missing = required_pseudo_headers.difference(seen_pseudo_headers)
        if missing:
            raise message_error(f"Pseudo-headers {sorted(missing)} are missing")
        if scheme in (b"http", b"https"):
            if not authority:
                raise message_error("Pseudo-header b':authority' cannot be empty")
            if not path:
                raise message_error("Pseudo-header b':path' cannot be empty")

    request_allowed = frozenset((b":method", b":scheme", b":authority", b":path",
                                 b":protocol"))
    request_required = frozenset((b":method", b":authority"))
    status_only = frozenset((b":status",))

    def validate_request_headers(headers: Any, stream: Any = None) -> None:
        validate_headers(headers, allow_te=True, allowed_pseudo_headers=request_allowed,
                         required_pseudo_headers=request_required, stream=stream)

    def validate_response_headers(headers: Any, stream: Any = None) -> None:
        validate_headers(headers, allowed_pseudo_headers=status_only,
                         required_pseudo_headers=status_only, stream=stream)
        status = headers[0][1]  # the only pseudo-header, required, before the others
        if len(status) != 3 or not status.isdigit():
            raise message_error(f"Pseudo-header b':status' has invalid value {status!r}")
        if status == b"101":
            raise message_error("Pseudo-header b':status' cannot be 101")

    h3c.validate_headers = validate_headers
    h3c.validate_request_headers = validate_request_headers
    h3c.validate_response_headers = validate_response_headers

    h3_stream = h3c.H3Stream
    is_uni = h3c.stream_is_unidirectional
    is_client_initiated = h3c.stream_is_client_initiated

    class _StreamScope:
        __slots__ = ("streams", "stream_id", "stream")

        def __init__(self, streams: dict[int, Any], stream_id: int, stream: Any) -> None:
            self.streams = streams
            self.stream_id = stream_id
            self.stream = stream

        def __enter__(self) -> Any:
            return self.stream

        def __exit__(self, *exc: object) -> None:
            if self.stream.is_ended():
                self.streams.pop(self.stream_id)

    def _get_or_create_stream(self: Any, stream_id: int) -> _StreamScope:
        streams = self._stream
        stream = streams.get(stream_id)
        if stream is None:
            stream = h3_stream(stream_id)
            if is_uni(stream_id):
                if is_client_initiated(stream_id) == self._is_client:
                    stream.receiving_ended = True
                else:
                    stream.sending_ended = True
            streams[stream_id] = stream
        return _StreamScope(streams, stream_id, stream)

    h3c.H3Connection._get_or_create_stream = _get_or_create_stream  # type: ignore[method-assign,assignment]

    receive = h3c.H3Connection._receive_request_or_push_data
    data_type = h3c.FrameType.DATA
    headers_type = h3c.FrameType.HEADERS

    def _receive_request_or_push_data(self: Any, stream: Any, data: bytes,
                                      stream_ended: bool) -> list[Any]:
        if len(data) < 2048 or stream.blocked or stream.buffer or type(data) is not bytes:
            return receive(self, stream, data, stream_ended)
        if stream.frame_size is not None:
            if stream.frame_type == data_type and stream.frame_size == len(data):
                # the rest of the open DATA frame, exactly
                if stream_ended:
                    stream.receiving_ended = True
                stream.frame_size = None
                stream.frame_type = None
                return self._handle_request_or_push_frame(  # type: ignore[no-any-return]
                    frame_type=data_type, frame_data=data, stream=stream,
                    stream_ended=stream.receiving_ended)
            return receive(self, stream, data, stream_ended)
        # at a frame boundary: find a DATA frame whose payload reaches the end
        pos = 0
        for _ in range(8):
            got = _read_varint(data, pos)
            got_len = _read_varint(data, got[1]) if got is not None else None
            if got is None or got_len is None:
                break
            frame_type, (length, start) = got[0], got_len
            if frame_type != data_type and frame_type != headers_type:
                break
            if start + length < len(data):
                pos = start + length
                continue
            if frame_type == data_type and len(data) - start >= 2048:
                events = receive(self, stream, data[:start], False)
                return events + _receive_request_or_push_data(
                    self, stream, data[start:], stream_ended)
            break
        return receive(self, stream, data, stream_ended)

    h3c.H3Connection._receive_request_or_push_data = _receive_request_or_push_data  # type: ignore[method-assign]


def _patch_copies() -> None:
    """Fewer copies of packet payloads (each was copied ~10 times on the way out):

    - ``HeaderProtection.apply``/``remove`` copied the whole packet twice to flip a few
      header bytes; only the header is copied now.
    - ``QuicStreamSender`` copied everything written into one bytearray (for a 1 MB
      body: a fresh 1 MB allocation, page faults and a copy), then copied each frame
      out twice; it keeps the written ``bytes`` now (``_Chunks``) and copies each frame
      out once.
    - ``H3Connection.send_data`` built the DATA frame by copying the body twice
      (``encode_frame``); the frame header and the body are written to the stream
      separately now.
    """
    from aioquic._crypto import PACKET_NUMBER_LENGTH_MAX, SAMPLE_LENGTH, HeaderProtection
    from aioquic.buffer import encode_uint_var
    from aioquic.h3.connection import FrameType, FrameUnexpected, H3Connection, HeadersState
    from aioquic.quic.packet import QuicStreamFrame
    from aioquic.quic.stream import QuicStreamSender

    def apply(self: Any, plain_header: bytes, protected_payload: bytes) -> bytes:
        pn_length = (plain_header[0] & 0x03) + 1
        pn_offset = len(plain_header) - pn_length
        sample_offset = PACKET_NUMBER_LENGTH_MAX - pn_length
        mask = self._mask(protected_payload[sample_offset:sample_offset + SAMPLE_LENGTH])
        header = bytearray(plain_header)
        header[0] ^= mask[0] & (0x0F if header[0] & 0x80 else 0x1F)
        for i in range(pn_length):
            header[pn_offset + i] ^= mask[1 + i]
        return bytes(header) + protected_payload

    def remove(self: Any, packet: bytes, pn_offset: int) -> tuple[bytes, int]:
        from aioquic._crypto import CryptoError

        sample_offset = pn_offset + PACKET_NUMBER_LENGTH_MAX
        if sample_offset + SAMPLE_LENGTH > len(packet):
            raise CryptoError("Packet is too short to sample")
        mask = self._mask(packet[sample_offset:sample_offset + SAMPLE_LENGTH])
        header = bytearray(packet[:pn_offset + PACKET_NUMBER_LENGTH_MAX])
        header[0] ^= mask[0] & (0x0F if header[0] & 0x80 else 0x1F)
        pn_length = (header[0] & 0x03) + 1
        pn_truncated = 0
        for i in range(pn_length):
            header[pn_offset + i] ^= mask[1 + i]
            pn_truncated = header[pn_offset + i] | (pn_truncated << 8)
        return bytes(header[:pn_offset + pn_length]), pn_truncated

    def get_frame(self: Any, max_size: int, max_offset: int | None = None
                  ) -> QuicStreamFrame | None:
        assert self._reset_error_code is None, "cannot call get_frame() after reset()"
        if max_size < 0:
            return None
        try:
            r = self._pending[0]
        except IndexError:
            if self._pending_eof:
                self._pending_eof = False
                return QuicStreamFrame(fin=True, offset=self._buffer_fin)
            self.buffer_is_empty = True
            return None
        start = r.start
        stop = min(r.stop, start + max_size)
        if max_offset is not None and stop > max_offset:
            stop = max_offset
        if stop <= start:
            return None
        frame = QuicStreamFrame(
            data=self._buffer.view(start - self._buffer_start, stop - self._buffer_start),
            offset=start)
        self._pending.subtract(start, stop)
        if stop > self.highest_offset:
            self.highest_offset = stop
        if self._buffer_fin == stop:
            frame.fin = True
            self._pending_eof = False
        return frame

    def send_data(self: Any, stream_id: int, data: bytes, end_stream: bool) -> None:
        with self._get_or_create_stream(stream_id) as stream:
            if stream.headers_send_state != HeadersState.AFTER_HEADERS:
                raise FrameUnexpected("DATA frame is not allowed in this state")
            if end_stream:
                stream.finish_sending()
        if self._quic_logger is not None:
            self._quic_logger.log_event(
                category="http", event="frame_created",
                data=self._quic_logger.encode_http3_data_frame(length=len(data),
                                                               stream_id=stream_id))
        if not data and end_stream:  # hypercorn ends every body with an empty one
            self._quic.send_stream_data(stream_id, b"", True)
        elif len(data) < 4096:  # small: one write is cheaper than two
            self._quic.send_stream_data(
                stream_id, encode_uint_var(FrameType.DATA) + encode_uint_var(len(data)) + data,
                end_stream)
        else:
            self._quic.send_stream_data(
                stream_id, encode_uint_var(FrameType.DATA) + encode_uint_var(len(data)), False)
            self._quic.send_stream_data(stream_id, data, end_stream)

    sender_init = QuicStreamSender.__init__

    def sender_init_chunks(self: Any, *args: Any, **kwargs: Any) -> None:
        sender_init(self, *args, **kwargs)
        self._buffer = _Chunks()

    QuicStreamSender.__init__ = sender_init_chunks  # type: ignore[method-assign]
    HeaderProtection.apply = apply  # type: ignore[method-assign]
    HeaderProtection.remove = remove  # type: ignore[method-assign]
    QuicStreamSender.get_frame = get_frame  # type: ignore[method-assign]
    H3Connection.send_data = send_data  # type: ignore[method-assign]


def _keep_freed_heap() -> None:
    """glibc returns the top of the heap to the kernel once 128 KiB of it is free, so
    every burst of 64 KB packets (built, encrypted, sent, freed) faulted its pages in
    again: one page fault per 4 KiB sent (~15% of the worker's CPU at 65000-byte
    datagrams). Keep up to 32 MiB of freed heap (M_TRIM_THRESHOLD). glibc only; a
    no-op elsewhere."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if hasattr(libc, "gnu_get_libc_version"):
            m_trim_threshold = -1
            libc.mallopt(m_trim_threshold, _TRIM_THRESHOLD)


def _wake_drain_waiters(quic: Any) -> None:
    waiters = quic.__dict__.pop("abr_drain_waiters", None)
    for w in waiters or ():
        if not w.done():
            w.set_result(None)


def apply_quic_tuning(quic_max_datagram_bytes: int = 1350,
                      handshakes: HandshakeLimits | None = None) -> None:
    """Patch hypercorn's QUIC server (once); connections accepted from now on send
    datagrams of up to ``quic_max_datagram_bytes`` and servers started from now on bound
    unfinished handshakes by ``handshakes``."""
    global _patched
    _settings["max_datagram_bytes"] = quic_max_datagram_bytes
    if handshakes is not None:
        _settings_limits["handshakes"] = handshakes
    if _patched:
        return
    _patched = True
    patch_aioquic()
    _keep_freed_heap()
    import hypercorn.asyncio.run as hrun
    import hypercorn.protocol.quic as hquic
    from aioquic.quic.events import (
        ConnectionIdIssued,
        ConnectionIdRetired,
        ConnectionTerminated,
        HandshakeCompleted,
        ProtocolNegotiated,
    )
    from aioquic.quic.retry import QuicRetryTokenHandler
    from hypercorn.asyncio.udp_server import UDPServer
    from hypercorn.events import RawData
    from hypercorn.protocol.events import Body, Response
    from hypercorn.protocol.h3 import H3Protocol

    dated: dict[int, tuple[int, list[tuple[bytes, bytes]]]] = {}

    class TunedH3Protocol(H3Protocol):
        """hypercorn's, with the server's response headers (``date`` etc.) built once
        per second rather than per response (``date`` has a one-second resolution)."""

        async def stream_send(self, event: Any) -> None:
            if type(event) is Response:
                config = self.config
                now = int(time.time())
                got = dated.get(id(config))
                if got is None or got[0] != now:
                    got = dated[id(config)] = (now, config.response_headers("h3"))
                self.connection.send_headers(
                    event.stream_id,
                    [(b":status", b"%d" % event.status_code), *event.headers, *got[1]])
                await self.send()
            else:
                await super().stream_send(event)
                if type(event) is Body:
                    await self._drained(event.stream_id)

        async def _drained(self, stream_id: int) -> None:
            """Wait while the stream holds more than H3_STREAM_BUFFER_BYTES unacknowledged
            (woken after each send on the connection, i.e. after ACKs came in)."""
            quic = self.connection._quic  # noqa: SLF001
            while True:
                stream = quic._streams.get(stream_id)  # noqa: SLF001
                if stream is None:
                    return
                sender = stream.sender
                if (len(sender._buffer) <= H3_STREAM_BUFFER_BYTES or sender.is_finished  # noqa: SLF001
                        or sender.reset_pending or sender._reset_error_code is not None):  # noqa: SLF001
                    return
                waiter = asyncio.get_running_loop().create_future()
                quic.__dict__.setdefault("abr_drain_waiters", []).append(waiter)
                await waiter

    class TunedQuicProtocol(hquic.QuicProtocol):
        """Batches datagrams (one send per connection per batch) and arms the QUIC timer
        with ``loop.call_at`` (hypercorn cancels and recreates a task per send)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.quic_config.max_data = 16 * 2**20
            self.quic_config.max_stream_data = 8 * 2**20
            self.quic_config.max_datagram_size = _settings["max_datagram_bytes"]
            self.quic_config.idle_timeout = 30.0
            self.loop = asyncio.get_running_loop()
            self.sendto: Callable[[bytes, Any], None] | None = None
            self.budget = HandshakeBudget(_settings_limits["handshakes"])
            self.retry = QuicRetryTokenHandler()
            self.handshaking: dict[int, Any] = {}

        def _receive(self, data: bytes, address: Any) -> Any:
            """Feed one datagram to its connection (creating it on an Initial); returns
            the connection, None when dropped, or bytes to send back (version
            negotiation)."""
            from aioquic.buffer import Buffer
            from aioquic.quic.packet import (
                PACKET_TYPE_INITIAL,
                encode_quic_version_negotiation,
                pull_quic_header,
            )

            try:
                header = pull_quic_header(Buffer(data=data), host_cid_length=8)
            except ValueError:
                return None
            if header.version is not None and \
                    header.version not in self.quic_config.supported_versions:
                return encode_quic_version_negotiation(
                    source_cid=header.destination_cid, destination_cid=header.source_cid,
                    supported_versions=self.quic_config.supported_versions)
            connection = self.connections.get(header.destination_cid)
            if (connection is None and len(data) >= 1200
                    and header.packet_type == PACKET_TYPE_INITIAL
                    and not self.context.terminated.is_set()):
                return self._open(data, address, header)
            if connection is None:
                return None
            connection.quic.receive_datagram(data, address, now=self.loop.time())
            return connection

        def _open(self, data: bytes, address: Any, header: Any) -> Any:
            """A new connection's Initial: admitted (RFC 9000 §8.1, edge.handshakes),
            and kept only if it decrypts and gets an answer."""
            from aioquic.quic.packet import encode_quic_retry

            now = self.loop.time()
            for key in self.budget.expired(now):
                self._forget(self.handshaking.pop(key))
            source = str(address[0])
            original_cid, retry_cid = header.destination_cid, None
            valid_token = False
            if header.token:
                try:
                    original_cid = self.retry.validate_token(
                        address=address, destination_cid=header.destination_cid,
                        token=header.token, now=now)
                    retry_cid, valid_token = header.destination_cid, True
                except ValueError:
                    return None  # a forged or expired token: no state, no answer
            verdict = self.budget.admit(source, valid_token)
            if verdict is Admit.DROP:
                return None
            if verdict is Admit.RETRY:
                source_cid = os.urandom(8)
                return encode_quic_retry(
                    version=header.version, source_cid=source_cid,
                    destination_cid=header.source_cid,
                    original_destination_cid=header.destination_cid,
                    retry_token=self.retry.create_token(
                        address=address, original_destination_connection_id=header.destination_cid,
                        retry_source_connection_id=source_cid, now=now))
            quic = hquic.QuicConnection(
                configuration=self.quic_config,
                original_destination_connection_id=original_cid,
                retry_source_connection_id=retry_cid)
            quic.receive_datagram(data, address, now=now)
            first = quic.datagrams_to_send(now=now)
            if not first:
                return None  # did not decrypt (or said nothing we answer): keep nothing
            connection = hquic._Connection(  # noqa: SLF001
                cids={header.destination_cid, quic.host_cid}, quic=quic,
                task=self.context.single_task_class())
            connection.timer = None  # type: ignore[attr-defined]
            connection.timer_at = None  # type: ignore[attr-defined]
            connection.flush_pending = False  # type: ignore[attr-defined]
            self.connections[header.destination_cid] = connection
            self.connections[quic.host_cid] = connection
            self.budget.started(id(connection), source, now)
            self.handshaking[id(connection)] = connection
            self._send_datagrams(first)
            return connection

        def _forget(self, connection: Any) -> None:
            """Drop a connection's state (a handshake given up)."""
            if connection.timer is not None:
                connection.timer.cancel()
                connection.timer = None
            for cid in connection.cids:
                self.connections.pop(cid, None)
            connection.cids = set()
            _wake_drain_waiters(connection.quic)

        async def handle(self, event: Any) -> None:
            if isinstance(event, RawData):
                await self.handle_batch([(event.data, event.address)])

        async def handle_batch(self, items: list[tuple[bytes, Any]]) -> None:
            touched: dict[int, tuple[Any, Any]] = {}
            for data, address in items:
                got = self._receive(data, address)
                if isinstance(got, bytes):
                    await self.send(RawData(data=got, address=address))
                elif got is not None:
                    touched[id(got)] = (got, address)
            for connection, address in touched.values():
                await self._handle_events(connection, address)

        def _send_datagrams(self, datagrams: list[tuple[bytes, Any]]) -> None:
            sendto = self.sendto
            for data, address in datagrams:
                if sendto is not None:
                    sendto(data, address)
                else:  # pragma: no cover - run() sets sendto
                    self.task_group.spawn(self.send, RawData(data=data, address=address))

        def _send_now(self, connection: Any) -> None:
            quic = connection.quic
            self._send_datagrams(quic.datagrams_to_send(now=self.loop.time()))
            _wake_drain_waiters(quic)
            timer_at = quic.get_timer()
            handle = connection.timer
            if handle is not None and connection.timer_at != timer_at:
                handle.cancel()
                handle = connection.timer = None
            if handle is None and timer_at is not None and connection.cids:
                connection.timer = self.loop.call_at(timer_at, self._on_timer, connection)
            connection.timer_at = timer_at

        async def send_all(self, connection: Any) -> None:
            """Called by the HTTP/3 layer after each HEADERS/DATA/FIN it queues: send
            once, later in this loop iteration, so that a response's headers, body and
            FIN (and other streams' responses) share packets and one
            ``datagrams_to_send``."""
            if not connection.flush_pending:
                connection.flush_pending = True
                self.loop.call_soon(self._flush, connection)

        def _flush(self, connection: Any) -> None:
            connection.flush_pending = False
            self._send_now(connection)

        def _on_timer(self, connection: Any) -> None:
            now = max(connection.timer_at or 0.0, self.loop.time())
            connection.timer = connection.timer_at = None
            connection.quic.handle_timer(now=now)
            if connection.quic._events:  # noqa: SLF001 - events need the async path
                self.task_group.spawn(self._handle_events, connection, None)
            else:
                self._send_now(connection)

        async def _handle_events(self, connection: Any, client: Any = None) -> None:
            quic = connection.quic
            event = quic.next_event()
            while event is not None:
                if isinstance(event, HandshakeCompleted):
                    self.budget.finished(id(connection))
                    self.handshaking.pop(id(connection), None)
                elif isinstance(event, ConnectionTerminated):
                    self.budget.finished(id(connection))
                    self.handshaking.pop(id(connection), None)
                    if connection.timer is not None:
                        connection.timer.cancel()
                        connection.timer = None
                    for cid in connection.cids:
                        del self.connections[cid]
                    connection.cids = set()
                    _wake_drain_waiters(quic)
                elif isinstance(event, ProtocolNegotiated):
                    connection.h3 = TunedH3Protocol(
                        self.app, self.config, self.context, self.task_group, self.state,
                        client, self.server, quic, partial(self.send_all, connection))
                elif isinstance(event, ConnectionIdIssued):
                    connection.cids.add(event.connection_id)
                    self.connections[event.connection_id] = connection
                elif isinstance(event, ConnectionIdRetired):
                    connection.cids.remove(event.connection_id)
                    del self.connections[event.connection_id]
                if connection.h3 is not None:
                    await connection.h3.handle(event)
                event = quic.next_event()
            self._send_now(connection)

    class TunedUDPServer(UDPServer):
        """Reads every waiting datagram at once (asyncio reads one per loop iteration)
        and queues them as one batch; drops past ``_MAX_BACKLOG`` queued datagrams (as
        the kernel would) instead of hypercorn's 10."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.protocol_queue = asyncio.Queue()
            self._backlog = 0
            self._sock: socket.socket | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._sock = read_datagrams_directly(transport, self.loop, self._read_ready)

        def _read_ready(self) -> None:
            assert self._sock is not None
            batch = recv_batch(self._sock)
            if batch and self._backlog < _MAX_BACKLOG:
                self._backlog += len(batch)
                self.protocol_queue.put_nowait(batch)

        def datagram_received(self, data: bytes, address: Any) -> None:  # type: ignore[override]
            if self._backlog < _MAX_BACKLOG:
                self._backlog += 1
                self.protocol_queue.put_nowait([(data, address)])

        async def run(self) -> None:
            from hypercorn.asyncio.task_group import TaskGroup
            from hypercorn.typing import ConnectionState
            from hypercorn.utils import parse_socket_addr

            assert self.transport is not None
            sock = self.transport.get_extra_info("socket")
            server = parse_socket_addr(sock.family, sock.getsockname())
            async with TaskGroup(self.loop) as task_group:
                protocol = hquic.QuicProtocol(
                    self.app, self.config, self.context, task_group,
                    ConnectionState(self.state.copy()), server, self.protocol_send)
                self.protocol = protocol
                protocol.sendto = self.transport.sendto  # type: ignore[attr-defined]
                queue = self.protocol_queue
                while not self.context.terminated.is_set() or not protocol.idle:
                    batch = await queue.get()
                    self._backlog -= len(batch)
                    await protocol.handle_batch(batch)  # type: ignore[attr-defined]

    class ClampedQuicConnection(hquic.QuicConnection):
        """Never send datagrams larger than the peer's ``max_udp_payload_size``
        (RFC 9000 §18.2); aioquic validates the parameter but does not apply it."""

        def _parse_transport_parameters(self, data: bytes, from_session_ticket: bool = False
                                        ) -> None:
            super()._parse_transport_parameters(data, from_session_ticket)
            from aioquic.buffer import Buffer
            from aioquic.quic.packet import pull_quic_transport_parameters

            with contextlib.suppress(Exception):
                params = pull_quic_transport_parameters(Buffer(data=data))
                if params.max_udp_payload_size:
                    self._max_datagram_size = min(self._max_datagram_size,
                                                  params.max_udp_payload_size)

    hquic.QuicConnection = ClampedQuicConnection  # type: ignore[misc]
    hquic.QuicProtocol = TunedQuicProtocol  # type: ignore[misc]
    hrun.UDPServer = TunedUDPServer  # type: ignore[misc]
