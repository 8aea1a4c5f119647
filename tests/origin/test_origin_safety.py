"""Nothing outside the media root is served, and titles changing under a client are safe."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from origin_test_helpers import BIG_SEGMENT_BYTES, HandTitle, raw_request, write_title

SECRET = b"top secret, outside the media root\n"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.m3u8"  # a served extension, so only the path rules stop it
    path.write_bytes(SECRET)
    return path


@pytest.mark.parametrize(
    "target",
    [
        "/media/show/../../secret.m3u8",
        "/media/show/%2e%2e/%2e%2e/secret.m3u8",
        "/media/show/%2E%2E%2F%2E%2E%2Fsecret.m3u8",
        "/media/show/..%2f..%2fsecret.m3u8",
        "/media/show/360p/..%5c..%5csecret.m3u8",
        "/media/..%2fsecret.m3u8",
        "/media/show//etc/passwd",
        "/media/show/%2Fetc%2Fpasswd",
        "/media/%2e%2e/secret.m3u8",
        "/media/show/master.m3u8%00.mp4",
        "/media/show/%00",
        "/media/show/./master.m3u8",
        "/media/show/",
        "/media/show/360p",
        "/media/show/360p/",
        "/media/show/title.json/",
        "/media/show",
        "/media/",
        "/static/../origin/server.py",
        "/static/%2e%2e%2fserver.py",
        "/static/vendor/..%2f..%2fpackage.json",
    ],
)
def test_traversal_and_malformed_paths_are_refused(
    origin_url: str, secret: Path, target: str
) -> None:
    status, _headers, body = raw_request(origin_url, "GET", target)
    assert status in (400, 404), (target, status)
    assert SECRET not in body and b"root:" not in body and b"import" not in body


def test_symlinks_out_of_the_root_are_not_followed(
    origin_url: str, hand_title: HandTitle, secret: Path, tmp_path: Path
) -> None:
    (hand_title.path / "360p" / "leak.m3u8").symlink_to(secret)
    (hand_title.path / "360p" / "up").symlink_to(tmp_path)
    outside = tmp_path / "elsewhere"
    write_title(tmp_path, "elsewhere")
    (hand_title.media_dir / "linked").symlink_to(outside)
    for target in (
        "/media/show/360p/leak.m3u8",
        "/media/show/360p/up/secret.m3u8",
        "/media/linked/master.m3u8",
        "/titles/linked",
        "/play/linked",
    ):
        status, _headers, body = raw_request(origin_url, "GET", target)
        assert status == 404, target
        assert SECRET not in body
    names = [t["name"] for t in httpx.get(origin_url + "/titles").json()["titles"]]
    assert names == ["show"]


def test_symlink_inside_the_title_is_served(origin_url: str, hand_title: HandTitle) -> None:
    (hand_title.path / "alias.m3u8").symlink_to(hand_title.path / "master.m3u8")
    assert httpx.get(origin_url + "/media/show/alias.m3u8").status_code == 200


def test_titles_being_published_and_unknown_files_are_hidden(
    origin_url: str, hand_title: HandTitle
) -> None:
    write_title(hand_title.media_dir, ".tmp-show-123")
    partial = hand_title.media_dir / "half"  # a folder without title.json is not a title
    partial.mkdir()
    (partial / "master.m3u8").write_text("#EXTM3U\n")
    (hand_title.path / "notes.txt").write_text("private")
    (hand_title.path / ".hidden.m3u8").write_text("#EXTM3U\n")
    for target in (
        "/media/.tmp-show-123/master.m3u8",
        "/media/%2etmp-show-123/master.m3u8",
        "/titles/.tmp-show-123",
        "/play/.tmp-show-123",
        "/media/half/master.m3u8",
        "/media/show/notes.txt",
        "/media/show/.hidden.m3u8",
    ):
        status, _headers, _body = raw_request(origin_url, "GET", target)
        assert status == 404, target
    names = [t["name"] for t in httpx.get(origin_url + "/titles").json()["titles"]]
    assert names == ["show"]


def test_title_deleted_while_a_client_downloads_it(origin_url: str, hand_title: HandTitle) -> None:
    """The body already started keeps flowing; the next request is a clean 404."""
    parts = urlsplit(origin_url)
    assert parts.hostname and parts.port
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)  # body stays in flight
        slow.sendall(
            b"GET /media/show/360p/seg-00001.m4s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = slow.recv(1000)
        assert data.startswith(b"HTTP/1.1 200")
        shutil.rmtree(hand_title.path)  # deleted mid-download
        assert httpx.get(origin_url + "/media/show/360p/seg-00001.m4s").status_code == 404
        assert httpx.get(origin_url + "/titles").json() == {"titles": []}
        time.sleep(0.05)
        while chunk := slow.recv(65536):
            data += chunk
    body = data.partition(b"\r\n\r\n")[2]
    assert body == hand_title.big
    assert httpx.get(origin_url + "/healthz").status_code == 200


def test_title_replaced_while_playing_serves_the_new_one(
    origin_url: str, hand_title: HandTitle
) -> None:
    old = httpx.get(origin_url + "/media/show/360p/seg-00001.m4s")
    staging = hand_title.media_dir / ".tmp-show-new"
    new = write_title(hand_title.media_dir, ".tmp-show-new", seed=2)
    os.rename(hand_title.path, hand_title.media_dir / ".old-show")
    os.rename(staging, hand_title.path)  # the encoder's atomic publish
    shutil.rmtree(hand_title.media_dir / ".old-show")
    fresh = httpx.get(
        origin_url + "/media/show/360p/seg-00001.m4s",
        headers={"If-None-Match": old.headers["etag"]},
    )
    assert fresh.status_code == 200 and fresh.content == new.big
    assert len(fresh.content) == BIG_SEGMENT_BYTES - 2
    assert fresh.headers["etag"] != old.headers["etag"]


def test_many_clients_during_a_delete_never_get_a_server_error(
    origin_url: str, hand_title: HandTitle
) -> None:
    import asyncio

    async def hammer() -> list[int]:
        async with httpx.AsyncClient(base_url=origin_url) as client:

            async def one(i: int) -> int:
                path = f"/media/show/360p/seg-0000{1 + i % 2}.m4s"
                return (await client.get(path)).status_code

            first = asyncio.gather(*(one(i) for i in range(40)))
            await asyncio.sleep(0.01)
            await asyncio.to_thread(shutil.rmtree, hand_title.path)
            second = await asyncio.gather(*(one(i) for i in range(10)))
            return list(await first) + list(second)

    statuses = asyncio.run(hammer())
    assert set(statuses) <= {200, 404}
    assert statuses[-10:] == [404] * 10


def test_clients_leaving_mid_body_do_not_hurt_the_server(
    origin_url: str, hand_title: HandTitle, caplog: pytest.LogCaptureFixture
) -> None:
    parts = urlsplit(origin_url)
    assert parts.hostname and parts.port
    for _ in range(20):
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as rude:
            rude.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
            rude.sendall(b"GET /media/show/360p/seg-00001.m4s HTTP/1.1\r\nHost: x\r\n\r\n")
            assert rude.recv(100).startswith(b"HTTP/1.1 200")
            rude.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        # closed with RST while the server is still in sendfile
    with httpx.Client(base_url=origin_url) as client:
        assert client.get("/media/show/360p/seg-00001.m4s").content == hand_title.big
        assert client.get("/healthz").status_code == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
