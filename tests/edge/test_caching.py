"""Cache behaviour end to end: collapsing, revalidation, stale, faults, purge, ranges,
eviction, persistence — real edge, stand-in origin."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.edge.conftest import Obj, fake_origin, gated_stampede

MB = bytes(range(256)) * 4096
SEG_CC = "public, max-age=31536000, immutable"


def test_stampede_of_100_makes_one_fetch_and_streams_to_every_waiter(
        origin: Any, edge_factory: Any) -> None:
    state, url = origin
    path = "/media/new/720p/seg-00001.m4s"
    state.objects[path] = Obj(MB, {"Cache-Control": SEG_CC, "ETag": '"e1"'})
    with edge_factory([url], prefetch_k=0) as edge:
        httpx.get(edge.http + "/healthz")  # let the origin's loop start before the gate
        httpx.get(url + "/warm")
        state.make_gate()

        results = gated_stampede(state, path, [edge.http], 100)
        assert state.count(path) == 1
        assert all(st == 200 and body == MB for st, body, *_ in results)
        tags = sorted(x for _, _, x, _ in results)
        assert tags.count("MISS") == 1 and tags.count("MISS; collapsed") == 99
        metrics = httpx.get(edge.http + "/metrics").text
        assert 'edge_collapsed_requests_total{worker="0"} 99.0' in metrics


def test_revalidation_with_304_refreshes(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    state.objects["/media/t/master.m3u8"] = Obj(b"#EXTM3U\n", {
        "Cache-Control": "public, max-age=1", "ETag": '"m1"'})
    with edge_factory([url]) as edge:
        assert httpx.get(edge.http + "/media/t/master.m3u8").headers["x-cache"] == "MISS"
        assert httpx.get(edge.http + "/media/t/master.m3u8").headers["x-cache"] == "HIT"
        time.sleep(1.1)
        r = httpx.get(edge.http + "/media/t/master.m3u8")
        assert r.headers["x-cache"] == "REVALIDATED" and r.content == b"#EXTM3U\n"
        assert state.conditional["/media/t/master.m3u8"] == 1
        assert httpx.get(edge.http + "/media/t/master.m3u8").headers["x-cache"] == "HIT"
        # a client's own conditional request is answered by the edge
        r = httpx.get(edge.http + "/media/t/master.m3u8", headers={"If-None-Match": '"m1"'})
        assert r.status_code == 304 and r.headers["etag"] == '"m1"'
        # the object changes at the origin: the next revalidation gets the new body
        state.objects["/media/t/master.m3u8"] = Obj(b"#EXTM3U\n#2\n", {
            "Cache-Control": "public, max-age=1", "ETag": '"m2"'})
        time.sleep(1.1)
        r = httpx.get(edge.http + "/media/t/master.m3u8")
        assert r.headers["x-cache"] == "MISS" and r.content == b"#EXTM3U\n#2\n"


def test_stale_while_revalidate_serves_stale_then_refreshes(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    state.objects["/m.mpd"] = Obj(b"v1", {"Cache-Control": "max-age=1, stale-while-revalidate=30"})
    with edge_factory([url]) as edge:
        httpx.get(edge.http + "/m.mpd")
        state.objects["/m.mpd"] = Obj(b"v2", {"Cache-Control": "max-age=1, stale-while-revalidate=30"})
        time.sleep(1.1)
        r = httpx.get(edge.http + "/m.mpd")
        assert (r.headers["x-cache"], r.content) == ("STALE", b"v1")
        for _ in range(50):
            if state.count("/m.mpd") == 2:
                break
            time.sleep(0.02)
        time.sleep(0.05)
        r = httpx.get(edge.http + "/m.mpd")
        assert (r.headers["x-cache"], r.content) == ("HIT", b"v2")


def test_stale_if_error_and_circuit_breaker_with_origin_stopped(tmp_path: Any, edge_factory: Any) -> None:
    with fake_origin() as (state, url):
        state.objects["/a"] = Obj(b"A", {"Cache-Control": "max-age=1, stale-if-error=60"})
        state.objects["/b"] = Obj(b"B", {"Cache-Control": "max-age=1"})
        edge_cm = edge_factory([url], retries=0, breaker_failures=2, breaker_open_s=1.0)
        edge = edge_cm.__enter__()
        try:
            assert httpx.get(edge.http + "/a").content == b"A"
            assert httpx.get(edge.http + "/b").content == b"B"
        except BaseException:
            edge_cm.__exit__(None, None, None)
            raise
    try:  # the origin is gone now
        time.sleep(1.1)
        r = httpx.get(edge.http + "/a")
        assert (r.status_code, r.headers["x-cache"], r.content) == (200, "STALE", b"A")
        r = httpx.get(edge.http + "/b")  # no stale-if-error: a clean 502
        assert r.status_code == 502
        assert httpx.get(edge.http + "/healthz").json()["origins"][url]["breaker"] == "open"
        t0 = time.monotonic()
        r = httpx.get(edge.http + "/c")  # open circuit: fails fast, no connect attempt
        assert r.status_code == 502 and time.monotonic() - t0 < 0.5
        assert httpx.get(edge.http + "/a").headers["x-cache"] == "STALE"
    finally:
        edge_cm.__exit__(None, None, None)


def test_breaker_half_open_probe_closes_when_origin_returns(edge_factory: Any) -> None:
    with fake_origin() as (state, url):
        state.objects["/x"] = Obj(b"X", {"Cache-Control": "max-age=60"})
        state.fail_status = 503
        with edge_factory([url], retries=0, breaker_failures=2, breaker_open_s=0.5) as edge:
            assert httpx.get(edge.http + "/x").status_code == 502
            assert httpx.get(edge.http + "/x").status_code == 502
            n = state.count("/x")
            assert httpx.get(edge.http + "/x").status_code == 502
            assert state.count("/x") == n  # open: the origin is not asked
            state.fail_status = None
            time.sleep(0.6)
            r = httpx.get(edge.http + "/x")  # half-open probe succeeds
            assert r.status_code == 200 and r.content == b"X"
            assert httpx.get(edge.http + "/healthz").json()["origins"][url]["breaker"] == "closed"


def test_failover_to_second_origin_and_retry(edge_factory: Any) -> None:
    with fake_origin() as (dead, dead_url):
        pass  # stopped: connection refused from now on
    with fake_origin() as (state, url), edge_factory([dead_url, url], retries=1) as edge:
        state.objects["/f"] = Obj(b"F", {"Cache-Control": "max-age=60"})
        r = httpx.get(edge.http + "/f")
        assert r.status_code == 200 and r.content == b"F" and state.count("/f") == 1
        assert 'outcome="error"' in httpx.get(edge.http + "/metrics").text


def test_slow_origin_read_timeout_is_504(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    state.objects["/slow"] = Obj(b"S", {"Cache-Control": "max-age=60"})
    state.first_byte_delay_s = 1.5
    with edge_factory([url], read_timeout_s=0.3, retries=0) as edge:
        assert httpx.get(edge.http + "/slow", timeout=10).status_code == 504


def test_purge_needs_the_token(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    state.objects["/media/t/a.m4s"] = Obj(b"1", {"Cache-Control": "max-age=600"})
    state.objects["/media/t/b.m4s"] = Obj(b"2", {"Cache-Control": "max-age=600"})
    with edge_factory([url], purge_token="s3cret") as edge:
        for p in ("/media/t/a.m4s", "/media/t/b.m4s"):
            httpx.get(edge.http + p)
        assert httpx.post(edge.http + "/purge", json={"path": "/media/t/a.m4s"}).status_code == 401
        bad = {"Authorization": "Bearer nope"}
        assert httpx.post(edge.http + "/purge", json={"path": "/media/t/a.m4s"},
                          headers=bad).status_code == 401
        assert httpx.get(edge.http + "/media/t/a.m4s").headers["x-cache"] == "HIT"
        good = {"Authorization": "Bearer s3cret"}
        r = httpx.post(edge.http + "/purge", json={"path": "/media/t/a.m4s"}, headers=good)
        assert r.status_code == 200 and r.json()["purged"] == 1
        assert httpx.get(edge.http + "/media/t/a.m4s").headers["x-cache"] == "MISS"
        assert httpx.get(edge.http + "/media/t/b.m4s").headers["x-cache"] == "HIT"
        r = httpx.post(edge.http + "/purge?prefix=/media/t/", headers=good)
        assert r.json()["purged"] == 2
        assert httpx.get(edge.http + "/media/t/b.m4s").headers["x-cache"] == "MISS"


def test_ranges_from_cache_and_while_streaming(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    state.objects["/r"] = Obj(MB, {"Cache-Control": "max-age=600"})
    with edge_factory([url]) as edge:
        r = httpx.get(edge.http + "/r", headers={"Range": "bytes=100-199"})  # a miss
        assert r.status_code == 206 and r.content == MB[100:200]
        assert r.headers["content-range"] == f"bytes 100-199/{len(MB)}"
        r = httpx.get(edge.http + "/r", headers={"Range": "bytes=-10"})  # a hit
        assert (r.status_code, r.content, r.headers["x-cache"]) == (206, MB[-10:], "HIT")
        r = httpx.get(edge.http + "/r", headers={"Range": f"bytes={len(MB)}-"})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(MB)}"
        assert state.count("/r") == 1
        h = httpx.head(edge.http + "/r")
        assert h.status_code == 200 and h.headers["content-length"] == str(len(MB))


def test_negative_caching_is_short(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    with edge_factory([url], negative_ttl_s=0.5) as edge:
        assert httpx.get(edge.http + "/media/nope").status_code == 404
        r = httpx.get(edge.http + "/media/nope")
        assert (r.status_code, r.headers["x-cache"]) == (404, "HIT")
        assert state.count("/media/nope") == 1
        state.objects["/media/nope"] = Obj(b"here", {"Cache-Control": "max-age=60"})
        time.sleep(0.6)
        assert httpx.get(edge.http + "/media/nope").status_code == 200


def test_no_store_and_private_are_not_cached(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    state.objects["/ns"] = Obj(b"n", {"Cache-Control": "no-store"})
    state.objects["/pv"] = Obj(b"p", {"Cache-Control": "private, max-age=60"})
    with edge_factory([url]) as edge:
        for p in ("/ns", "/pv"):
            httpx.get(edge.http + p)
            assert httpx.get(edge.http + p).headers["x-cache"] == "MISS"
            assert state.count(p) == 2


def test_request_headers_do_not_change_the_object(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    state.objects["/k"] = Obj(b"K", {"Cache-Control": "max-age=60"})
    with edge_factory([url]) as edge:
        a = httpx.get(edge.http + "/k?b=2&a=1", headers={"Accept-Language": "fr", "Cookie": "x=1"})
        b = httpx.get(edge.http + "/k?a=1&b=2&CMCD=sid%3D%22s%22",
                      headers={"CMCD-Session": 'sid="t"'})
        assert a.content == b.content == b"K" and b.headers["x-cache"] == "HIT"
        assert state.count("/k") == 1


def test_memory_and_disk_eviction_under_size_bounds(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    for i in range(8):
        state.objects[f"/o{i}"] = Obj(bytes([i]) * 300_000, {"Cache-Control": "max-age=600"})
    with edge_factory([url], memory_size_bytes=700_000, cache_size_bytes=1_000_000) as edge:
        for i in range(8):
            httpx.get(edge.http + f"/o{i}")
        app = edge.app
        assert app.store.memory.size_bytes <= 700_000
        assert app.store.memory.keys() == ["/o6", "/o7"]
        app.store.disk.cull()
        assert app.store.disk.size_bytes() <= 1_000_000
        on_disk = sorted(app.store.disk.keys())
        assert "/o0" not in on_disk and "/o7" in on_disk
        r = httpx.get(edge.http + "/o0")  # evicted everywhere: fetched again
        assert r.headers["x-cache"] == "MISS" and state.count("/o0") == 2


def test_disk_cache_survives_a_restart(origin: Any, edge_factory: Any, tmp_path: Any) -> None:
    state, url = origin
    state.objects["/keep"] = Obj(MB, {"Cache-Control": "max-age=600", "ETag": '"k"'})
    with edge_factory([url], cache_dir=tmp_path / "c") as edge:
        httpx.get(edge.http + "/keep")
        time.sleep(0.2)  # the disk write follows the response
    with edge_factory([url], cache_dir=tmp_path / "c") as edge:
        r = httpx.get(edge.http + "/keep")
        assert (r.headers["x-cache"], r.content) == ("HIT", MB)
        assert int(r.headers["age"]) >= 0 and state.count("/keep") == 1


def test_prefetch_next_segments_and_cmcd_nor(origin: Any, edge_factory: Any) -> None:
    state, url = origin
    for rid in ("360p", "720p"):
        for n in range(1, 6):
            state.objects[f"/media/t/{rid}/seg-{n:05d}.m4s"] = Obj(b"s", {"Cache-Control": SEG_CC})
    with edge_factory([url], prefetch_k=2) as edge:
        httpx.get(edge.http + "/media/t/360p/seg-00001.m4s",
                  headers={"CMCD-Request": 'nor="..%2F720p%2Fseg-00002.m4s"'})
        for _ in range(100):
            if all(state.count(p) for p in ("/media/t/360p/seg-00002.m4s",
                                             "/media/t/360p/seg-00003.m4s",
                                             "/media/t/720p/seg-00002.m4s")):
                break
            time.sleep(0.02)
        time.sleep(0.05)
        assert state.count("/media/t/360p/seg-00004.m4s") == 0  # prefetches do not chain
        for p in ("/media/t/360p/seg-00002.m4s", "/media/t/720p/seg-00002.m4s"):
            assert httpx.get(edge.http + p).headers["x-cache"] == "HIT"
        assert state.count("/media/t/360p/seg-00002.m4s") == 1


def test_cmcd_nor_with_1000_names_makes_a_bounded_number_of_origin_fetches(
        origin: Any, edge_factory: Any) -> None:
    state, url = origin
    for n in range(1, 1100):
        state.objects[f"/media/t/360p/seg-{n:05d}.m4s"] = Obj(b"s", {"Cache-Control": SEG_CC})
    many = ",".join(f"seg-{n:05d}.m4s" for n in range(2, 1002))
    with edge_factory([url], prefetch_k=2) as edge:
        for _ in range(3):  # repeated hints dedupe with the queue and the cache
            httpx.get(edge.http + "/media/t/360p/seg-00001.m4s",
                      headers={"CMCD-Request": f'nor="{many}"'})
        time.sleep(0.5)
        assert sum(state.fetches.values()) == 1 + 4
        assert max(state.fetches.values()) == 1


def test_cors_preflight_allows_range(origin: Any, edge_factory: Any) -> None:
    _, url = origin
    with edge_factory([url]) as edge:
        r = httpx.options(edge.http + "/media/t/360p/seg-00001.m4s", headers={
            "Origin": "http://x", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range"})
        assert r.status_code == 204 and "Range" in r.headers["access-control-allow-headers"]


def test_stampede_across_two_workers_sharing_a_cache_dir(origin: Any, edge_factory: Any,
                                                         tmp_path: Any) -> None:
    """Two edge workers (as with --workers 2) on one cache dir: one origin fetch in all,
    and the worker that lost the race streams the other's fetch as it arrives."""
    state, url = origin
    path = "/media/new/1080p/seg-00001.m4s"
    state.objects[path] = Obj(MB, {"Cache-Control": SEG_CC})
    shared = tmp_path / "shared"
    with edge_factory([url], prefetch_k=0, cache_dir=shared) as a, \
            edge_factory([url], prefetch_k=0, cache_dir=shared) as b:
        httpx.get(url + "/warm")
        state.make_gate()

        results = gated_stampede(state, path, [b.http, a.http], 40)
        assert state.count(path) == 1
        assert all(st == 200 and body == MB for st, body, *_ in results)
        assert sum(1 for _, _, x, _ in results if x == "MISS") == 1
        time.sleep(0.2)
        assert httpx.get(a.http + path).headers["x-cache"] == "HIT"
        assert httpx.get(b.http + path).headers["x-cache"] == "HIT"
        assert list((shared / "inflight").iterdir()) == []
