"""The real player: the session core (:mod:`player_sim.session`) driven over real HTTP by
the event loop's clock.

One session: fetch the manifest (HLS or DASH), the init segments and the segment sizes,
then perform the core's actions over one connection (the same core, with the same model
options, that the trace simulator drives in virtual time): request a video segment at the
level it chose, or the audio segments that cover it; wait when it says so; tell it the
first byte, the bytes received when it asks, and the end; stop a transfer it abandons.
Stalls, startup delay, switches and abandonment are the core's, on the real clock.

``--trace`` shapes every body to the trace (token bucket, :mod:`player_sim.shaping`) and
adds the trace's request latency; ``--speed X`` runs the trace, the shaping and playback X
times faster. The session clock is virtual time: ``(loop.time() - start) * speed``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote, urljoin, urlsplit

from player_sim import steering
from player_sim.beacon import BeaconSender, beacon_fields, last_via, title_of_url
from player_sim.clients import (
    HttpClient,
    Reply,
    TransportFailure,
    host_port,
    make_client,
    ssl_context,
)
from player_sim.errors import PlayerError
from player_sim.link import Link
from player_sim.model import Model
from player_sim.model import default as default_model
from player_sim.playback import PlaybackStarted, StallEnded, StallStarted
from player_sim.presentation import (
    Presentation,
    Track,
    manifest_kind,
    parse_dash,
    parse_hls_master,
    parse_hls_media,
)
from player_sim.qoe import SessionResult
from player_sim.session import (
    Abandon,
    Action,
    CoreConfig,
    Decided,
    Finished,
    ManifestLoaded,
    OfferProgress,
    Request,
    SegmentDone,
    SessionCore,
    TimerFired,
    Wait,
)
from player_sim.shaping import Shaper
from player_sim.steering import Steering
from player_sim.traces import Trace
from player_sim.transfer import Clock, InFlight, Transfer
from player_sim.video import Video, make_video, parse_title

RETRY_FIRST_S = 0.25
RETRY_MAX_S = 4.0
"""A failed request is retried after 0.25, 0.5, 1, 2, 4, 4, ... wall seconds."""

# Bounds against broken or hostile servers (issue 10); a breach ends the session with one
# sentence instead of growing memory, time or request counts without end. The segment count
# per rendition is bounded in presentation.py (MAX_SEGMENTS_PER_TRACK).
MAX_MANIFEST_BYTES = 16 * 2**20
"""Largest manifest, playlist, title.json or init segment body: reading stops beyond it."""
MAX_SEGMENT_BYTES = 512 * 2**20
SEGMENT_BYTES_FACTOR = 64
"""A media segment body may be at most 64 x its declared bitrate x duration (declared bitrates
are peaks, so 64 x is far beyond any honest segment), and never beyond 512 MiB."""
REQUEST_DEADLINE_S = 30.0
REQUEST_DEADLINE_SEGMENTS = 10.0
"""Overall time one request may take (wall seconds): max(30 s, 10 x the segment's duration);
the socket read timeout alone never ends a body that trickles forever."""
MAX_SIZE_PROBES = 1000
"""HEADs spent on segment sizes when title.json is missing (levels x segments). A larger title
sends none: every size is estimated as declared bitrate x duration, uniformly, so that
levels stay comparable (a sample would mix measured and estimated sizes)."""
MAX_REDIRECTS = 5
"""Redirect hops followed per request (the player follows them itself, checking each hop's host)."""
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})  # RFC 9110 §15.4


