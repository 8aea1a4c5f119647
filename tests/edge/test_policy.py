"""The pure cache policy, in memory with a fake clock."""

from __future__ import annotations

import pytest

from abrstack.httpsem import decide
from edge.breaker import BreakerState, CircuitBreaker, backoff_s
from edge.policy import (
    Entry,
    Lookup,
    LruIndex,
    PathRejected,
    PolicyConfig,
    cache_key,
    clean_headers,
    current_age_s,
    format_http_date,
    freshness_lifetime_s,
    judge,
    may_serve_stale_on_error,
    normalise_path,
    parse_key_params,
    parse_size,
    refreshed,
    representation,
    storable,
    validators,
)
from edge.prefetch import next_segments, prefetch_choice

T0 = 1_800_000_000.0
CFG = PolicyConfig()


def entry(cc: str | None = None, status: int = 200, **extra: str) -> Entry:
    hs = [("date", format_http_date(T0))]
    if cc is not None:
        hs.append(("cache-control", cc))
    hs += [(k.replace("_", "-"), v) for k, v in extra.items()]
    return Entry(status, tuple(hs), T0, T0, 10)


def test_cache_key_drops_cmcd_and_sorts_query() -> None:
    a = cache_key("/other/seg-00001.m4s", "b=2&CMCD=bl%3D2000%2Cbr%3D600&a=1")
    b = cache_key("/other/seg-00001.m4s", "a=1&b=2")
    assert a == b == "/other/seg-00001.m4s?a=1&b=2"


def test_cache_key_keeps_only_the_params_the_origin_reads() -> None:
    seg = "/media/t/360p/seg-00001.m4s"
    assert cache_key(seg, "bust=1") == cache_key(seg, "bust=2&CMCD=x") == seg
    assert cache_key("/play/t", "player=dash&bust=3") == "/play/t?player=dash"
    mine = parse_key_params(["/media/t/=token", "/titles="])
    assert cache_key(seg, "token=a&bust=1", mine) == seg + "?token=a"
    assert cache_key("/media/u/x.m4s", "token=a", mine) == "/media/u/x.m4s"
    assert cache_key("/media/x", "a=1", parse_key_params(["/media/=*"])) == "/media/x?a=1"
    with pytest.raises(ValueError):
        parse_key_params(["media=a"])
    assert cache_key("/x", "CMCD=sid%3D%22a%22") == "/x"
    assert cache_key("/x", "") == "/x"


@pytest.mark.parametrize(
    "raw",
    ["/media/../etc/passwd", "/media/%2e%2e/x", "/media/.tmp-abc/title.json", "/a\\b",
     "/a%00b", "relative", "/media/t/%2E%2E%2Fx"],
)
def test_hostile_paths_rejected(raw: str) -> None:
    with pytest.raises(PathRejected):
        normalise_path(raw)


def test_normalise_path_collapses_and_reencodes() -> None:
    assert normalise_path("//media//t/%73eg.m4s") == "/media/t/seg.m4s"
    assert normalise_path("/media/a%20b/x") == "/media/a%20b/x"


def test_max_age_s_maxage_and_expires() -> None:
    assert freshness_lifetime_s(entry("public, max-age=60"), CFG) == 60
    assert freshness_lifetime_s(entry("max-age=60, s-maxage=5"), CFG) == 5
    e = entry(None, expires=format_http_date(T0 + 30))
    assert freshness_lifetime_s(e, CFG) == 30
    assert freshness_lifetime_s(entry("max-age=60", expires=format_http_date(T0 + 1)), CFG) == 60
    assert freshness_lifetime_s(entry("max-age=junk"), CFG) == 0
    assert freshness_lifetime_s(entry("no-cache, max-age=60"), CFG) == 0


def test_heuristic_freshness_from_last_modified() -> None:
    e = entry(None, last_modified=format_http_date(T0 - 1000))
    assert freshness_lifetime_s(e, CFG) == pytest.approx(100)


def test_negative_entries_are_short() -> None:
    assert freshness_lifetime_s(entry(None, status=404), CFG) == CFG.negative_ttl_s
    assert freshness_lifetime_s(entry("max-age=3600", status=404), CFG) == CFG.negative_ttl_s
    assert freshness_lifetime_s(entry("max-age=1", status=404), CFG) == 1


