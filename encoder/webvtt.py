"""WebVTT subtitles, from the one file ffmpeg converts each track to, into segments for
both manifests (pure functions; the caller writes the bytes).

- HLS: segmented WebVTT (RFC 8216 §3.5), each segment holding the cues that overlap it,
  with `X-TIMESTAMP-MAP` tying cue times to the media timeline (MPEGTS 0 = media time 0:
  our CMAF segments start at presentation time 0).
- DASH: WebVTT in CMAF fMP4 (ISO/IEC 14496-30 §7, a `wvtt` track; CMAF profile `cwvt`):
  one init segment and one media segment per video segment, each a run of samples covering
  it without gaps, a `vttc` box per active cue or `vtte` where none is. dash.js plays this
  (a text/vtt side file would need no SegmentTemplate, which DASH clients that expect one
  per Representation refuse).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from encoder.errors import EncoderError

TIMESCALE = 1000
"""Milliseconds: WebVTT's own resolution."""
_TIME = re.compile(r"(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})")


@dataclass(frozen=True)
class Cue:
    start_ms: int
    end_ms: int
    payload: str
    """The cue text (may hold WebVTT tags such as <i>)."""
    ident: str = ""
    settings: str = ""


def _ms(text: str) -> int:
    m = _TIME.fullmatch(text.strip())
    if m is None:
        raise EncoderError(f"bad WebVTT timestamp {text!r}")
    h, mi, s, ms = (int(g or 0) for g in m.groups())
    return ((h * 60 + mi) * 60 + s) * 1000 + ms


def parse(text: str) -> list[Cue]:
    """The cues of a WebVTT file (header, NOTE, STYLE and REGION blocks skipped)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    if not text.startswith("WEBVTT"):
        raise EncoderError("not a WebVTT file (no WEBVTT header)")
    cues = []
    for block in re.split(r"\n{2,}", text)[1:]:
        lines = block.strip("\n").split("\n")
        if not lines or "-->" not in "\n".join(lines[:2]):
            continue
        ident = ""
        if "-->" not in lines[0]:
            ident, lines = lines[0], lines[1:]
        start, _, rest = lines[0].partition("-->")
        end, _, settings = rest.strip().partition(" ")
        cues.append(Cue(_ms(start), _ms(end), "\n".join(lines[1:]), ident, settings.strip()))
    return cues


def _ts(ms: int) -> str:
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def boundaries(durations_s: list[float]) -> list[tuple[int, int]]:
    """[start, end) in ms of each segment, from the video's segment durations."""
    out, t = [], 0.0
    for d in durations_s:
        out.append((round(t * 1000), round((t + d) * 1000)))
        t += d
    return out


def _overlapping(cues: list[Cue], start: int, end: int) -> list[Cue]:
    return [c for c in cues if c.start_ms < end and c.end_ms > start]


def hls_segment(cues: list[Cue], start: int, end: int) -> str:
    """One WebVTT segment of [start, end) ms (a cue spanning two segments is in both)."""
    lines = ["WEBVTT", "X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000", ""]
    for c in _overlapping(cues, start, end):
        if c.ident:
            lines.append(c.ident)
        lines.append(f"{_ts(c.start_ms)} --> {_ts(c.end_ms)}" + (f" {c.settings}" if c.settings else ""))
        lines.extend([c.payload, ""])
    return "\n".join(lines) + "\n"


def hls_playlist(durations_s: list[float]) -> str:
    """The media playlist of the segmented WebVTT (seg-NNNNN.vtt)."""
    target = max(1, max(round(d) for d in durations_s))
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}",
             "#EXT-X-MEDIA-SEQUENCE:1", "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for n, d in enumerate(durations_s, start=1):
        lines += [f"#EXTINF:{d:.6f},", f"seg-{n:05d}.vtt"]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


# -- ISO BMFF (ISO/IEC 14496-12) ---------------------------------------------------------

