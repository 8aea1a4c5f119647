"""The HTTP/3 tuning in edge/quic.py and edge/h3client.py: large datagrams end to end,
many concurrent streams, and the pieces that replace aioquic internals."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from edge.aioquic_compat import _Chunks
from edge.aioquic_compat import apply as patch_aioquic
from edge.h3client import H3Client
from tests.edge.conftest import Obj

SEG = {"Cache-Control": "public, max-age=60", "ETag": '"v1"', "Content-Type": "video/mp4"}


@pytest.mark.parametrize("datagram", [1350, 16000, 65000])
def test_h3_serves_many_streams_with_any_datagram_size(origin: Any, edge_factory: Any,
                                                       datagram: int) -> None:
    """aioquic wrote STREAM frame lengths on 2 bytes: datagrams past ~16 KB were
    unparseable. 1 MB and 100 KB bodies, 12 at once on one connection, both sizes."""
    state, url = origin
    rnd = random.Random(datagram)
    big, small = rnd.randbytes(2**20), rnd.randbytes(100 * 1024)
    state.objects["/media/t/big.m4s"] = Obj(big, dict(SEG))
    state.objects["/media/t/small.m4s"] = Obj(small, dict(SEG))
    with edge_factory([url], prefetch_k=0, quic_max_datagram_bytes=datagram) as edge:

        async def run() -> list[Any]:
            async with H3Client("127.0.0.1", edge.ports.port, cafile=str(edge.certfile),
                                verify=True, max_datagram_bytes=datagram) as c:
                warm = [await c.get(p) for p in ("/media/t/big.m4s", "/media/t/small.m4s")]
                rest = await asyncio.gather(*[c.get(p) for p in
                                              ["/media/t/big.m4s", "/media/t/small.m4s"] * 6])
                return [*warm, *rest]

        rs = asyncio.run(run())
    assert rs[0].body == big and rs[1].body == small
    for i, r in enumerate(rs[2:]):
        assert r.status == 200 and r.headers["x-cache"] == "HIT"
        assert r.body == (big if i % 2 == 0 else small)


def test_h3_stream_read_in_pieces_and_abandoned(origin: Any, edge_factory: Any) -> None:
    """A reader that stops early (the player does) leaves the connection usable."""
    state, url = origin
    body = random.Random(1).randbytes(2**20)
    state.objects["/media/t/big.m4s"] = Obj(body, dict(SEG))
    with edge_factory([url], prefetch_k=0) as edge:

        async def run() -> tuple[int, bytes]:
            async with H3Client("127.0.0.1", edge.ports.port) as c:
                got = 0
                async for chunk in c.stream("/media/t/big.m4s"):
                    got += len(chunk)
                    if got > 100_000:
                        break
                r = await c.get("/media/t/big.m4s")
                return r.status, r.body

        assert asyncio.run(run()) == (200, body)


def test_chunks_behave_like_the_bytearray_they_replace() -> None:
    rnd = random.Random(7)
    for _ in range(300):
        ref, buf = bytearray(), _Chunks()
        for _ in range(40):
            op = rnd.random()
            if op < 0.4:
                data = rnd.randbytes(rnd.randint(0, 60))
                ref += data
                buf += data
            elif op < 0.7:
                n = rnd.randint(0, len(ref))
                del ref[:n]
                del buf[:n]
            elif ref:
                a = rnd.randint(0, len(ref))
                b = rnd.randint(a, len(ref))
                assert buf.view(a, b) == bytes(ref[a:b])
            assert len(buf) == len(ref)


@pytest.mark.parametrize("name,ok", [
    (b"content-type", True), (b":status", True), (b"x-a_b.c~1", True),
    (b"Content-Type", False), (b"a b", False), (b"a\x7f", False), (b"a\xff", False),
    (b"a:b", False), (b"", True),
])
def test_header_name_checks(name: bytes, ok: bool) -> None:
    patch_aioquic()
    import aioquic.h3.connection as h3c

    if ok:
        h3c.validate_header_name(name)
    else:
        with pytest.raises(h3c.MessageError):
            h3c.validate_header_name(name)


@pytest.mark.parametrize("value,ok", [
    (b"video/mp4", True), (b"", True), (b"a b", True), (b"x", True),
    (b"a\x00b", False), (b"a\rb", False), (b"a\nb", False), (b" a", False), (b"a\t", False),
])
def test_header_value_checks(value: bytes, ok: bool) -> None:
    patch_aioquic()
    import aioquic.h3.connection as h3c

    if ok:
        h3c.validate_header_value(b"k", value)
    else:
        with pytest.raises(h3c.MessageError):
            h3c.validate_header_value(b"k", value)


def _h3_client() -> Any:
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    patch_aioquic()
    quic = QuicConnection(configuration=QuicConfiguration(is_client=True,
                                                          alpn_protocols=H3_ALPN))
    return H3Connection(quic)


def _response_bytes(body: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    import pylsqpack
    from aioquic.buffer import encode_uint_var

    _, block = pylsqpack.Encoder().encode(0, headers)
    return (encode_uint_var(1) + encode_uint_var(len(block)) + block
            + encode_uint_var(0) + encode_uint_var(len(body)) + body)


@pytest.mark.parametrize("cuts", [[], [3000], [50, 70000], [20, 4000, 99000, 100010]])
def test_h3_response_data_any_split(cuts: list[int]) -> None:
    """The DATA fast paths deliver the same headers and body however the stream data
    is cut (HEADERS, DATA header and payload in one chunk, the rest exactly, etc.)."""
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.events import StreamDataReceived

    body = random.Random(2).randbytes(100_000)
    hs = [(b":status", b"200"), (b"content-length", b"100000"), (b"x-cache", b"HIT")]
    wire = _response_bytes(body, hs)
    h3 = _h3_client()
    got, headers, ended = [], [], False
    edges = [0, *cuts, len(wire)]
    for i, (a, b) in enumerate(zip(edges, edges[1:], strict=False)):
        for ev in h3.handle_event(StreamDataReceived(data=wire[a:b], stream_id=0,
                                                     end_stream=i == len(edges) - 2)):
            if isinstance(ev, HeadersReceived):
                headers.append(ev.headers)
            elif isinstance(ev, DataReceived):
                got.append(ev.data)
                ended = ended or ev.stream_ended
    assert headers == [hs] and b"".join(got) == body and ended


def test_h3_header_checks_remembered_and_still_strict() -> None:
    """Valid headers are remembered; what aioquic rejects is still rejected."""
    from aioquic.h3 import connection as h3c

    patch_aioquic()
    ok = [(b":status", b"200"), (b"x-a", b"1"), (b"content-length", b"5")]
    for _ in range(3):
        stream = h3c.H3Stream(0)
        h3c.validate_response_headers(ok, stream)
        assert stream.expected_content_length == 5
    bad = {
        "not allowed after regular": [(b"x-a", b"1"), (b":status", b"200")],
        "invalid characters": [(b":status", b"200"), (b"X-A", b"1")],
        "forbidden characters": [(b":status", b"200"), (b"x-a", b"1\n")],
        "connection-specific": [(b":status", b"200"), (b"connection", b"close")],
        "non-negative integer": [(b":status", b"200"), (b"content-length", b"-1")],
        "invalid value": [(b":status", b"20x"), (b"x-a", b"1")],
        "cannot be 101": [(b":status", b"101")],
        "missing": [(b"x-a", b"1")],
    }
    for _ in range(2):
        for message, hs in bad.items():
            with pytest.raises(h3c.MessageError, match=message):
                h3c.validate_response_headers(hs)
    with pytest.raises(h3c.MessageError, match="not trailers"):
        h3c.validate_request_headers([(b":method", b"GET"), (b":authority", b"a"),
                                      (b"te", b"gzip")])
    h3c.validate_request_headers([(b":method", b"GET"), (b":authority", b"a"),
                                  (b":path", b"/"), (b":scheme", b"https"),
                                  (b"te", b"trailers")])