@dataclass(frozen=True)
class PlayConfig:
    """One real session."""

    url: str
    """HLS master playlist or DASH MPD."""
    protocol: str = "h1"
    """h1, h2 or h3."""
    abr: str = "bola"
    """ABR algorithm name (see `abr abr-list`)."""
    trace: Trace | None = None
    """Bandwidth trace to shape to (None: no shaping, loopback speed)."""
    speed: float = 1.0
    """Time compression: trace, shaping and playback run this many times faster."""
    model: Model = field(default_factory=default_model)
    """Player rules shared with `abr sim --model default` (buffer cap, startup, abandonment)."""
    cmcd: bool = True
    """Send CMCD (CTA-5004) data as a query argument."""
    cafile: str | None = None
    """CA certificate (e.g. the edge's self-signed one) for https URLs."""
    insecure: bool = False
    """Do not verify the server's certificate."""
    session_id: str = ""
    """CMCD session id (default: random)."""
    fixed_level: int | None = None
    """Always fetch this level (-1: the top one) instead of asking the algorithm (load tests)."""
    quic_datagram_bytes: int = 1350
    """Largest QUIC datagram (HTTP/3); loopback carries far larger ones than the 1350 default."""
    max_retries: int = 7
    """Retries of a request that failed in transport or with a 5xx before the session gives up."""
    allow_hosts: tuple[str, ...] = ()
    """Other hosts the player may fetch from, ``HOST`` (on the scheme's default port) or ``HOST:PORT``;
    the manifest's own origin, and every origin its request was redirected to, always are."""
    request_deadline_s: float = REQUEST_DEADLINE_S
    """Least overall time one request may take (wall seconds); a segment gets 10 x its duration if longer."""
    beacon_url: str | None = None
    """Where QoE beacons go (an edge's ``/beacon``); None sends none (:mod:`player_sim.beacon`)."""
    beacon_interval_s: float = 10.0
    """Wall seconds between beacons (one more is sent at the end)."""


@dataclass
class SessionLog:
    """Everything that happened in a session (JSON-able)."""

    config: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    result: SessionResult | None = None
    error: str | None = None
    retries: int = 0
    allowed_bytes: float = 0.0
    received_bytes: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "config": self.config,
            "summary": session_summary(r) if r else None,
            "error": self.error,
            "retries": self.retries,
            "shaping": {"allowed_bytes": round(self.allowed_bytes), "received_bytes": round(self.received_bytes)},
            "edge_caused_stall": self.edge_caused_stall,
            "segments": [x._asdict() for x in r.records] if r else [],
            "events": self.events,
        }

    @property
    def edge_caused_stall(self) -> bool:
        """Stalled while receiving clearly less than the trace allowed (the server was the bottleneck)."""
        stalled = self.result is not None and (self.result.rebuffer_s > 0 or self.error is not None)
        return bool(stalled and self.allowed_bytes > 0 and self.received_bytes < 0.9 * self.allowed_bytes)


def session_summary(r: SessionResult) -> dict[str, Any]:
    """The per-session figures `abr sim` reports."""
    return {
        "algorithm": r.algorithm, "trace": r.trace, "qoe": round(r.score, 4),
        "qoe_per_chunk": round(r.qoe_per_segment, 4), "bitrate_kbps_mean": round(r.bitrate_kbps_mean, 1),
        "rebuffer_s": round(r.rebuffer_s, 3), "startup_s": round(r.startup_s, 3),
        "switches": r.switches, "abandoned": r.abandoned, "segments": len(r.records),
    }


class Fetched(NamedTuple):
    """One request's outcome (see :meth:`Session.fetch`)."""

    reply: Reply
    body: bytes | int
    """The body (manifests) or its byte count (media)."""
    start_s: float
    first_byte_s: float
    url: str
    """The final URL, after redirects: the base for the relative URIs in the body."""


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL (RFC 6454 §4), with the scheme's default port."""
    return f"{urlsplit(url).scheme.lower()}://{host_port(url)}"


def parse_allow_hosts(entries: tuple[str, ...]) -> tuple[tuple[str, int | None], ...]:
    """``--allow-host`` values as (host, port or None)."""
    out = []
    for entry in entries:
        try:
            u = urlsplit("//" + entry.strip())
            host, port = u.hostname, u.port
        except ValueError:
            host = None
        if not host or u.path or u.query or "@" in entry:
            raise PlayerError(f"--allow-host takes HOST or HOST:PORT, not {entry!r}")
        out.append((host.lower(), port))
    return tuple(out)


def cmcd_query(fields: dict[str, Any]) -> str:
    """CTA-5004 CMCD as one query argument: keys sorted, strings quoted, `true` as a bare key."""
    parts = []
    for key in sorted(fields):
        value = fields[key]
        if value is True:
            parts.append(key)
        elif isinstance(value, str) and key not in ("ot", "sf", "st"):
            parts.append(f'{key}="{value}"')
        else:
            parts.append(f"{key}={value}")
    return "CMCD=" + quote(",".join(parts), safe="")


