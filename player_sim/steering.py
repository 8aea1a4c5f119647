"""Content steering in the headless player, as hls.js and dash.js do it: the manifest names
pathways (HLS ``PATHWAY-ID`` variants, DASH ``BaseURL@serviceLocation``) and a steering
server; the player asks it for a pathway priority every ``TTL`` seconds (adding
``_HLS_pathway``/``_HLS_throughput`` or ``_DASH_pathway``/``_DASH_throughput``), takes
``PATHWAY-CLONES``, moves when the first pathway changes, and on a failed request puts the
pathway in a penalty box (300 s, as hls.js) and moves to the next one at once.

The presentation is parsed once, on the initial pathway; a request is sent to the current
pathway by swapping the initial pathway's URL prefix for the current one's (HLS pathways
differ in their host: ``scheme://host:port/``; DASH pathways in their BaseURL). Pure apart
from :meth:`Steering.reload`, which fetches through the session's own ``fetch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from player_sim.clients import TransportFailure
from player_sim.errors import PlayerError

PENALTY_S = 300.0
"""How long a failed pathway is skipped (hls.js ``PATHWAY_PENALTY_DURATION_MS``)."""
DEFAULT_TTL_S = 300.0
MIN_TTL_S = 1.0
MAX_PATHWAYS = 64
_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def _attrs(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2).strip('"') for m in _ATTR.finditer(text)}


def _origin_prefix(url: str) -> str:
    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc}/"


@dataclass
class Steering:
    """One session's steering state."""

    kind: str
    """``hls`` or ``dash``."""
    uri: str
    """The steering server URI (SERVER-URI, then each RELOAD-URI)."""
    pathways: dict[str, str]
    """Pathway id -> URL prefix."""
    initial: str
    """The pathway the presentation's URLs were built on."""
    current: str = ""
    priority: list[str] = field(default_factory=list)
    penalized: dict[str, float] = field(default_factory=dict)
    """Pathway id -> when (session clock) it failed."""
    ttl_s: float = DEFAULT_TTL_S
    enabled: bool = True
    moves: list[tuple[str, str, str]] = field(default_factory=list)
    """(from, to, why) for each move."""

    def __post_init__(self) -> None:
        self.current = self.current or self.initial

    # -- URLs --------------------------------------------------------------------------
    def url(self, url: str) -> str:
        """`url` (built on the initial pathway) on the current pathway."""
        base = self.pathways[self.initial]
        if self.current == self.initial or not url.startswith(base):
            return url
        return self.pathways[self.current] + url[len(base):]

    def request_uri(self, throughput_bps: float) -> str:
        """The steering request: the URI with the player's pathway and throughput."""
        p = "_HLS_" if self.kind == "hls" else "_DASH_"
        pathway = self.current if self.kind == "hls" else f'"{self.current}"'
        u = urlsplit(self.uri)
        q = [(k, v) for k, v in parse_qsl(u.query, keep_blank_values=True)
             if k not in (p + "pathway", p + "throughput")]
        q += [(p + "pathway", pathway), (p + "throughput", str(int(throughput_bps)))]
        return urlunsplit((u.scheme, u.netloc, u.path, urlencode(q), ""))

    # -- decisions ---------------------------------------------------------------------
    def _usable(self, pathway: str, now_s: float) -> bool:
        at = self.penalized.get(pathway)
        return pathway in self.pathways and (at is None or now_s - at > PENALTY_S)

    def _choose(self, now_s: float, why: str) -> bool:
        order = self.priority or list(self.pathways)
        for p in [*order, *(p for p in self.pathways if p not in order)]:
            if self._usable(p, now_s):
                if p != self.current:
                    self.moves.append((self.current, p, why))
                    self.current = p
                    return True
                return False
        return False

    def failed(self, url: str, now_s: float) -> bool:
        """A request to `url` failed: penalise its pathway and move; True when moved."""
        if len(self.pathways) < 2 or not url.startswith(self.pathways[self.current]):
            return False
        self.penalized.setdefault(self.current, now_s)
        return self._choose(now_s, "error")

    def apply(self, doc: Any, base_uri: str, now_s: float) -> bool:
        """Take a steering manifest; True when the current pathway changed."""
        if not isinstance(doc, dict) or doc.get("VERSION") != 1:
            raise PlayerError("the steering manifest is not JSON with VERSION 1")
        ttl = doc.get("TTL", DEFAULT_TTL_S)
        if isinstance(ttl, int | float) and not isinstance(ttl, bool):
            self.ttl_s = max(MIN_TTL_S, float(ttl))
        reload_uri = doc.get("RELOAD-URI")
        if isinstance(reload_uri, str) and reload_uri:
            self.uri = urljoin(base_uri, reload_uri)
        for clone in doc.get("PATHWAY-CLONES") or []:
            self._clone(clone)
        prio = doc.get("PATHWAY-PRIORITY")
        if prio is None and self.kind == "dash":
            prio = doc.get("SERVICE-LOCATION-PRIORITY")
        if isinstance(prio, list) and all(isinstance(p, str) for p in prio):
            self.priority = prio[:MAX_PATHWAYS]
            return self._choose(now_s, "steering")
        return False

    def _clone(self, clone: Any) -> None:
        if not isinstance(clone, dict) or len(self.pathways) >= MAX_PATHWAYS:
            return
        base, new, rep = clone.get("BASE-ID"), clone.get("ID"), clone.get("URI-REPLACEMENT")
        if not (isinstance(new, str) and base in self.pathways and isinstance(rep, dict)) \
                or new in self.pathways:
            return
        host = rep.get("HOST")
        u = urlsplit(self.pathways[base])  # type: ignore[index]
        if isinstance(host, str) and host:
            # hls.js: URL.hostname = HOST (the port stays); dash.js: protocol//HOST + path
            netloc = host + (f":{u.port}" if u.port else "") if self.kind == "hls" else host
            self.pathways[new] = urlunsplit((u.scheme, netloc, u.path, "", ""))
        else:
            self.pathways[new] = self.pathways[base]  # type: ignore[index]

    async def reload(self, fetch_json: Callable[[str], Awaitable[tuple[Any, str]]],
                     throughput_bps: float, now: Callable[[], float]) -> bool:
        """Ask the steering server once; True when the pathway changed. A 410 ends steering."""
        doc, final = await fetch_json(self.request_uri(throughput_bps))
        return self.apply(doc, final, now())


