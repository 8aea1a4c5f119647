"""The player against hostile or broken servers (real sockets on 127.0.0.x): bounds on
manifests, bodies, HEADs and request time; failures that no retry can fix end at once with
a hint."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from abrstack.stack import free_port
from player_sim import player
from player_sim.errors import PlayerError
from player_sim.player import PlayConfig, Session, SessionLog
from player_sim.presentation import MAX_SEGMENTS_PER_TRACK, parse_dash
from tests.play.conftest import serving


def run_session(**kw: Any) -> SessionLog:
    return asyncio.run(Session(PlayConfig(**kw)).run())


def plain_app(body: str = "#EXTM3U\n") -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=body)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    return app


@pytest.mark.parametrize("protocol", ["h1", "h2"])
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2"])  # untrusted; trusted but for another name
def test_an_untrusted_certificate_fails_at_once_with_the_cacert_hint(self_signed: tuple[Path, Path],
                                                                     protocol: str, host: str) -> None:
    cafile = str(self_signed[0]) if host == "127.0.0.2" else None
    with serving(plain_app(), host, tls=self_signed) as url:
        t = time.monotonic()
        log = run_session(url=f"{url}/master.m3u8", protocol=protocol, cafile=cafile)
        took = time.monotonic() - t
    assert took < 3 and log.retries == 0
    assert log.error is not None and "not trusted" in log.error
    assert "pass --cacert FILE (e.g. the edge's cert.pem) or --insecure" in log.error
    assert host in log.error and ("mismatch" in log.error.lower()) == (host == "127.0.0.2")


def test_an_untrusted_certificate_over_h3_fails_at_once_with_the_cacert_hint(tmp_path: Path) -> None:
    from tests.edge.conftest import running_edge

    with running_edge(["http://127.0.0.1:9"], tmp_path / "cache") as edge:
        t = time.monotonic()
        log = run_session(url=f"{edge.https}/media/t/master.m3u8", protocol="h3")
        took = time.monotonic() - t
    assert took < 5 and log.retries == 0, (took, log.error)
    assert log.error is not None and "not trusted" in log.error
    assert "pass --cacert FILE (e.g. the edge's cert.pem) or --insecure" in log.error


@pytest.mark.parametrize("protocol, scheme", [("h1", "http"), ("h2", "https"), ("h3", "https")])
def test_a_closed_port_fails_at_once_naming_host_and_port(protocol: str, scheme: str) -> None:
    port = free_port()
    t = time.monotonic()
    log = run_session(url=f"{scheme}://127.0.0.1:{port}/master.m3u8", protocol=protocol)
    assert time.monotonic() - t < 3 and log.retries == 0
    assert log.error is not None and f"nothing listens on 127.0.0.1:{port}" in log.error


SEG_S = 0.1
SEG_BPS = 100_000
"""The test title: one 100-kbit/s rendition of 0.1-s segments."""


def hls_app(segments: int, segment: Any = None, master: Any = None, counts: dict[str, int] | None = None
            ) -> web.Application:
    """master.m3u8 -> v.m3u8 (``segments`` segments s<i>.m4s of 1000 bytes, or ``segment``'s body);
    no title.json. ``counts`` counts requests by method."""
    counts = counts if counts is not None else {}
    media = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n" + "".join(
        f"#EXTINF:{SEG_S},\ns{i}.m4s\n" for i in range(segments)) + "#EXT-X-ENDLIST\n"

    async def handler(request: web.Request) -> web.StreamResponse:
        counts[request.method] = counts.get(request.method, 0) + 1
        name = request.match_info["tail"]
        if name == "master.m3u8":
            if master is not None:
                return await master(request)
            return web.Response(text=f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH={SEG_BPS}\nv.m3u8\n")
        if name == "v.m3u8":
            return web.Response(text=media)
        if name.endswith(".m4s"):
            if request.method == "HEAD":
                return web.Response(headers={"content-length": "1000"})
            if segment is not None:
                return await segment(request)
            return web.Response(body=b"x" * 1000)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    return app


async def endless(request: web.Request, chunk: bytes = b"x" * 65536, pause_s: float = 0.0) -> web.StreamResponse:
    """A body that never ends (until the client goes away)."""
    resp = web.StreamResponse()
    await resp.prepare(request)
    while True:
        await resp.write(chunk)
        await asyncio.sleep(pause_s)


@pytest.mark.parametrize("r", [MAX_SEGMENTS_PER_TRACK, 300_000_000])
def test_a_timeline_beyond_the_segment_bound_is_refused_before_expanding(r: int) -> None:
    mpd = f"""<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">
      <Period><AdaptationSet contentType="video"><SegmentTemplate timescale="1000" media="$Number$.m4s">
      <SegmentTimeline><S t="0" d="2000"/><S d="2000" r="{r}"/></SegmentTimeline></SegmentTemplate>
      <Representation id="v" bandwidth="500000"/></AdaptationSet></Period></MPD>"""
    t = time.monotonic()
    with pytest.raises(PlayerError, match=f"{r + 2} segments, more than the player's bound of 100000"):
        parse_dash(mpd, "http://x/m.mpd")
    assert time.monotonic() - t < 1


def test_an_endless_playlist_body_stops_at_the_manifest_bound() -> None:
    with serving(hls_app(1, master=lambda rq: endless(rq, b"#EXTM3U\n" * 8192))) as url:
        t = time.monotonic()
        log = run_session(url=f"{url}/master.m3u8")
    assert time.monotonic() - t < 10
    assert log.error == f"{url}/master.m3u8 sent more than 16 MiB, the player's bound for a manifest body"


def test_an_endless_segment_body_ends_the_session() -> None:
    with serving(hls_app(3, segment=endless)) as url:
        log = run_session(url=f"{url}/master.m3u8")
    bound = 64 * SEG_BPS * SEG_S / 8  # 64 x declared bitrate x duration
    assert log.error == f"{url}/s0.m4s sent more than {bound:g} bytes, the player's bound for a video body"


def test_a_trickling_segment_body_meets_the_request_deadline() -> None:
    with serving(hls_app(3, segment=lambda rq: endless(rq, b"x", 0.05))) as url:
        t = time.monotonic()
        log = run_session(url=f"{url}/master.m3u8", request_deadline_s=1.0)
    assert time.monotonic() - t < 5
    assert log.error == f"{url}/s0.m4s took longer than 1 s, the player's deadline for one request " \
        "(the body trickles or never ends)"


@pytest.mark.parametrize("segments", [3, player.MAX_SIZE_PROBES + 1])
def test_segment_sizes_are_estimated_beyond_the_head_bound(segments: int) -> None:
    counts: dict[str, int] = {}
    with serving(hls_app(segments, counts=counts)) as url:
        log = run_session(url=f"{url}/master.m3u8", speed=50)
    assert log.error is None, log.error
    estimated = segments > player.MAX_SIZE_PROBES
    assert counts.get("HEAD", 0) == (0 if estimated else segments)
    assert any(e["type"] == "sizes_estimated" for e in log.events) == estimated
    assert log.result is not None and len(log.result.records) == segments


def site(routes: dict[str, Any], seen: list[str] | None = None) -> web.Application:
    """A server of ``routes``: path -> playlist text, or ("redirect", location). ``seen`` collects
    the paths of GETs and HEADs."""
    seen = seen if seen is not None else []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.path if request.method == "GET" else f"{request.method} {request.path}")
        route = routes.get(request.path)
        if isinstance(route, tuple):
            raise web.HTTPFound(route[1])
        if isinstance(route, str):
            return web.Response(text=route)
        if request.path.endswith(".m4s"):
            return web.Response(body=b"x" * 1000)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    return app


def master(variant: str) -> str:
    return f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH={SEG_BPS}\n{variant}\n"


def media(*segments: str) -> str:
    return "#EXTM3U\n#EXT-X-TARGETDURATION:1\n" + "".join(
        f"#EXTINF:{SEG_S},\n{s}\n" for s in segments) + "#EXT-X-ENDLIST\n"


def test_uris_resolve_against_the_final_url_and_the_manifest_s_redirect_target_is_allowed() -> None:
    seen_a: list[str] = []
    seen_b: list[str] = []
    with serving(site({"/real/master.m3u8": master("v/index.m3u8"), "/real/v/index.m3u8": media("s0.m4s", "s1.m4s")},
                      seen_b)) as b, \
            serving(site({"/master.m3u8": ("redirect", "/moved.m3u8"),
                          "/moved.m3u8": ("redirect", f"{b}/real/master.m3u8")}, seen_a)) as a:
        log = run_session(url=f"{a}/master.m3u8", speed=20)
    assert log.error is None, log.error
    assert seen_a == ["/master.m3u8", "/moved.m3u8"]
    assert [p for p in seen_b if p.endswith((".m3u8", ".m4s"))] == [
        "/real/master.m3u8", "/real/v/index.m3u8", "HEAD /real/v/s0.m4s", "HEAD /real/v/s1.m4s",
        "/real/v/s0.m4s", "/real/v/s1.m4s"]
    hops = [(e["url"], e["location"]) for e in log.events if e["type"] == "redirect"]
    assert hops == [(f"{a}/master.m3u8", f"{a}/moved.m3u8"), (f"{a}/moved.m3u8", f"{b}/real/master.m3u8")]


@pytest.mark.parametrize("via", ["absolute variant", "absolute segment", "segment redirect"])
def test_another_host_is_refused_unless_allowed(via: str) -> None:
    seen_other: list[str] = []
    with serving(site({"/v.m3u8": media("s0.m4s"), "/s0.m4s": media("s0.m4s")}, seen_other)) as other:
        routes: dict[str, Any] = {
            "absolute variant": {"/master.m3u8": master(f"{other}/v.m3u8")},
            "absolute segment": {"/master.m3u8": master("v.m3u8"), "/v.m3u8": media(f"{other}/s0.m4s")},
            "segment redirect": {"/master.m3u8": master("v.m3u8"), "/v.m3u8": media("s0.m4s"),
                                 "/s0.m4s": ("redirect", f"{other}/s0.m4s")},
        }[via]
        with serving(site(routes)) as url:
            refused = run_session(url=f"{url}/master.m3u8", speed=20)
            assert seen_other == []
            allowed = run_session(url=f"{url}/master.m3u8", speed=20, allow_hosts=(other.split("//")[1],))
    hp = other.split("//")[1]
    assert refused.error is not None and refused.error.startswith("refusing http://")
    assert refused.error.endswith(f"{hp} is not the manifest's origin; pass --allow-host {hp} "
                                  "to let the player fetch from it")
    assert allowed.error is None, allowed.error
    assert "/s0.m4s" in seen_other


def test_redirects_are_followed_at_most_five_times() -> None:
    with serving(site({"/master.m3u8": ("redirect", "/master.m3u8")})) as url:
        log = run_session(url=f"{url}/master.m3u8")
    assert log.error == f"{url}/master.m3u8 was redirected more than 5 times"


def test_allow_host_values_are_checked(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "abrstack", "play", "http://127.0.0.1:1/m.m3u8",
                           "--allow-host", "http://x/"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == "abr play: error: --allow-host takes HOST or HOST:PORT, not 'http://x/'"
