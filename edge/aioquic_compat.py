"""Everything the edge changes inside aioquic, in one place, for exactly one version.

aioquic is used through its public sans-I/O API (edge/h3server.py, edge/h3client.py);
what that API cannot give is changed here, by :func:`apply`, which the edge and the client
call when they start (importing this module changes nothing). :func:`apply` refuses any
aioquic but :data:`WRITTEN_FOR` with one sentence: these functions replace aioquic's own,
and a release that changed them would break silently. The changes (both ends):

- STREAM frame lengths on 4 bytes when the packet has room for more than 16383 bytes:
  aioquic wrote 2, so datagrams above ~16 KB were unparseable (the peer closed with
  FRAME_ENCODING_ERROR); with this ``max_datagram_size`` up to 65000 works (loopback).
- datagrams clamped to the peer's ``max_udp_payload_size`` (RFC 9000 §18.2; aioquic
  checks the parameter but never applies it).
- copies: stream data kept as the ``bytes`` written and copied once into packets
  (:class:`_Chunks`), header protection copying the header only, DATA frames written as
  header + body (no concatenated copy).
- ``_write_application`` without its walk over every open stream for each packet built
  (32 streams: ~30% of the edge's CPU at 16000-byte datagrams, more at 1350); the pacer
  letting out bursts of at least :data:`_PACING_BURST_S`.
- HTTP/3 header checks in C (``re``/``bytes``) and remembered per (name, value); the
  stream scope without a generator; DATA payloads that end the data received delivered
  as a slice (the client copied each 1 MB body twice).
Plus a read the public API lacks: :func:`unacked_bytes` (for the server's backpressure).
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

import aioquic
from aioquic import tls
from aioquic.buffer import Buffer, encode_uint_var, size_uint_var
from aioquic.quic.connection import QuicConnection, stream_is_client_initiated
from aioquic.quic.packet import (
    QuicFrameType,
    QuicPacketType,
    QuicStreamFrame,
    pull_quic_transport_parameters,
)
from aioquic.quic.packet_builder import QuicPacketBuilderStop
from aioquic.quic.recovery import QuicPacketPacer
from aioquic.quic.stream import QuicStreamSender

from edge import EdgeError

WRITTEN_FOR = "1.7.2"
"""The one aioquic release whose internals this module replaces."""
_PACING_BURST_S = 0.004
"""Least sending time the pacer lets out in one burst: its 16-packet bursts (21 KB at 1350
bytes) then a timer that the event loop fires ~1 ms late (epoll) capped h3 near 20 MB/s."""
_PACING_BURST_BYTES = 256 * 1024
"""...and at most this much (larger datagrams keep aioquic's 16-packet bursts)."""

_applied = False


class AioquicVersionError(EdgeError):
    """The installed aioquic is not the release this module was written for."""


def check_version(found: str) -> None:
    """Raise :class:`AioquicVersionError` unless ``found`` is :data:`WRITTEN_FOR`."""
    if found != WRITTEN_FOR:
        raise AioquicVersionError(
            f"edge/aioquic_compat.py replaces internals of aioquic {WRITTEN_FOR} but aioquic "
            f"{found} is installed: install aioquic=={WRITTEN_FOR} (as pyproject.toml pins "
            f"it) or port edge/aioquic_compat.py to {found}")


def applied() -> bool:  # whether apply() has run in this process
    return _applied


def apply() -> None:
    """Make the changes listed in the module docstring (once per process; both ends)."""
    global _applied
    check_version(aioquic.__version__)
    if _applied:
        return
    _applied = True
    QuicConnection._write_stream_frame = _write_stream_frame  # type: ignore[method-assign]
    QuicConnection._write_application = _write_application  # type: ignore[method-assign]
    parse = QuicConnection._parse_transport_parameters

    def parse_and_clamp(self: Any, data: bytes, from_session_ticket: bool = False) -> None:
        parse(self, data, from_session_ticket)
        size = pull_quic_transport_parameters(Buffer(data=data)).max_udp_payload_size
        if size:
            self._max_datagram_size = min(self._max_datagram_size, size)
    QuicConnection._parse_transport_parameters = parse_and_clamp  # type: ignore[method-assign]
    rate = QuicPacketPacer.update_rate

    def update_rate(self: Any, congestion_window: int, smoothed_rtt: float) -> None:
        rate(self, congestion_window, smoothed_rtt)
        if self.packet_time:  # at most _PACING_BURST_BYTES more per burst
            per_byte = self.packet_time / self._max_datagram_size
            self.bucket_max = max(self.bucket_max,
                                  min(_PACING_BURST_S, _PACING_BURST_BYTES * per_byte))

    QuicPacketPacer.update_rate = update_rate  # type: ignore[method-assign]
    _patch_copies()
    _patch_header_checks()
    _patch_h3_per_request()


def unacked_bytes(quic: QuicConnection, stream_id: int) -> int | None:
    """Bytes written to ``stream_id`` and not yet acknowledged; None once the stream is
    gone, finished sending or reset (nothing to wait for)."""
    stream = quic._streams.get(stream_id)  # noqa: SLF001
    if stream is None:
        return None
    sender = stream.sender
    if sender.is_finished or sender.reset_pending or sender._reset_error_code is not None:  # noqa: SLF001
        return None
    return len(sender._buffer)  # noqa: SLF001


def _write_stream_frame(self: Any, builder: Any, space: Any, stream: Any,
                        max_offset: int) -> int:
    """aioquic's, with a 4-byte length when the packet has room for more than 16383."""
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
    frame_type = QuicFrameType.STREAM_BASE | 2
    if frame.offset:
        frame_type |= 4
    if frame.fin:
        frame_type |= 1
    n = len(frame.data)
    buf = builder.start_frame(frame_type, capacity=overhead, handler=sender.on_data_delivery,
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


_MIN_FRAME_ROOM = 24
"""Bytes left in a packet below which no further stream is offered a STREAM frame."""


def _write_application(self: Any, builder: Any, network_path: Any, now: float) -> None:
    """aioquic 1.7.2's, comments cut, CHANGED: MAX_STREAM_DATA in a call's first packet
    only (they change as data arrives, not while packets are built); a full packet ends
    the round of streams; the stream queue rotated cheaply."""
    crypto_stream = None
    if self._cryptos[tls.Epoch.ONE_RTT].send.is_valid():
        crypto = self._cryptos[tls.Epoch.ONE_RTT]
        crypto_stream = self._crypto_streams[tls.Epoch.ONE_RTT]
        packet_type = QuicPacketType.ONE_RTT
    elif self._cryptos[tls.Epoch.ZERO_RTT].send.is_valid():
        crypto = self._cryptos[tls.Epoch.ZERO_RTT]
        packet_type = QuicPacketType.ZERO_RTT
    else:
        return
    space = self._spaces[tls.Epoch.ONE_RTT]
    first_packet = True  # CHANGED
    while True:
        if space.ack_at is None or space.ack_at >= now:
            self._pacing_at = self._loss._pacer.next_send_time(now=now)
            if self._pacing_at is not None:
                break
        builder.start_packet(packet_type, crypto)
        if packet_type == QuicPacketType.ONE_RTT and space.ack_at is not None \
                and space.ack_at <= now:
            self._write_ack_frame(builder=builder, space=space, now=now)
        if self._handshake_complete:
            if not (network_path.is_validated or network_path.local_challenge_sent):
                self._write_path_challenge_frame(builder=builder, network_path=network_path)
                if network_path.validation_deadline is None:
                    network_path.validation_deadline = now + 3 * max(
                        self._loss.get_probe_timeout(), 2 * self._configuration.initial_rtt)
            if self._handshake_done_pending:
                self._write_handshake_done_frame(builder=builder)
                self._handshake_done_pending = False
            while len(network_path.remote_challenges) > 0:
                self._write_path_response_frame(
                    builder=builder, challenge=network_path.remote_challenges[0])
                network_path.remote_challenges.popleft()
            for connection_id in self._host_cids:
                if not connection_id.was_sent:
                    self._write_new_connection_id_frame(builder=builder,
                                                        connection_id=connection_id)
            for sequence_number in self._retire_connection_ids[:]:
                self._write_retire_connection_id_frame(builder=builder,
                                                       sequence_number=sequence_number)
                self._retire_connection_ids.pop(0)
            if self._streams_blocked_pending:
                if self._streams_blocked_bidi:
                    self._write_streams_blocked_frame(
                        builder=builder, frame_type=QuicFrameType.STREAMS_BLOCKED_BIDI,
                        limit=self._remote_max_streams_bidi)
                if self._streams_blocked_uni:
                    self._write_streams_blocked_frame(
                        builder=builder, frame_type=QuicFrameType.STREAMS_BLOCKED_UNI,
                        limit=self._remote_max_streams_uni)
                self._streams_blocked_pending = False
            self._write_connection_limits(builder=builder, space=space)
        if first_packet:  # CHANGED: stream-level limits in the first packet only
            first_packet = False
            for stream in self._streams.values():
                self._write_stream_limits(builder=builder, space=space, stream=stream)
        if self._ping_pending:
            self._write_ping_frame(builder, self._ping_pending)
            self._ping_pending.clear()
        if self._probe_pending:
            self._write_ping_frame(builder, comment="probe")
            self._probe_pending = False
        if crypto_stream is not None and not crypto_stream.sender.buffer_is_empty:
            self._write_crypto_frame(builder=builder, space=space, stream=crypto_stream)
        while self._datagrams_pending:
            try:
                self._write_datagram_frame(builder=builder, data=self._datagrams_pending[0],
                                           frame_type=QuicFrameType.DATAGRAM_WITH_LENGTH)
                self._datagrams_pending.popleft()
            except QuicPacketBuilderStop:
                break
        sent: set[Any] = set()
        discarded: set[Any] = set()
        try:
            for stream in self._streams_queue:
                if builder.remaining_flight_space < _MIN_FRAME_ROOM:  # CHANGED: full
                    break
                if stream.is_finished:
                    self._streams.pop(stream.stream_id)
                    if stream_is_client_initiated(stream.stream_id) != self._is_client:
                        self._stream_limit(stream.stream_id).value += 1
                    discarded.add(stream)
                    continue
                if stream.receiver.stop_pending:
                    self._write_stop_sending_frame(builder=builder, stream=stream)
                if stream.sender.reset_pending:
                    self._write_reset_stream_frame(builder=builder, stream=stream)
                elif not stream.is_blocked and not stream.sender.buffer_is_empty:
                    used = self._write_stream_frame(
                        builder=builder, space=space, stream=stream,
                        max_offset=min(stream.sender.highest_offset + self._remote_max_data
                                       - self._remote_max_data_used,
                                       stream.max_stream_data_remote))
                    self._remote_max_data_used += used
                    if used > 0:
                        sent.add(stream)
        finally:
            queue = self._streams_queue
            if len(sent) == 1 and not discarded:  # CHANGED: the usual case, in C
                queue.remove(*sent)
                queue.extend(sent)
            elif discarded or sent:  # CHANGED: only when something changed
                self._streams_queue = [s for s in queue if not (s in discarded or s in sent)]
                self._streams_queue.extend(sent)
        if builder.packet_is_empty:
            if not discarded:
                break
        else:
            self._loss._pacer.update_after_send(now=now)


class _Chunks:
    """A stream's unacknowledged send data as the ``bytes`` written, frames copied out
    once; what ``QuicStreamSender`` does with its buffer: ``+=``, ``len``, ``del [:n]``."""

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


def _patch_copies() -> None:  # each payload was copied ~10 times on the way out
    from aioquic._crypto import PACKET_NUMBER_LENGTH_MAX, SAMPLE_LENGTH, HeaderProtection
    from aioquic.h3.connection import FrameType, FrameUnexpected, H3Connection, HeadersState
    from aioquic.quic.packet import QuicStreamFrame

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
        if not data and end_stream:  # an empty last body: the FIN alone
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


_BAD_NAME_BYTE = re.compile(rb"[\x00-\x20A-Z\x7f-\xff]")


def _patch_header_checks() -> None:  # aioquic's byte loops: ~7% of the client's CPU
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
    """Per-request costs of aioquic's HTTP/3 layer (module docstring), same behaviour
    and errors. A remembered plain header (no pseudo-header, no content-length/te/
    connection-specific name) is a set look-up; a DATA chunk that completes the open DATA
    frame is delivered as is."""
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