class Session:
    """One playback session (create, then ``await run()``)."""

    def __init__(self, config: PlayConfig, client: HttpClient | None = None) -> None:
        if config.speed <= 0:
            raise PlayerError("--speed must be positive")
        self.config = config
        self.client = client or make_client(config.protocol, config.cafile, config.insecure,
                                            config.quic_datagram_bytes)
        self.clock = Clock(config.speed)
        trace = config.trace
        self.link = Link(trace, config.model.payload_portion) if trace else None
        self.shaper = Shaper(self.link) if self.link else None
        self.sid = config.session_id or uuid.uuid4().hex[:12]
        self.log = SessionLog({
            "url": config.url, "protocol": config.protocol, "abr": config.abr,
            "trace": trace.name if trace else None, "speed": config.speed, "cmcd": config.cmcd,
            "session_id": self.sid,
        })
        self.last_throughput_bps = 0.0
        self._kbps: list[float] = []
        self.allowed = parse_allow_hosts(config.allow_hosts)
        self.origins = {origin(config.url)}
        """Origins fetched from without asking: the manifest's, and those its request was redirected to."""
        self.steering: Steering | None = None
        """Content steering, when the manifest has it (:mod:`player_sim.steering`)."""
        self.steering_task: asyncio.Future[None] | None = None
        self.core: SessionCore | None = None
        self.served_by = host_port(config.url)
        """The edge that served the media: the last ``Via`` pseudonym seen, else the URL's host."""

    # -- clock ------------------------------------------------------------------------
    def now(self) -> float:
        """Session clock (virtual seconds)."""
        return self.clock.now()

    def event(self, event_type: str, **data: Any) -> None:
        self.log.events.append({"t_s": round(self.now(), 4), "type": event_type, **data})

    def playback_events(self, events: list[Any]) -> None:
        for ev in events:
            if isinstance(ev, StallStarted):
                self.log.events.append({"t_s": round(ev.at_s, 4), "type": "stall_started"})
            elif isinstance(ev, StallEnded):
                self.log.events.append({"t_s": round(ev.at_s, 4), "type": "stall_ended",
                                        "duration_s": round(ev.duration_s, 4)})
            elif isinstance(ev, PlaybackStarted):
                self.log.events.append({"t_s": round(ev.at_s, 4), "type": "playback_started"})

    # -- HTTP -------------------------------------------------------------------------
    def check_host(self, url: str) -> None:
        """Refuse a URL outside the manifest's origins and the ``--allow-host`` hosts."""
        u = urlsplit(url)
        if origin(url) in self.origins:
            return
        host, port = (u.hostname or "").lower(), host_port(url).rsplit(":", 1)[1]
        default = "443" if u.scheme == "https" else "80"
        if any(h == host and str(p or default) == port for h, p in self.allowed):
            return
        hp = host_port(url)
        raise PlayerError(f"refusing {url}: {hp} is not the manifest's origin; pass --allow-host {hp} "
                          "to let the player fetch from it")

    async def fetch(self, url: str, kind: str, *, shaped: bool = True, cmcd: dict[str, Any] | None = None,
                    watch: InFlight | None = None, method: str = "GET", limit_bytes: int = MAX_MANIFEST_BYTES,
                    duration_s: float = 0.0, **info: Any) -> Fetched:
        """GET with retries, following up to MAX_REDIRECTS redirects to allowed hosts (any host
        for the master manifest, whose hops then become allowed origins).

        Shaping applies to the body; the trace's request latency is waited before sending.
        ``watch`` sees every attempt's transfer and may stop it (then the reply's byte count
        is what arrived). A body beyond ``limit_bytes``, or a request beyond its
        deadline (see REQUEST_DEADLINE_S; ``duration_s`` is the segment's), ends the session.
        """
        deadline_s = max(self.config.request_deadline_s, REQUEST_DEADLINE_SEGMENTS * duration_s)
        attempt = 0
        while True:
            start = sent = self.now()
            try:
                if shaped and self.link is not None:
                    latency = (self.link.latency_s(start) if self.config.model.use_trace_latency
                               else self.config.model.rtt_s)
                    await self.clock.sleep_until(start + latency)
                sent = self.now()  # the request leaves after the trace's latency
                full_url = sent_url = self.steering.url(url) if self.steering else url
                if cmcd and self.config.cmcd:
                    full_url += ("&" if "?" in url else "?") + cmcd_query(cmcd)
                target = full_url
                for _hop in range(MAX_REDIRECTS + 1):
                    if kind == "manifest":
                        self.origins.add(origin(target))  # where the manifest's origin sends us
                    self.check_host(target)
                    transfer = Transfer(self.clock, self.shaper if shaped else None, start,
                                         kind in ("manifest", "playlist", "title", "steering"), limit_bytes, watch)
                    try:
                        async with asyncio.timeout(deadline_s):
                            reply = await steering.guard(self, target, self.client.request(
                                target, {"accept": "*/*"}, transfer.on_chunk, method=method))
                    except TimeoutError:
                        raise PlayerError(f"{url} took longer than {deadline_s:g} s, the player's deadline for "
                                          "one request (the body trickles or never ends)") from None
                    if transfer.overflow:
                        raise PlayerError(f"{url} sent more than {_mib(limit_bytes)}, the player's bound for a "
                                          f"{kind} body")
                    self.served_by = last_via(reply.headers.get("via")) or self.served_by
                    location = reply.headers.get("location")
                    if reply.status not in REDIRECT_STATUSES or not location:
                        break
                    nxt = urljoin(target, location)
                    self.event("redirect", kind=kind, url=target, status=reply.status, location=nxt)
                    target = nxt
                else:
                    raise PlayerError(f"{url} was redirected more than {MAX_REDIRECTS} times")
                if not transfer.stopped:
                    await self.clock.sleep_until(transfer.ready_s)
                end = self.now()
                received, first = transfer.received, transfer.first
                if reply.status >= 500:
                    raise TransportFailure(f"{url}: HTTP {reply.status} from the server")
                self.event("request", kind=kind, url=sent_url, status=reply.status, protocol=reply.protocol,
                           bytes=received, start_s=round(start, 4), ttfb_s=round((first[0] if first else end) - start, 4),
                           end_s=round(end, 4), x_cache=reply.headers.get("x-cache"), attempt=attempt, **info)
                if reply.status >= 400:
                    raise PlayerError(f"{url} answered HTTP {reply.status}")
                if shaped and self.shaper is not None and kind in ("video", "audio") and first:
                    self.log.allowed_bytes += self.shaper.allowed_bytes(sent, end)
                    self.log.received_bytes += received
                body: bytes | int = b"".join(transfer.parts) if transfer.keep else received
                return Fetched(reply, body, start, first[0] if first else end, target)
            except TransportFailure as exc:
                if steering.on_failure(self, url, exc):
                    continue   # another pathway, at once (hls.js: penalty box, next pathway)
                if attempt >= self.config.max_retries:
                    raise PlayerError(f"giving up on {url} after {attempt + 1} attempts ({exc})") from None
                self.log.retries += 1
                self.event("retry", kind=kind, url=url, attempt=attempt, reason=str(exc)[:200], **info)
                await asyncio.sleep(min(RETRY_MAX_S, RETRY_FIRST_S * 2**attempt))
                if watch is not None:
                    watch.retried(self.now())
                attempt += 1

    async def text(self, url: str, kind: str) -> tuple[str, str]:
        """(body as text, final URL after redirects)."""
        got = await self.fetch(url, kind, shaped=False)
        assert isinstance(got.body, bytes)
        try:
            return got.body.decode("utf-8"), got.url
        except UnicodeDecodeError:
            raise PlayerError(f"{url} is not text (a manifest was expected)") from None

    # -- manifests --------------------------------------------------------------------
    async def load(self) -> tuple[Presentation, Video]:
        # Relative URIs resolve against the final URL of each manifest (RFC 3986 §5.1.3).
        text, url = await self.text(self.config.url, "manifest")
        kind = manifest_kind(url, text)
        if kind == "dash":
            self.steering, base = steering.adopt_dash(text, url)
            if self.steering:
                await steering.start(self)
            pres = parse_dash(text, base)
        else:
            self.steering, text = steering.adopt_hls(text, url)
            if self.steering:
                await steering.start(self)
            variants, audio_uri = parse_hls_master(text, url)
            variants.sort(key=lambda v: v.average_bps or v.bandwidth_bps)
            tracks = []
            for v in variants:
                init, segs, durs = parse_hls_media(*await self.text(v.uri, "playlist"))
                tracks.append(Track(v.uri, "video", v.average_bps or v.bandwidth_bps, init, tuple(segs),
                                    tuple(durs), v.width, v.height))
            audio = None
            if audio_uri:
                init, segs, durs = parse_hls_media(*await self.text(audio_uri, "playlist"))
                audio = Track(audio_uri, "audio", 0, init, tuple(segs), tuple(durs))
            pres = Presentation(url, "hls", tuple(tracks), audio)
        firsts: dict[str, str] = {}  # one URL per origin: refused before playing, not midway
        for track in (*pres.video, *([pres.audio] if pres.audio else [])):
            for seg_url in (track.init_url, *track.segment_urls):
                if seg_url:
                    firsts.setdefault(origin(seg_url), seg_url)
        for seg_url in firsts.values():
            self.check_host(seg_url)
        # Init segments are a few hundred bytes: fetch them all with the manifests, so that a
        # switch costs no extra round trip and the session clock starts at the first media request.
        for track in (*pres.video, *([pres.audio] if pres.audio else [])):
            if track.init_url:
                await self.fetch(track.init_url, "init", shaped=False, level=track.id)
        counts = {len(t.segment_urls) for t in pres.video}
        if len(counts) != 1:
            raise PlayerError(f"{url}: video renditions have different segment counts {sorted(counts)}")
        return pres, await self.sizes(pres)

    async def sizes(self, pres: Presentation) -> Video:
        """Segment sizes for the algorithms: the title's title.json when served, else HEAD (up to
        MAX_SIZE_PROBES requests), else estimated from the declared bitrates."""
        try:
            text, _ = await self.text(urljoin(pres.url, "title.json"), "title")
            video = parse_title(urlsplit(pres.url).path, json.loads(text))
            if video.levels == len(pres.video) and video.segments == len(pres.video[0].segment_urls):
                return video
        except (PlayerError, ValueError):
            pass
        bitrates = [t.bitrate_bps for t in pres.video]
        if sum(len(t.segment_urls) for t in pres.video) > MAX_SIZE_PROBES:
            self.event("sizes_estimated", reason=f"no title.json and more than {MAX_SIZE_PROBES} segments")
            return make_video(urlsplit(pres.url).path, bitrates, pres.segment_s, estimated_sizes(pres))
        sizes = []
        for t in pres.video:
            row = []
            for seg_url in t.segment_urls:
                reply = (await self.fetch(seg_url, "head", shaped=False, method="HEAD")).reply
                row.append(int(reply.headers.get("content-length", "0")))
            sizes.append(row)
        return make_video(urlsplit(pres.url).path, bitrates, pres.segment_s, sizes)

    # -- the session ------------------------------------------------------------------
    async def run(self) -> SessionLog:
        self.clock.start()
        beacons = self._beacons()
        try:
            await self._run()
        except PlayerError as exc:
            self.log.error = str(exc)
            self.event("error", reason=str(exc))
        finally:
            try:
                if beacons is not None:
                    await beacons.close()
            finally:
                if self.steering_task is not None:
                    self.steering_task.cancel()
                await self.client.close()
        return self.log

    def _beacons(self) -> BeaconSender | None:
        cfg = self.config
        if not cfg.beacon_url:
            return None
        seq = iter(range(10**9))
        title = title_of_url(cfg.url)
        # A given session id ("p000") repeats across runs; the beacon's must not.
        sid = f"{self.sid}.{uuid.uuid4().hex[:6]}" if cfg.session_id else self.sid

        def make(final: bool) -> dict[str, Any]:
            return beacon_fields(self.core, session_id=sid, title=title, abr=cfg.abr,
                                 protocol=cfg.protocol, edge=self.served_by, seq=next(seq),
                                 retries=self.log.retries, error=self.log.error, final=final)

        sender = BeaconSender(cfg.beacon_url, cfg.beacon_interval_s, make, self.event,
                              ssl_context(cfg.cafile, cfg.insecure))
        sender.start()
        return sender

    async def _run(self) -> None:
        cfg = self.config
        pres, video = await self.load()
        self.event("manifest_loaded", kind=pres.kind, levels=video.levels, segments=video.segments)
        core = self.core = SessionCore(CoreConfig(cfg.abr, cfg.model, cfg.trace.name if cfg.trace else "-",
                                                  cfg.fixed_level))
        self._kbps = [b / 1000 for b in video.bitrates_bps]
        self.clock.start()  # the session clock starts with the first segment request
        audio = pres.audio.durations_s if pres.audio else ()
        actions = deque(core.handle(ManifestLoaded(self.now(), video, pres.video[0].durations_s, audio)))
        while actions:
            action = actions.popleft()
            if isinstance(action, Wait):
                await self.clock.sleep_until(action.until_s)
                actions.extend(core.handle(TimerFired(max(self.now(), action.until_s))))
            elif isinstance(action, Request):
                actions.extend(await self._request(core, pres, action))
            elif isinstance(action, Decided):
                self.event("decision", segment=action.segment, level=action.level, buffer_s=round(action.buffer_s, 3),
                           delay_s=round(action.delay_s, 3))
            elif isinstance(action, Abandon):
                self.event("abandoned", segment=action.segment, level=action.level, to_level=action.to_level,
                           bytes=int(action.received_bytes))
            elif isinstance(action, Finished):
                self.log.result = action.result
                self.event("session_ended", buffer_s=round(core.play.buffer_s, 3))
            elif not isinstance(action, OfferProgress):
                self.playback_events([action])

    async def _request(self, core: SessionCore, pres: Presentation, req: Request) -> list[Action]:
        """Perform one of the core's requests; the core's actions after it."""
        k, sf = req.segment, "h" if pres.kind == "hls" else "d"
        info: dict[str, Any] = {"segment": k}
        if req.kind == "audio":
            assert pres.audio is not None
            track, dur = pres.audio, pres.audio.durations_s[k]
            cmcd: dict[str, Any] = {"bl": _round100(req.buffer_s * 1000), "d": round(dur * 1000), "ot": "a",
                                    "sid": self.sid, "st": "v", "sf": sf}
        else:
            track, dur = pres.video[req.level], pres.video[req.level].durations_s[k]
            urls, info["level"] = track.segment_urls, req.level
            cmcd = {"bl": _round100(req.buffer_s * 1000), "br": round(self._kbps[req.level]), "d": round(dur * 1000),
                    "mtp": _round100(self.last_throughput_bps / 1000), "ot": "v", "sf": sf, "sid": self.sid,
                    "st": "v", "tb": round(self._kbps[-1])}
            if k + 1 < len(urls):
                cmcd["nor"] = _relative(urls[k], urls[k + 1])
            if req.startup:
                cmcd["su"] = True
        watch = InFlight(self.clock, core)
        start = self.now()
        try:
            got = await self.fetch(track.segment_urls[k], req.kind, cmcd=cmcd, watch=watch,
                                   limit_bytes=segment_limit(track.bitrate_bps, dur), duration_s=dur, **info)
        finally:
            watch.close()
        if watch.abandoned:
            return watch.after
        assert isinstance(got.body, int)
        if req.kind == "video":
            download_s = self.now() - start
            self.last_throughput_bps = got.body * 8 / download_s if download_s > 0 else 0.0
        return watch.after + core.handle(SegmentDone(max(self.now(), watch.ready_s), got.body))