def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def _lang(tag3: str) -> bytes:
    """mdhd language: ISO 639-2/T packed as three 5-bit letters."""
    code = (tag3 if len(tag3) == 3 and tag3.isalpha() else "und").lower()
    v = 0
    for ch in code:
        v = (v << 5) | (ord(ch) - 0x60)
    return struct.pack(">H", v)


def init_segment(language3: str = "und") -> bytes:
    """A CMAF header of one WebVTT track (track_ID 1, timescale 1000)."""
    ftyp = _box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6", b"cmfc", b"cwvt")
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _full(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, TIMESCALE, 0),
                 struct.pack(">IH", 0x10000, 0x100), b"\0" * 10, matrix, b"\0" * 24,
                 struct.pack(">I", 2))
    tkhd = _full(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, 1, 0, 0), b"\0" * 8,
                 struct.pack(">hhhH", 0, 0, 0, 0), matrix, struct.pack(">II", 0, 0))
    mdhd = _full(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, TIMESCALE, 0), _lang(language3), b"\0\0")
    hdlr = _full(b"hdlr", 0, 0, struct.pack(">I", 0), b"text", b"\0" * 12, b"abrstack WebVTT\0")
    dinf = _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1), _full(b"url ", 0, 1)))
    wvtt = _box(b"wvtt", b"\0" * 6, struct.pack(">H", 1), _box(b"vttC", b"WEBVTT"))
    stbl = _box(b"stbl", _full(b"stsd", 0, 0, struct.pack(">I", 1), wvtt),
                _full(b"stts", 0, 0, struct.pack(">I", 0)), _full(b"stsc", 0, 0, struct.pack(">I", 0)),
                _full(b"stsz", 0, 0, struct.pack(">II", 0, 0)), _full(b"stco", 0, 0, struct.pack(">I", 0)))
    minf = _box(b"minf", _full(b"nmhd", 0, 0), dinf, stbl)
    trak = _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))
    mvex = _box(b"mvex", _full(b"trex", 0, 0, struct.pack(">IIIII", 1, 1, 0, 0, 0)))
    return ftyp + _box(b"moov", mvhd, trak, mvex)


def _sample(cues: list[Cue]) -> bytes:
    if not cues:
        return _box(b"vtte")
    out = b""
    for c in cues:
        parts = []
        if c.ident:
            parts.append(_box(b"iden", c.ident.encode()))
        if c.settings:
            parts.append(_box(b"sttg", c.settings.encode()))
        parts.append(_box(b"payl", c.payload.encode()))
        out += _box(b"vttc", *parts)
    return out


def media_segment(cues: list[Cue], start: int, end: int, sequence: int) -> bytes:
    """One CMAF fragment covering [start, end) ms: a sample per interval between cue edges."""
    edges = sorted({start, end, *(t for c in cues for t in (c.start_ms, c.end_ms) if start < t < end)})
    samples = []
    for a, b in zip(edges, edges[1:], strict=False):
        active = [c for c in cues if c.start_ms <= a and c.end_ms >= b]
        samples.append((b - a, _sample(active)))
    styp = _box(b"styp", b"msdh", struct.pack(">I", 0), b"msdh", b"msix", b"cmfs")
    tfhd = _full(b"tfhd", 0, 0x020000, struct.pack(">I", 1))
    tfdt = _full(b"tfdt", 1, 0, struct.pack(">Q", start))

    def moof(offset: int) -> bytes:
        entries = b"".join(struct.pack(">II", d, len(s)) for d, s in samples)
        trun = _full(b"trun", 0, 0x000301, struct.pack(">Ii", len(samples), offset), entries)
        return _box(b"moof", _full(b"mfhd", 0, 0, struct.pack(">I", sequence)),
                    _box(b"traf", tfhd, tfdt, trun))

    size = len(moof(0))
    mdat = _box(b"mdat", *(s for _, s in samples))
    return styp + moof(size + 8) + mdat