def adopt_hls(text: str, url: str) -> tuple[Steering | None, str]:
    """(steering, the master with only the initial pathway's variants) for a master playlist
    at `url`; (None, text) when it has no EXT-X-CONTENT-STEERING."""
    lines = [ln.strip() for ln in text.splitlines()]
    tag = next((ln for ln in lines if ln.startswith("#EXT-X-CONTENT-STEERING:")), None)
    if tag is None:
        return None, text
    a = _attrs(tag.split(":", 1)[1])
    if not a.get("SERVER-URI"):
        raise PlayerError(f"{url}: EXT-X-CONTENT-STEERING has no SERVER-URI")
    variants: dict[str, list[int]] = {}
    for i, ln in enumerate(lines):
        if ln.startswith("#EXT-X-STREAM-INF:"):
            variants.setdefault(_attrs(ln.split(":", 1)[1]).get("PATHWAY-ID", "."), []).append(i)
    if not variants or len(variants) > MAX_PATHWAYS:
        raise PlayerError(f"{url}: a steered master needs 1-{MAX_PATHWAYS} pathways")
    initial = a.get("PATHWAY-ID") if a.get("PATHWAY-ID") in variants else next(iter(variants))
    assert initial is not None
    pathways = {}
    for p, idx in variants.items():
        uri = next((ln for ln in lines[idx[0] + 1:] if ln and not ln.startswith("#")), "")
        pathways[p] = _origin_prefix(urljoin(url, uri))
    keep = set(variants[initial])
    groups = {_attrs(lines[i].split(":", 1)[1]).get(k) for i in keep for k in ("AUDIO", "SUBTITLES")}
    out, skip_uri = [], False
    for i, ln in enumerate(lines):
        if ln.startswith("#EXT-X-STREAM-INF:"):
            skip_uri = i not in keep
            if skip_uri:
                continue
        elif (ln.startswith("#EXT-X-MEDIA:") and _attrs(ln.split(":", 1)[1]).get("GROUP-ID") not in groups) \
                or (ln.startswith("#EXT-X-I-FRAME-STREAM-INF:")
                    and _attrs(ln.split(":", 1)[1]).get("PATHWAY-ID", ".") != initial):
            continue
        elif ln and not ln.startswith("#") and skip_uri:
            skip_uri = False
            continue
        out.append(ln)
    return Steering("hls", urljoin(url, a["SERVER-URI"]), pathways, initial), "\n".join(out) + "\n"


