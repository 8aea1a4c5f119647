"""One table of conditional and range requests (RFC 9110 §13, §14), asked of the real
origin and of the real edge in front of it: both must answer the same status.

The edge is asked each case twice, once on a miss (the answer is cut from the fetch in
flight) and once on a hit (from the stored copy); the object is purged between cases.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import httpx
import pytest

from origin.testing import running_origin
from tests.edge.conftest import running_edge
from tests.origin.origin_test_helpers import SMALL_SEGMENT_BYTES, write_title

SEG = "/media/show/360p/seg-00002.m4s"
MTIME_S = 1_700_000_000  # well in the past: Last-Modified is a strong validator (§8.8.2.2)
LM = "Tue, 14 Nov 2023 22:13:20 GMT"
EARLIER = "Tue, 14 Nov 2023 22:13:19 GMT"
ETAG = f'"{MTIME_S * 10**9:x}-{SMALL_SEGMENT_BYTES:x}"'
TOKEN = "t"

CASES: list[tuple[str, dict[str, str], int]] = [
    ("plain", {}, 200),
    ("one range", {"Range": "bytes=0-99"}, 206),
    ("suffix", {"Range": "bytes=-100"}, 206),
    ("zero suffix", {"Range": "bytes=-0"}, 416),
    ("past the end", {"Range": "bytes=9000-"}, 416),
    ("none satisfiable", {"Range": "bytes=9000-9001,8000-"}, 416),
    ("underscores are not digits", {"Range": "bytes=1_000-2_000"}, 200),
    ("signs are not digits", {"Range": "bytes=+1-2"}, 200),
    ("reversed", {"Range": "bytes=5-2"}, 200),
    ("other unit", {"Range": "items=0-5"}, 200),
    ("adjacent coalesce", {"Range": "bytes=0-99,100-199"}, 206),
    ("disjoint: whole", {"Range": "bytes=0-9,20-29"}, 200),
    ("if-range etag", {"Range": "bytes=0-9", "If-Range": ETAG}, 206),
    ("if-range stale etag", {"Range": "bytes=0-9", "If-Range": '"old"'}, 200),
    ("if-range weak etag", {"Range": "bytes=0-9", "If-Range": f"W/{ETAG}"}, 200),
    ("if-range date", {"Range": "bytes=0-9", "If-Range": LM}, 206),
    ("if-range other date", {"Range": "bytes=0-9", "If-Range": EARLIER}, 200),
    ("if-none-match", {"If-None-Match": ETAG}, 304),
    ("if-none-match weak", {"If-None-Match": f"W/{ETAG}"}, 304),
    ("if-none-match star", {"If-None-Match": "*"}, 304),
    ("if-none-match other", {"If-None-Match": '"old"'}, 200),
    ("if-none-match beats ims", {"If-None-Match": '"old"', "If-Modified-Since": LM}, 200),
    ("if-modified-since", {"If-Modified-Since": LM}, 304),
    ("if-modified-since earlier", {"If-Modified-Since": EARLIER}, 200),
    ("if-match", {"If-Match": ETAG}, 200),
    ("if-match star", {"If-Match": "*"}, 200),
    ("if-match other", {"If-Match": '"old"'}, 412),
    ("if-match weak", {"If-Match": f"W/{ETAG}"}, 412),
    ("if-match other and range", {"If-Match": '"old"', "Range": "bytes=0-9"}, 412),
    ("if-unmodified-since", {"If-Unmodified-Since": LM}, 200),
    ("if-unmodified-since earlier", {"If-Unmodified-Since": EARLIER}, 412),
    ("304 before range", {"If-None-Match": ETAG, "Range": "bytes=0-9"}, 304),
]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(origin URL, edge URL): a real origin with a hand-made title, a real edge before it."""
    root = tmp_path_factory.mktemp("httpsem")
    title = write_title(root / "media", "show")
    seg = title.path / "360p" / "seg-00002.m4s"
    os.utime(seg, ns=(MTIME_S * 10**9, MTIME_S * 10**9))
    with running_origin(title.media_dir) as origin_url, \
            running_edge([origin_url], root / "cache", purge_token=TOKEN) as edge:
        yield origin_url, edge.http


@pytest.mark.parametrize(("name", "headers", "expected"), CASES, ids=[c[0] for c in CASES])
def test_origin_and_edge_answer_the_same(
    servers: tuple[str, str], name: str, headers: dict[str, str], expected: int
) -> None:
    origin_url, edge_url = servers
    assert httpx.get(origin_url + SEG, headers=headers).status_code == expected, "origin"
    purge = httpx.post(edge_url + "/purge", json={"path": SEG},
                       headers={"Authorization": f"Bearer {TOKEN}"})
    assert purge.status_code == 200
    time.sleep(0.05)  # let an earlier disk write land before it is purged again
    miss = httpx.get(edge_url + SEG, headers=headers)
    hit = httpx.get(edge_url + SEG, headers=headers)
    assert (miss.status_code, hit.status_code) == (expected, expected), "edge miss, hit"
    assert "HIT" in hit.headers["x-cache"]
    if expected == 206:
        assert hit.headers["content-range"] == miss.headers["content-range"]
        assert hit.content == miss.content
    if expected == 416:
        assert hit.headers["content-range"] == f"bytes */{SMALL_SEGMENT_BYTES}"
