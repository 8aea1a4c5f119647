"""Our HTTP/3 server shell (edge/h3server.py) on its own, with small ASGI apps and our
client over real UDP sockets on 127.0.0.1: request and response, request bodies, streaming
with bounded buffering, a reset stream becoming ``http.disconnect``, connections closed
when idle, datagrams above 16 KB; and the version check of edge/aioquic_compat.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aioquic
import pytest

from edge import aioquic_compat
from edge.h3client import H3Client
from edge.h3server import H3Server, H3Settings
from edge.quicio import udp_socket
from edge.tls import ensure_self_signed

ROOT = Path(__file__).resolve().parents[2]
App = Callable[[dict[str, Any], Any, Any], Any]


@asynccontextmanager
async def serving(app: App, tmp_path: Path, **settings: Any) -> AsyncIterator[H3Server]:
    cert, key = ensure_self_signed(tmp_path / "tls")
    server = H3Server(app, H3Settings(certfile=str(cert), keyfile=str(key), **settings))
    server.listen([udp_socket("127.0.0.1", 0)])
    try:
        yield server
    finally:
        await server.close(0.2)


def port(server: H3Server) -> int:
    assert server.address is not None
    return server.address[1]


async def respond(send: Any, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def test_request_scope_body_and_response(tmp_path: Path) -> None:
    """The scope an app sees, a request body in pieces, the response it sends."""
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        await respond(send, b"got " + body)

    async def run() -> tuple[Any, Any]:
        async with serving(app, tmp_path) as server, \
                H3Client("127.0.0.1", port(server)) as c:
            r = await c.get("/a%20b/c?x=1", headers={"x-test": "1"})
            assert c.conn is not None
            quic, http = c.conn.quic, c.conn.http
            sid = quic.get_next_available_stream_id()
            http.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"https"),
                                    (b":authority", b"localhost"), (b":path", b"/up")])
            http.send_data(sid, b"x" * 3000, end_stream=False)
            http.send_data(sid, b"y" * 3000, end_stream=True)
            c.conn.transmit()
            for _ in range(100):
                await asyncio.sleep(0.02)
                if len(seen) == 2:
                    break
            return r, seen

    r, scopes = asyncio.run(asyncio.wait_for(run(), 20))
    assert r.status == 200 and r.body == b"got " and "date" in r.headers
    s = scopes[0]
    assert (s["type"], s["http_version"], s["method"], s["scheme"]) == ("http", "3", "GET",
                                                                          "https")
    assert (s["path"], s["raw_path"], s["query_string"]) == ("/a b/c", b"/a%20b/c", b"x=1")
    assert (b"x-test", b"1") in s["headers"] and dict(s["headers"])[b"host"]
    assert scopes[1]["method"] == "POST" and scopes[1]["path"] == "/up"


def test_streamed_response_waits_for_acks_and_holds_bounded_memory(tmp_path: Path) -> None:
    """An app streaming 64 MiB to a client that went silent (no ACKs) is held back once
    ``stream_buffer_bytes`` are unacknowledged; then it streams on to the end."""
    sent = [0]
    chunk = 64 * 1024

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(1024):
            await send({"type": "http.response.body", "body": b"z" * chunk, "more_body": True})
            sent[0] += chunk
        await send({"type": "http.response.body", "body": b""})

    async def run() -> tuple[int, int, int]:
        limit = 512 * 1024
        async with serving(app, tmp_path, stream_buffer_bytes=limit) as server, \
                H3Client("127.0.0.1", port(server)) as c:
            got = 0
            body = c.stream("/big")
            async for piece in body:
                got += len(piece)
                if got > 2 * 2**20:
                    break
            assert c.conn is not None
            loop = asyncio.get_running_loop()
            loop.remove_reader(c.conn.endpoint.sock.fileno())  # silent: no more ACKs
            await asyncio.sleep(0.5)
            held = sent[0]
            await asyncio.sleep(0.5)
            conn = server.open_connections()[0]
            unacked = max(aioquic_compat.unacked_bytes(conn.quic, sid) or 0
                          for sid in conn.requests)
            return held, sent[0], unacked

    held, later, unacked = asyncio.run(asyncio.wait_for(run(), 30))
    assert held == later < 16 * 2**20  # the app waits; far from the 64 MiB it would send
    assert unacked <= 512 * 1024 + 64 * 1024 + 16


@pytest.mark.parametrize("how", ["reset_stream", "stop_sending"])
def test_client_resetting_a_stream_gives_http_disconnect(tmp_path: Path, how: str) -> None:
    """RESET_STREAM (the request abandoned mid-body) or STOP_SENDING (the response
    abandoned, as our client does when its reader stops): the app gets http.disconnect."""
    events: list[str] = []
    done = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a" * 1000, "more_body": True})
        while True:
            msg = await receive()
            events.append(msg["type"])
            if msg["type"] == "http.disconnect":
                done.set()
                return

    async def run() -> None:
        async with serving(app, tmp_path) as server, \
                H3Client("127.0.0.1", port(server)) as c:
            assert c.conn is not None
            if how == "stop_sending":
                async for _ in c.stream("/slow"):
                    break  # the generator's end sends STOP_SENDING
            else:
                quic = c.conn.quic
                sid = quic.get_next_available_stream_id()
                c.conn.http.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"https"),
                                               (b":authority", b"localhost"),
                                               (b":path", b"/up")])
                c.conn.http.send_data(sid, b"part", end_stream=False)
                c.conn.transmit()
                await asyncio.sleep(0.2)
                quic.reset_stream(sid, 0x10C)
                c.conn.transmit()
            await asyncio.wait_for(done.wait(), 5)

    asyncio.run(asyncio.wait_for(run(), 20))
    assert events[-1] == "http.disconnect"


def test_connections_without_requests_are_closed(tmp_path: Path) -> None:
    """No request open for ``keep_alive_s``: closed (the client sees it); a peer that
    goes silent ends after the QUIC idle timeout, with its state dropped."""
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await respond(send, b"ok")

    async def run() -> tuple[bool, int, int]:
        async with serving(app, tmp_path, keep_alive_s=0.3, idle_timeout_s=1.0) as server:
            async with H3Client("127.0.0.1", port(server)) as c:
                assert (await c.get("/")).status == 200
                await asyncio.sleep(1.0)
                assert c.conn is not None
                closed_by_server = c.conn.closed
            silent = H3Client("127.0.0.1", port(server))
            await silent.__aenter__()
            assert silent.conn is not None
            silent.conn.stop_timer()  # sends nothing more, reads nothing more
            asyncio.get_running_loop().remove_reader(silent.conn.endpoint.sock.fileno())
            before = len(server.open_connections())
            await asyncio.sleep(3.0)
            after = len(server.open_connections())
            silent.conn.endpoint.sock.close()
            return closed_by_server, before, after

    closed, before, after = asyncio.run(asyncio.wait_for(run(), 20))
    assert closed and before == 1 and after == 0


def test_datagrams_above_16_kb_on_loopback(tmp_path: Path) -> None:
    body = os.urandom(3 * 2**20)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await respond(send, body)

    async def run() -> tuple[bytes, int]:
        async with serving(app, tmp_path, max_datagram_bytes=65000) as server, \
                H3Client("127.0.0.1", port(server), max_datagram_bytes=65000) as c:
            assert c.conn is not None
            sizes: list[int] = []
            feed = c.conn.endpoint.on_batch

            def record(batch: list[tuple[bytes, Any]]) -> None:
                sizes.extend(len(d) for d, _ in batch)
                feed(batch)

            c.conn.endpoint.on_batch = record
            r = await c.get("/big")
            return r.body, max(sizes)

    got, largest = asyncio.run(asyncio.wait_for(run(), 30))
    assert got == body and largest > 16384


def test_version_check_refuses_another_aioquic_in_one_sentence() -> None:
    aioquic_compat.check_version(aioquic.__version__)
    with pytest.raises(aioquic_compat.AioquicVersionError) as err:
        aioquic_compat.check_version("1.7.3")
    text = str(err.value)
    assert "1.7.2" in text and "1.7.3" in text and "\n" not in text


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, cwd=ROOT)


def test_importing_patches_nothing_applying_does() -> None:
    r = _python(
        "from aioquic.quic.connection import QuicConnection as Q\n"
        "from aioquic.h3.connection import H3Connection as H\n"
        "before = (Q._write_stream_frame, Q._write_application, H.send_data)\n"
        "import edge.aioquic_compat, edge.h3server, edge.h3client, edge.server, edge.quicio\n"
        "import player_sim.clients\n"
        "assert (Q._write_stream_frame, Q._write_application, H.send_data) == before\n"
        "assert not edge.aioquic_compat.applied()\n"
        "edge.aioquic_compat.apply()\n"
        "assert Q._write_stream_frame is not before[0] and edge.aioquic_compat.applied()\n"
        "print('ok')\n")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_the_edge_refuses_to_start_on_another_aioquic(tmp_path: Path) -> None:
    r = _python(
        "import sys, aioquic\n"
        "aioquic.__version__ = '1.8.0'\n"
        "from abrstack.cli import main\n"
        f"sys.exit(main(['edge', '--origin', 'http://127.0.0.1:9', '--port', '0',"
        f" '--cache-dir', {str(tmp_path)!r}]))\n")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert "aioquic 1.7.2" in lines[0] and "1.8.0" in lines[0]
    assert "Traceback" not in r.stderr