def test_storable_rules() -> None:
    ok = clean_headers([("Cache-Control", "public, max-age=5")])
    assert storable("GET", 200, ok)
    assert storable("GET", 404, ())
    assert not storable("GET", 500, ok)
    assert not storable("POST", 200, ok)
    assert not storable("GET", 200, clean_headers([("Cache-Control", "no-store")]))
    assert not storable("GET", 200, clean_headers([("Cache-Control", "private, max-age=9")]))
    assert not storable("GET", 200, clean_headers([("Vary", "Cookie")]))
    assert storable("GET", 200, clean_headers([("Vary", "Origin")]))


def test_clean_headers_drops_hop_by_hop_and_connection_named() -> None:
    hs = clean_headers([("Connection", "close, X-Foo"), ("X-Foo", "1"), ("ETag", '"a"'),
                        ("Transfer-Encoding", "chunked"), ("Content-Length", "3")])
    assert hs == (("etag", '"a"'),)


def test_age_calculation_uses_date_age_and_delay() -> None:
    hs = (("date", format_http_date(T0 - 10)), ("age-in", "5"))
    e = Entry(200, hs, T0 - 2, T0, 1)
    # apparent age 10; corrected age value 5 + 2 delay = 7; initial = 10; +3 resident
    assert current_age_s(e, T0 + 3) == pytest.approx(13)


def test_judge_fresh_swr_revalidate() -> None:
    e = entry("max-age=10, stale-while-revalidate=20")
    assert judge(e, T0 + 5, CFG).action is Lookup.FRESH
    assert judge(e, T0 + 15, CFG).action is Lookup.STALE_REVALIDATE_BACKGROUND
    assert judge(e, T0 + 31, CFG).action is Lookup.REVALIDATE
    assert judge(entry("max-age=10"), T0 + 11, CFG).action is Lookup.REVALIDATE
    m = entry("max-age=10, stale-while-revalidate=20, must-revalidate")
    assert judge(m, T0 + 15, CFG).action is Lookup.REVALIDATE


def test_reload_revalidates_except_immutable() -> None:
    reload = {"no-cache": None}
    assert judge(entry("max-age=100"), T0 + 1, CFG, reload).action is Lookup.REVALIDATE
    imm = entry("max-age=100, immutable")
    assert judge(imm, T0 + 1, CFG, reload).action is Lookup.FRESH
    assert judge(imm, T0 + 1, CFG, {"max-age": "0"}).action is Lookup.FRESH


def test_stale_if_error_window() -> None:
    e = entry("max-age=10, stale-if-error=60")
    assert may_serve_stale_on_error(e, T0 + 50, CFG)
    assert not may_serve_stale_on_error(e, T0 + 71, CFG)
    assert not may_serve_stale_on_error(entry("max-age=10"), T0 + 11, CFG)
    assert not may_serve_stale_on_error(
        entry("max-age=10, stale-if-error=60, must-revalidate"), T0 + 11, CFG)


def test_304_refreshes_headers_and_age() -> None:
    e = entry("max-age=10", etag='"v1"')
    assert validators(e) == {"If-None-Match": '"v1"'}
    r = refreshed(e, (("cache-control", "max-age=30"), ("date", format_http_date(T0 + 100))),
                  T0 + 100, T0 + 100)
    assert judge(r, T0 + 120, CFG).action is Lookup.FRESH
    assert ("etag", '"v1"') in r.headers


def test_client_conditionals() -> None:
    e = entry("max-age=1", etag='W/"v1"', last_modified=format_http_date(T0 - 100))
    rep = representation(e)
    assert decide("GET", {"if-none-match": '"v0", "v1"'}, rep).status == 304
    assert decide("GET", {"if-none-match": '"v2"'}, rep).status == 200
    assert decide("GET", {"if-modified-since": format_http_date(T0)}, rep).status == 304
    assert decide("GET", {"if-modified-since": format_http_date(T0 - 200)}, rep).status == 200
    # a weak ETag never passes If-Match (RFC 9110 §13.1.1)
    assert decide("GET", {"if-match": 'W/"v1"'}, rep).status == 412
    assert decide("GET", {"if-unmodified-since": format_http_date(T0 - 200)}, rep).status == 412
    undated = representation(entry("max-age=1", etag='"v1"'))
    assert decide("GET", {"if-unmodified-since": format_http_date(T0 - 200)}, undated).status == 200