def adopt_dash(text: str, url: str) -> tuple[Steering | None, str]:
    """(steering, the base URL to resolve the MPD's segments against) for an MPD at `url`;
    (None, url) when it has no ContentSteering."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise PlayerError(f"DASH MPD {url} is malformed ({exc})") from None
    ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    cs = root.find(f"{ns}ContentSteering")
    if cs is None or not (cs.text or "").strip():
        return None, url
    pathways: dict[str, str] = {}
    for b in root.findall(f"{ns}BaseURL")[:MAX_PATHWAYS]:
        loc, value = b.get("serviceLocation"), (b.text or "").strip()
        if loc and value and loc not in pathways:
            pathways[loc] = urljoin(url, value)
    if not pathways:
        return None, url
    wanted = (cs.get("defaultServiceLocation") or "").split()
    initial = next((w for w in wanted if w in pathways), next(iter(pathways)))
    st = Steering("dash", urljoin(url, (cs.text or "").strip()), pathways, initial)
    return st, pathways[initial]


def decode_json(body: bytes, url: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise PlayerError(f"the steering manifest {url} is not JSON") from None


async def start(session: Any) -> None:
    """A session's steering after its manifest: the pathways' hosts become the manifest's
    own, one steering request before playing (DASH ``queryBeforeStart``; hls.js also asks at
    once), then one every TTL in the background (``session.steering_task``)."""
    from player_sim.player import origin

    st: Steering = session.steering
    for prefix in st.pathways.values():
        session.origins.add(origin(prefix))
    session.origins.add(origin(st.uri))
    session.event("steering", pathways=list(st.pathways), current=st.current, uri=st.uri)
    session.steering_moved = asyncio.Event()
    await _once(session)
    session.steering_task = asyncio.ensure_future(_follow(session))


async def _once(session: Any) -> None:
    st: Steering = session.steering

    async def fetch_json(url: str) -> tuple[Any, str]:
        got = await session.fetch(url, "steering", shaped=False)
        return decode_json(got.body, url), got.url

    before = st.current
    try:
        moved = await st.reload(fetch_json, session.last_throughput_bps, session.now)
    except PlayerError as exc:     # the steering server away: keep the current priority
        session.event("steering_failed", reason=str(exc)[:200])
        return
    session.event("steering_loaded", priority=st.priority, ttl_s=st.ttl_s, current=st.current)
    if moved:
        session.event("pathway_moved", **{"from": before}, to=st.current, reason="steering")
        session.steering_moved.set()           # requests in flight to `before` give up
        session.steering_moved = asyncio.Event()


async def _follow(session: Any) -> None:
    st: Steering = session.steering
    while st.enabled:
        await asyncio.sleep(st.ttl_s / session.config.speed)
        await _once(session)


class SteeredAway(TransportFailure):
    """A request in flight to a pathway the steering server moved the session off."""


async def guard(session: Any, target: str, request: Awaitable[Any]) -> Any:
    """`request` (to `target`), given up with `SteeredAway` if steering moves the session off
    target's pathway meanwhile: a hung edge (connections open, nothing answered) is left
    when the steering server drops it, not after the socket read timeout."""
    st: Steering | None = session.steering
    if st is None:
        return await request
    task = asyncio.ensure_future(request)
    while True:
        moved = asyncio.ensure_future(session.steering_moved.wait())
        try:
            await asyncio.wait({task, moved}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            moved.cancel()
        if task.done():
            return task.result()
        if not target.startswith(st.pathways[st.current]):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise SteeredAway(f"steered off {target} while waiting for it")


def on_failure(session: Any, url: str, exc: Exception) -> bool:
    """A request to `url` failed in transport: move to the next pathway if there is one
    (already done when steering moved it)."""
    st: Steering | None = session.steering
    if st is None:
        return False
    if isinstance(exc, SteeredAway):
        return True
    before = st.current
    if not st.failed(st.url(url), session.now()):
        return False
    session.event("pathway_moved", **{"from": before}, to=st.current, reason=str(exc)[:200])
    return True