def segment_limit(bitrate_bps: int, duration_s: float) -> int:
    """Largest body accepted for a media segment (SEGMENT_BYTES_FACTOR, MAX_SEGMENT_BYTES)."""
    if bitrate_bps <= 0:
        return MAX_SEGMENT_BYTES
    return min(MAX_SEGMENT_BYTES, int(SEGMENT_BYTES_FACTOR * bitrate_bps * duration_s / 8))


def estimated_sizes(pres: Presentation) -> list[list[int]]:
    """Segment sizes as declared bitrate x duration (a title too large to HEAD segment by segment)."""
    return [[round(t.bitrate_bps * d / 8) for d in t.durations_s] for t in pres.video]


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


def _round100(x: float) -> int:
    return int(round(x / 100.0) * 100)


def _relative(base: str, target: str) -> str:
    """`nor` relative to the current request's URL (CTA-5004 §3.3)."""
    b, t = urlsplit(base), urlsplit(target)
    if (b.scheme, b.netloc) != (t.scheme, t.netloc):
        return target
    base_dir = b.path.rsplit("/", 1)[0] + "/"
    return t.path[len(base_dir):] if t.path.startswith(base_dir) else t.path


async def play(config: PlayConfig) -> SessionLog:
    """Run one session to its end (errors are in the log, never raised)."""
    return await Session(config).run()

