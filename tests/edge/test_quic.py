"""The HTTP/3 tuning in edge/quic.py and edge/h3client.py: large datagrams end to end,
many concurrent streams, and the pieces that replace aioquic internals."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from edge.h3client import H3Client
from edge.quic import _Chunks, patch_aioquic
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
