"""What a real player streams: renditions with their init and segment URLs, parsed from
an HLS master playlist (+ media playlists) or a DASH MPD. Pure: text in, data out; the
real player fetches the text.

HLS is read with `m3u8` (RFC 8216), DASH with `mpegdash` (ISO/IEC 23009-1): a
SegmentTemplate with a SegmentTimeline or a fixed `duration`, `$RepresentationID$`,
`$Number$` (with a printf width) and `$Bandwidth$`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from player_sim.errors import PlayerError

# Bounds on what a manifest may ask of the player (issue 10): a broken or hostile MPD or
# playlist ends in one sentence, not in a MemoryError.
MAX_SEGMENTS_PER_TRACK = 100_000
"""Media segments one rendition may have: 55 hours of 2-s segments. A SegmentTimeline's
``r`` counts are summed and checked before anything is expanded."""


@dataclass(frozen=True)
class Track:
    """One rendition as a player sees it."""

    id: str
    """Rendition id (DASH Representation@id, or the HLS playlist URI)."""
    kind: str
    """``video`` or ``audio``."""
    bitrate_bps: int
    """Declared bitrate: HLS AVERAGE-BANDWIDTH (else BANDWIDTH), DASH @bandwidth."""
    init_url: str | None
    """Absolute URL of the init segment (fMP4), if any."""
    segment_urls: tuple[str, ...]
    """Absolute URLs of the media segments, in order."""
    durations_s: tuple[float, ...]
    """Duration of each media segment."""
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class Presentation:
    """A title's renditions: video ascending by bitrate, and the audio track if separate."""

    url: str
    """The manifest's URL."""
    kind: str
    """``hls`` or ``dash``."""
    video: tuple[Track, ...]
    audio: Track | None

    @property
    def segment_s(self) -> float:
        """Nominal segment duration: the first video segment's."""
        return self.video[0].durations_s[0]


@dataclass(frozen=True)
class HlsVariant:
    uri: str
    bandwidth_bps: int
    average_bps: int | None
    width: int
    height: int
    audio_group: str | None


def manifest_kind(url: str, text: str) -> str:
    head = text.lstrip()[:200]
    if head.startswith("#EXTM3U"):
        return "hls"
    if "<MPD" in text[:2000]:
        return "dash"
    raise PlayerError(f"{url} is neither an HLS playlist nor a DASH MPD")


def _load_m3u8(text: str, url: str) -> Any:
    import m3u8

    try:
        return m3u8.loads(text, uri=url)
    except KeyError as exc:  # m3u8 raises KeyError for a missing required attribute
        raise PlayerError(f"HLS playlist {url} is malformed (a tag lacks {str(exc.args[0]).upper()})") from None
    except Exception as exc:  # and a variety of other errors on bad input
        raise PlayerError(f"HLS playlist {url} is malformed ({exc})") from None


def parse_hls_master(text: str, url: str) -> tuple[list[HlsVariant], str | None]:
    """Variants (absolute URIs) and the audio rendition's playlist URI of a master playlist."""

    pl = _load_m3u8(text, url)
    if not pl.is_variant:
        raise PlayerError(f"{url} is a media playlist; give the master playlist")
    variants = []
    for p in pl.playlists:
        info = p.stream_info
        if info.bandwidth is None:
            raise PlayerError(f"HLS master {url}: a variant has no BANDWIDTH")
        w, h = info.resolution or (0, 0)
        variants.append(HlsVariant(urljoin(url, p.uri), int(info.bandwidth),
                                   int(info.average_bandwidth) if info.average_bandwidth else None,
                                   w, h, info.audio))
    if not variants:
        raise PlayerError(f"HLS master {url} has no variants")
    audio = None
    for m in pl.media:
        if m.type == "AUDIO" and m.uri:
            audio = urljoin(url, m.uri)
            if m.default == "YES":
                break
    return variants, audio


def parse_hls_media(text: str, url: str) -> tuple[str | None, list[str], list[float]]:
    """(init URL, segment URLs, durations) of a VOD media playlist."""

    pl = _load_m3u8(text, url)
    if pl.is_variant or not pl.segments:
        raise PlayerError(f"HLS media playlist {url} has no segments")
    if not pl.is_endlist:
        raise PlayerError(f"HLS playlist {url} is live (no EXT-X-ENDLIST); only VOD is played")
    if len(pl.segments) > MAX_SEGMENTS_PER_TRACK:
        raise PlayerError(f"HLS playlist {url} has {len(pl.segments)} segments, more than the player's "
                          f"bound of {MAX_SEGMENTS_PER_TRACK} per rendition")
    init = None
    if pl.segment_map and pl.segment_map[0].uri:
        init = urljoin(url, pl.segment_map[0].uri)
    segs = [urljoin(url, s.uri) for s in pl.segments]
    durs = [float(s.duration) for s in pl.segments]
    return init, segs, durs


_TEMPLATE = re.compile(r"\$(RepresentationID|Number|Bandwidth|Time)(%0(\d+)d)?\$")