def test_ranges_on_a_stored_entry() -> None:
    e = entry("max-age=1", etag='"v1"', last_modified=format_http_date(T0 - 100))
    rep = representation(e)
    assert rep.last_modified_strong  # stored 100 s after Last-Modified (§8.8.2.2)
    assert decide("GET", {"range": "bytes=-0"}, rep).status == 416
    assert decide("GET", {"range": "bytes=1_0-2_0"}, rep).status == 200
    assert decide("GET", {"range": "bytes=0-9", "if-range": '"v0"'}, rep).status == 200
    assert decide("GET", {"range": "bytes=0-9", "if-range": '"v1"'}, rep).status == 206


def test_prefetch_next_segments_and_cmcd_nor() -> None:
    p = "/media/t/360p/seg-00003.m4s"
    assert next_segments(p, 2) == ["/media/t/360p/seg-00004.m4s", "/media/t/360p/seg-00005.m4s"]
    assert next_segments("/media/t/360p/init.mp4", 2) == []
    assert next_segments("/media/t/v1a2b3c4d/360p/seg-00009.m4s", 1) == [
        "/media/t/v1a2b3c4d/360p/seg-00010.m4s"]  # the encoder's versioned layout
    hint = prefetch_choice(p, "CMCD=nor%3D%22..%2F720p%2Fseg-00004.m4s%22%2Csid%3D%22x%22", {}, 1)
    assert hint == ["/media/t/720p/seg-00004.m4s", "/media/t/360p/seg-00004.m4s"]
    by_header = prefetch_choice(p, "", {"cmcd-request": 'nor="seg-00009.m4s"'}, 0)
    assert by_header == ["/media/t/360p/seg-00009.m4s"]
    assert prefetch_choice(p, "", {"cmcd-request": 'nor="../../../../etc/x"'}, 0) == []


def test_cmcd_nor_is_capped_and_stays_inside_the_title() -> None:
    p = "/media/t/360p/seg-00003.m4s"
    many = ",".join(f"seg-{n:05d}.m4s" for n in range(10, 1010))
    hints = prefetch_choice(p, "", {"cmcd-request": f'nor="{many}"'}, 2)
    assert hints == [f"/media/t/360p/seg-{n:05d}.m4s" for n in (10, 11, 12, 13, 4, 5)]
    other = prefetch_choice(p, "", {"cmcd-request": 'nor="../../u/360p/seg-00001.m4s,/media/u/a"'}, 0)
    assert other == []
    assert prefetch_choice("/healthz", "", {"cmcd-request": 'nor="/media/t/a"'}, 2) == []


def test_lru_index_evicts_least_recent_within_bytes() -> None:
    lru = LruIndex(100)
    assert lru.add("a", 40) == []
    assert lru.add("b", 40) == []
    lru.touch("a")
    assert lru.add("c", 40) == ["b"]
    assert lru.keys() == ["a", "c"]
    assert lru.add("huge", 101) == ["huge"]
    assert lru.total_bytes == 80


def test_circuit_breaker_opens_probes_and_closes() -> None:
    b = CircuitBreaker(failure_threshold=3, open_s=5)
    for _ in range(3):
        assert b.allow(T0)
        b.record_failure(T0)
    assert b.state is BreakerState.OPEN
    assert not b.allow(T0 + 1)
    assert b.allow(T0 + 6)  # half-open probe
    assert not b.allow(T0 + 6)  # only one probe at a time
    b.record_failure(T0 + 6)
    assert b.state is BreakerState.OPEN and not b.allow(T0 + 7)
    assert b.allow(T0 + 12)
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.allow(T0 + 12)


def test_backoff_and_sizes() -> None:
    assert backoff_s(1, 0.1, 1.0, 0.0) == pytest.approx(0.05)
    assert backoff_s(3, 0.1, 1.0, 1.0) == pytest.approx(0.4)
    assert backoff_s(10, 0.1, 1.0, 1.0) == pytest.approx(1.0)
    assert parse_size("10GiB") == 10 * 2**30
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size("100MB") == 100_000_000
    assert parse_size("4096") == 4096
    with pytest.raises(ValueError):
        parse_size("lots")
