"""Segment sizes of a title served over HTTP (an HLS master playlist or a DASH MPD).

If the server has the encoder's ``title.json`` next to the manifest, it is used; otherwise
the manifest is parsed (``m3u8`` for HLS, ``mpegdash`` for DASH) and every segment's size
is read from a HEAD request's Content-Length.
"""

from __future__ import annotations

import math
import re
from functools import partial
from urllib.parse import urljoin

from player_sim.errors import PlayerError
from player_sim.video import Video, make_video, parse_title


def _get(client: object, url: str) -> bytes:
    import httpx

    assert isinstance(client, httpx.Client)
    try:
        r = client.get(url)
    except httpx.HTTPError as exc:
        raise PlayerError(f"cannot fetch {url}: {exc}") from None
    if r.status_code != 200:
        raise PlayerError(f"fetching {url} gave HTTP {r.status_code}")
    return r.content


def _head_size(client: object, url: str) -> int:
    import httpx

    assert isinstance(client, httpx.Client)
    try:
        r = client.head(url)
    except httpx.HTTPError as exc:
        raise PlayerError(f"cannot reach segment {url}: {exc}") from None
    length = r.headers.get("content-length")
    if r.status_code != 200 or length is None:
        raise PlayerError(f"segment {url} gave HTTP {r.status_code} without a Content-Length")
    return int(length)


def fetch_video(url: str) -> Video:
    """The ladder and segment sizes of the title whose manifest is at ``url``."""
    import httpx

    name = url.rstrip("/").split("/")[-2] if url.count("/") > 3 else url
    with httpx.Client(timeout=10.0, follow_redirects=True) as client:
        try:
            r = client.get(urljoin(url, "title.json"))
            if r.status_code == 200:
                return parse_title(name, r.json())
        except (httpx.HTTPError, ValueError):
            pass
        body = _get(client, url)
        text = body.decode("utf-8", "replace")
        if url.split("?")[0].endswith(".mpd") or "<MPD" in text[:2000]:
            return _from_dash(client, url, name, text)
        if text.lstrip().startswith("#EXTM3U"):
            return _from_hls(client, url, name, text)
    raise PlayerError(f"{url} is neither an HLS playlist nor a DASH MPD")


def _from_hls(client: object, url: str, name: str, text: str) -> Video:
    import m3u8

    master = m3u8.loads(text, uri=url)
    if not master.is_variant:
        raise PlayerError(f"{url} is a media playlist; give the master playlist")
    rungs = []
    for p in master.playlists:
        bw = p.stream_info.average_bandwidth or p.stream_info.bandwidth
        media_url = urljoin(url, p.uri)
        media = m3u8.loads(_get(client, media_url).decode("utf-8", "replace"), uri=media_url)
        sizes = [_head_size(client, urljoin(media_url, s.uri)) for s in media.segments]
        seg_s = max((s.duration for s in media.segments), default=0.0)
        rungs.append((int(bw), sizes, seg_s))
    rungs.sort()
    if not rungs:
        raise PlayerError(f"{url} lists no variants")
    return make_video(name, [r[0] for r in rungs], rungs[0][2], [r[1] for r in rungs])


def _duration_s(iso: str) -> float:
    m = re.fullmatch(r"P(?:(\d+)D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?", iso or "")
    if not m:
        raise PlayerError(f"MPD duration {iso!r} is not an ISO 8601 duration")
    d, h, mi, s = (float(x) if x else 0.0 for x in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


def _number(n: int, m: re.Match[str]) -> str:
    """``$Number$`` / ``$Number%05d$`` substitution (ISO/IEC 23009-1, 5.3.9.4.4)."""
    return str(n).zfill(int(m.group(2) or 0))


def _from_dash(client: object, url: str, name: str, text: str) -> Video:
    from mpegdash.parser import MPEGDASHParser

    try:
        mpd = MPEGDASHParser.parse(text)
    except Exception:  # mpegdash raises bare exceptions on malformed XML
        raise PlayerError(f"{url} is not a valid DASH MPD") from None
    total_s = _duration_s(mpd.media_presentation_duration)
    rungs = []
    for period in mpd.periods:
        for aset in period.adaptation_sets:
            kind = (aset.content_type or aset.mime_type or "")
            for rep in aset.representations:
                mime = rep.mime_type or kind
                if "audio" in mime:
                    continue
                tmpl = (rep.segment_templates or aset.segment_templates or [None])[0]
                if tmpl is None or tmpl.media is None or not tmpl.duration:
                    raise PlayerError(f"{url}: only SegmentTemplate with a duration is supported without title.json")
                seg_s = tmpl.duration / (tmpl.timescale or 1)
                count = math.ceil(total_s / seg_s - 1e-6)
                start = tmpl.start_number if tmpl.start_number is not None else 1
                sizes = []
                for i in range(count):
                    path = tmpl.media.replace("$RepresentationID$", str(rep.id))
                    path = re.sub(r"\$Number(%0(\d+)d)?\$", partial(_number, start + i), path)
                    sizes.append(_head_size(client, urljoin(url, path)))
                rungs.append((int(rep.bandwidth), sizes, seg_s))
    rungs.sort()
    if not rungs:
        raise PlayerError(f"{url} has no video representations")
    return make_video(name, [r[0] for r in rungs], rungs[0][2], [r[1] for r in rungs])
