"""HLS playlists and the MPD's extra elements, written from the measured renditions (pure).

HLS (RFC 8216): one variant per video rendition (every codec's ladder in one master, so
each player picks what it decodes), one `AUDIO` group holding every audio rendition
(language x channel layout, RFC 8216 §4.3.4.1.1: renditions of one group differ only by
language, name or channels and share the codec), one `SUBTITLES` group of WebVTT
renditions. BANDWIDTH counts the largest audio rendition of the group (§4.3.4.2: the
peak of any combination a client may choose).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

MPD_NS = "urn:mpeg:dash:schema:mpd:2011"
AUDIO_GROUP = "audio"
SUBTITLE_GROUP = "subs"
ROLE_SCHEME = "urn:mpeg:dash:role:2011"
CICP = {"primaries": "urn:mpeg:mpegB:cicp:ColourPrimaries",
        "transfer": "urn:mpeg:mpegB:cicp:TransferCharacteristics",
        "matrix": "urn:mpeg:mpegB:cicp:MatrixCoefficients"}


def media_playlist(segments: list[Any], rid: str, key_line: str | None = None) -> str:
    """An HLS VOD media playlist over fMP4 segments (RFC 8216; version 7 for EXT-X-MAP);
    `key_line` (an EXT-X-KEY) when the segments are encrypted."""
    target = max(1, max(round(s.duration_s) for s in segments))
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-MEDIA-SEQUENCE:1",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        *([key_line] if key_line else []),
        '#EXT-X-MAP:URI="init.mp4"',
    ]
    for s in segments:
        lines.append(f"#EXTINF:{s.duration_s:.6f},")
        lines.append(s.uri.rsplit("/", 1)[1])
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    """A quoted-string may hold no double quote, CR or LF (RFC 8216 §4.2)."""
    return '"' + text.replace('"', "'").replace("\r", " ").replace("\n", " ") + '"'


def _yes(flag: bool) -> str:
    return "YES" if flag else "NO"


def master_playlist(video: list[dict[str, Any]], audio: list[dict[str, Any]] | dict[str, Any] | None,
                    subtitles: list[dict[str, Any]] | None = None, session_key: str | None = None) -> str:
    """The HLS master playlist (`session_key`: an EXT-X-SESSION-KEY line, RFC 8216 §4.3.4.5)."""
    if isinstance(audio, dict):
        audio = [audio]
    audio = audio or []
    subtitles = subtitles or []
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if session_key:
        lines.append(session_key)
    for a in audio:
        attrs = [f"TYPE=AUDIO,GROUP-ID={_quoted(AUDIO_GROUP)},NAME={_quoted(a.get('name', 'audio'))}",
                 f"LANGUAGE={_quoted(a.get('language', 'und'))}",
                 f"DEFAULT={_yes(a.get('default', True))},AUTOSELECT=YES",
                 f'CHANNELS="{a["channels"]}"']
        if a.get("description"):
            attrs.append('CHARACTERISTICS="public.accessibility.describes-video"')
        lines.append("#EXT-X-MEDIA:" + ",".join(attrs) + f",URI={_quoted(a['playlist'])}")
    for s in subtitles:
        attrs = [f"TYPE=SUBTITLES,GROUP-ID={_quoted(SUBTITLE_GROUP)},NAME={_quoted(s['name'])}",
                 f"LANGUAGE={_quoted(s['language'])}",
                 f"DEFAULT={_yes(s['default'])},AUTOSELECT=YES,FORCED={_yes(s['forced'])}"]
        if s.get("captions"):
            attrs.append('CHARACTERISTICS="public.accessibility.transcribes-spoken-dialog,'
                         'public.accessibility.describes-music-and-sound"')
        lines.append("#EXT-X-MEDIA:" + ",".join(attrs) + f",URI={_quoted(s['playlist'])}")
    audio_peak = max((a["peak_bitrate_bps"] for a in audio), default=0)
    audio_avg = max((a["average_bitrate_bps"] for a in audio), default=0)
    audio_codecs = list(dict.fromkeys(a["codecs"] for a in audio))
    for v in sorted(video, key=lambda r: r["peak_bitrate_bps"], reverse=True):
        codecs = ",".join([v["codecs"], *audio_codecs])
        attrs = [
            f"BANDWIDTH={v['peak_bitrate_bps'] + audio_peak}",
            f"AVERAGE-BANDWIDTH={v['average_bitrate_bps'] + audio_avg}",
            f"RESOLUTION={v['width']}x{v['height']}",
            f'CODECS="{codecs}"',
            f"FRAME-RATE={v['frame_rate']:.3f}",
        ]
        if v.get("video_range", "SDR") != "SDR":
            attrs.append(f"VIDEO-RANGE={v['video_range']}")
        if audio:
            attrs.append(f'AUDIO="{AUDIO_GROUP}"')
        if subtitles:
            attrs.append(f'SUBTITLES="{SUBTITLE_GROUP}"')
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(v["playlist"])
    return "\n".join(lines) + "\n"


def _q(tag: str) -> str:
    return f"{{{MPD_NS}}}{tag}"


CENC_NS = "urn:mpeg:cenc:2013"
DASHIF_NS = "https://dashif.org/CPS"
ET.register_namespace("cenc", CENC_NS)
ET.register_namespace("dashif", DASHIF_NS)


def protection(kid_uuid: str, pssh_b64: str, license_url: str | None) -> list[ET.Element]:
    """ContentProtection of a CENC AdaptationSet: the scheme with its default KID, and the
    DASH-IF ClearKey system (`e2719d58-...`, DASH-IF IOP v4.3 §7.6.2.6) with the licence URL.

    Its init data is the default KID as EME `keyids` JSON; the W3C common-PSSH system
    (`1077efec-...`) with a `cenc:pssh` is not listed, because dash.js 5 then sends that PSSH
    as `keyids` init data, which Chromium refuses (TypeError "Non ASCII"). `pssh_b64` is kept
    for HLS and for players that want it in the init segment."""
    mp4 = ET.Element(_q("ContentProtection"), schemeIdUri="urn:mpeg:dash:mp4protection:2011",
                     value="cenc")
    mp4.set(f"{{{CENC_NS}}}default_KID", kid_uuid)
    ck = ET.Element(_q("ContentProtection"), schemeIdUri="urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e",
                    value="ClearKey1.0")
    if license_url:
        ET.SubElement(ck, f"{{{DASHIF_NS}}}Laurl", licenseType="EME-1.0").text = license_url
    return [mp4, ck]


def describe_set(aset: ET.Element, *, lang: str | None = None, label: str | None = None,
                 role: str | None = None, color: tuple[int, int, int] | None = None,
                 protect: list[ET.Element] | None = None) -> None:
    """Add lang, Label, Role and CICP colour properties to an AdaptationSet, each where the
    schema puts it (ISO/IEC 23009-1 §5.3.3.2: properties, Label ... Role, then Representation)."""
    if lang is not None:
        aset.set("lang", lang)
    first: list[ET.Element] = list(protect or [])
    if color is not None and color != (2, 2, 2):
        for (_, scheme), value in zip(CICP.items(), color, strict=True):
            first.append(ET.Element(_q("SupplementalProperty"), schemeIdUri=scheme, value=str(value)))
    if label is not None:
        el = ET.Element(_q("Label"))
        el.text = label
        first.append(el)
    if role is not None:
        first.append(ET.Element(_q("Role"), schemeIdUri=ROLE_SCHEME, value=role))
    for i, el in enumerate(first):
        aset.insert(i, el)


def text_set(period: ET.Element, set_id: int, sub: dict[str, Any], durations_ms: list[int],
             init: str, media: str) -> None:
    """A WebVTT-in-CMAF AdaptationSet (`wvtt`, ISO/IEC 14496-30) for one subtitle rendition."""
    aset = ET.SubElement(period, _q("AdaptationSet"), id=str(set_id), contentType="text",
                         mimeType="application/mp4", segmentAlignment="true", startWithSAP="1")
    describe_set(aset, lang=sub["language"], label=sub["name"],
                 role="forced-subtitle" if sub["forced"] else "caption" if sub.get("captions")
                 else "subtitle")
    rep = ET.SubElement(aset, _q("Representation"), id=sub["id"], codecs="wvtt",
                        bandwidth=str(max(sub["peak_bitrate_bps"], 1)))
    tpl = ET.SubElement(rep, _q("SegmentTemplate"), timescale="1000", initialization=init,
                        media=media, startNumber="1")
    timeline = ET.SubElement(tpl, _q("SegmentTimeline"))
    t = 0
    for d in durations_ms:
        ET.SubElement(timeline, _q("S"), t=str(t), d=str(d))
        t += d