def _fill(template: str, rid: str, bandwidth: int, number: int, time: int) -> str:
    def sub(m: re.Match[str]) -> str:
        values: dict[str, str | int] = {"RepresentationID": rid, "Number": number,
                                        "Bandwidth": bandwidth, "Time": time}
        value = values[m.group(1)]
        if m.group(3) and isinstance(value, int):
            return f"{value:0{int(m.group(3))}d}"
        return str(value)

    return _TEMPLATE.sub(sub, template).replace("$$", "$")


def parse_dash(text: str, url: str) -> Presentation:
    """A static MPD with SegmentTemplate addressing."""
    from mpegdash.parser import MPEGDASHParser

    try:
        mpd = MPEGDASHParser.parse(text)
    except Exception as exc:
        raise PlayerError(f"DASH MPD {url} is malformed ({type(exc).__name__})") from None
    if not mpd.periods:
        raise PlayerError(f"DASH MPD {url} has no Period")
    if (mpd.type or "static") != "static":
        raise PlayerError(f"DASH MPD {url} is dynamic (live); only static MPDs are played")
    total_s = _iso_duration(mpd.media_presentation_duration) if mpd.media_presentation_duration else None
    video: list[Track] = []
    audio: Track | None = None
    for aset in mpd.periods[0].adaptation_sets or []:
        for rep in aset.representations or []:
            kind = _kind(aset, rep)
            template = (rep.segment_templates or aset.segment_templates or [None])[0]
            if template is None:
                raise PlayerError(f"DASH MPD {url}: representation {rep.id} has no SegmentTemplate")
            tracks = _expand(template, rep, url, total_s)
            track = Track(str(rep.id), kind, int(rep.bandwidth or 0), *tracks,
                          width=int(rep.width or 0), height=int(rep.height or 0))
            if kind == "video":
                video.append(track)
            elif kind == "audio" and audio is None:
                audio = track
    if not video:
        raise PlayerError(f"DASH MPD {url} has no video representation")
    video.sort(key=lambda t: t.bitrate_bps)
    return Presentation(url, "dash", tuple(video), audio)


def _kind(aset: object, rep: object) -> str:
    for obj in (rep, aset):
        for attr in ("content_type", "mime_type"):
            value = getattr(obj, attr, None)
            if value:
                return str(value).split("/")[0]
    return "video"


def _expand(template: object, rep: object, url: str, total_s: float | None
            ) -> tuple[str | None, tuple[str, ...], tuple[float, ...]]:
    t = template
    rid, bw = str(getattr(rep, "id", "")), int(getattr(rep, "bandwidth", 0) or 0)
    timescale = int(getattr(t, "timescale", None) or 1)
    start_number = getattr(t, "start_number", None)
    start = int(start_number) if start_number is not None else 1
    media = getattr(t, "media", None)
    if not media:
        raise PlayerError(f"DASH MPD {url}: representation {rid} has no media template")
    init_t = getattr(t, "initialization", None)
    init = urljoin(url, _fill(init_t, rid, bw, 0, 0)) if init_t else None
    times: list[int] = []
    durs: list[float] = []
    timelines = getattr(t, "segment_timelines", None)
    if timelines:
        entries = timelines[0].Ss or []
        _check_count(sum(max(0, int(s.r or 0) + 1) for s in entries), url, rid)  # before expanding
        clock = 0
        for s in entries:
            clock = int(s.t) if s.t is not None else clock
            for _ in range(int(s.r or 0) + 1):
                times.append(clock)
                durs.append(int(s.d) / timescale)
                clock += int(s.d)
    elif getattr(t, "duration", None) and total_s:
        d = int(t.duration) / timescale  # type: ignore[attr-defined]
        if d <= 0:
            raise PlayerError(f"DASH MPD {url}: representation {rid} has a SegmentTemplate duration of 0")
        n = max(1, int(-(-total_s // d)))
        _check_count(n, url, rid)
        durs = [d] * (n - 1) + [total_s - d * (n - 1)]
        times = [round(i * d * timescale) for i in range(n)]
    else:
        raise PlayerError(f"DASH MPD {url}: representation {rid} has neither a SegmentTimeline nor a duration")
    urls = tuple(urljoin(url, _fill(media, rid, bw, start + i, times[i])) for i in range(len(durs)))
    return init, urls, tuple(durs)


def _check_count(n: int, url: str, rid: str) -> None:
    if n > MAX_SEGMENTS_PER_TRACK:
        raise PlayerError(f"DASH MPD {url}: representation {rid} has {n} segments, more than the player's "
                          f"bound of {MAX_SEGMENTS_PER_TRACK} per rendition")


def _iso_duration(text: str) -> float:
    m = re.fullmatch(r"P(?:(\d+(?:\.\d+)?)D)?T?(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?", text)
    if not m:
        raise PlayerError(f"bad ISO 8601 duration {text!r}")
    d, h, mi, s = (float(x) if x else 0.0 for x in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s
