"""The player's HTTP/2 client against the real edge: bodies whole, a stopped reader resets its
stream and the connection goes on, flow control bounds what a slow reader buffers, and a
restarted edge is a TransportFailure the next request recovers from."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from abrstack.stack import Stack, running_stack
from player_sim.clients import H2Client, TransportFailure
from player_sim.h2client import STREAM_WINDOW

pytestmark = pytest.mark.slow
BIG = 6 << 20


BLOB = os.urandom(BIG)


@pytest.fixture(scope="module")
def stack(tiny_title: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    media = tmp_path_factory.mktemp("media")
    shutil.copytree(tiny_title.media_dir / tiny_title.name, media / "blob")
    (media / "blob" / "big.m4s").write_bytes(BLOB)
    (media / "blob" / "small.m4s").write_bytes(b"x" * 1000)
    with running_stack(media, tmp_path_factory.mktemp("stack")) as s:
        yield s


def test_whole_bodies_and_a_reset_that_keeps_the_connection(stack: Stack) -> None:
    async def go() -> None:
        async with H2Client(cafile=str(stack.certfile)) as c:
            got = bytearray()

            async def keep(chunk: bytes) -> bool:
                got.extend(chunk)
                return True

            reply = await c.request(f"{stack.edge_https}/media/blob/big.m4s", {}, keep)
            assert reply.status == 200 and reply.protocol == "2"
            assert len(got) == BIG and int(reply.headers["content-length"]) == BIG
            assert bytes(got) == BLOB
            proto = c._conn._proto

            n = 0

            async def stop_early(chunk: bytes) -> bool:
                nonlocal n
                n += len(chunk)
                return n < 100_000

            await c.request(f"{stack.edge_https}/media/blob/big.m4s", {"range": "bytes=0-"}, stop_early)
            assert n < BIG
            small = bytearray()

            async def keep_small(chunk: bytes) -> bool:
                small.extend(chunk)
                return True

            for _ in range(20):   # many resets later, the same connection still serves
                await c.request(f"{stack.edge_https}/media/blob/big.m4s", {}, stop_early)
            reply = await c.request(f"{stack.edge_https}/media/blob/small.m4s", {}, keep_small)
            assert reply.status == 200 and bytes(small) == b"x" * 1000
            assert c._conn._proto is proto, "the connection was replaced"

    asyncio.run(go())


def test_a_slow_reader_buffers_at_most_the_stream_window(stack: Stack) -> None:
    async def go() -> int:
        async with H2Client(cafile=str(stack.certfile)) as c:
            peak = 0

            async def slow(chunk: bytes) -> bool:
                nonlocal peak
                st = next(iter(c._conn._proto.streams.values()))
                peak = max(peak, sum(len(d) for d, _ in st.chunks))
                await asyncio.sleep(0.002)
                return True

            await c.request(f"{stack.edge_https}/media/blob/big.m4s", {}, slow)
            return peak

    peak = asyncio.run(go())
    assert 0 < peak <= STREAM_WINDOW + 16384


def test_a_closed_port_and_http_only_servers_are_clear(stack: Stack) -> None:
    async def go(url: str) -> BaseException:
        async with H2Client(cafile=str(stack.certfile)) as c:
            try:
                await c.request(url, {}, lambda b: asyncio.sleep(0, True))
            except Exception as exc:
                return exc
        raise AssertionError("no error")

    exc = asyncio.run(go("https://127.0.0.1:1/media/blob/small.m4s"))
    assert "nothing listens on 127.0.0.1:1" in str(exc)
    plain = stack.edge_http.replace("http://", "https://")
    exc = asyncio.run(go(f"{plain}/media/blob/small.m4s"))
    assert isinstance(exc, TransportFailure)
