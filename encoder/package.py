"""Turning ffmpeg's dash output into a title: rendition folders, HLS + DASH manifests
written from the measured segments, and title.json.

Every encode is a new *version* of its title with segment URLs of its own: renditions
live in ``TITLE/<version>/<rid>/`` and the top-level manifests (``master.m3u8``,
``manifest.mpd``, ``title.json``, the URLs players know) reference only that version. A
segment URL therefore never changes content, so ``immutable`` holds across re-encodes
(``--force``): caches and browsers cannot serve a segment of the old version as part of
the new one, and the old version's files go with the folder it replaced.

ffmpeg's `dash` muxer writes one set of CMAF segments (`r<i>/init.mp4`,
`r<i>/seg-NNNNN.m4s`) and an MPD whose SegmentTimeline gives every segment's exact
duration. Here the folders get their rendition ids, the MPD is rewritten to match (with
`bandwidth` measured), and HLS playlists are written over the *same* segments, with
BANDWIDTH (peak) and AVERAGE-BANDWIDTH measured from the files (RFC 8216 §4.3.4.2).
"""

from __future__ import annotations

import os
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from encoder.errors import EncoderError
from encoder.plan import AUDIO_BITRATE_BPS, AUDIO_CHANNELS, AUDIO_SAMPLE_RATE, EncodePlan
from encoder.probe import SourceInfo

MPD_NS = "urn:mpeg:dash:schema:mpd:2011"
_NS = {"d": MPD_NS}
for _prefix, _uri in (
    ("", MPD_NS),
    ("xsi", "http://www.w3.org/2001/XMLSchema-instance"),
    ("xlink", "http://www.w3.org/1999/xlink"),
):
    ET.register_namespace(_prefix, _uri)

INIT_TEMPLATE = "{version}/$RepresentationID$/init.mp4"
MEDIA_TEMPLATE = "{version}/$RepresentationID$/seg-$Number%05d$.m4s"
AUDIO_GROUP = "audio"


@dataclass(frozen=True)
class Segment:
    """One media segment as measured on disk."""

    uri: str
    """Path relative to the title folder."""
    duration_s: float
    """Duration from the MPD's SegmentTimeline."""
    size_bytes: int
    """Size of the file."""


def _timeline(template: ET.Element) -> list[float]:
    """Durations in seconds of a SegmentTemplate's SegmentTimeline (ISO/IEC 23009-1 §5.3.9.6)."""
    timescale = int(template.get("timescale", "1"))
    out: list[float] = []
    timeline = template.find("d:SegmentTimeline", _NS)
    if timeline is None:
        raise EncoderError("ffmpeg wrote an MPD without a SegmentTimeline")
    for s in timeline.findall("d:S", _NS):
        d = int(s.get("d", "0"))
        out.extend([d / timescale] * (int(s.get("r", "0")) + 1))
    return out


def new_version() -> str:
    """A version id: ``v`` and 8 hex digits (random: two encodes never share one)."""
    return "v" + secrets.token_hex(4)


def package(workdir: Path, plan: EncodePlan, info: SourceInfo, title: str,
            version: str | None = None) -> dict[str, Any]:
    """Reorganise ffmpeg's output in `workdir` under a new version folder, write
    manifests and title.json; return it."""
    version = version or new_version()
    (workdir / version).mkdir()
    mpd_path = workdir / "manifest.mpd"
    tree = ET.parse(mpd_path)
    root = tree.getroot()
    renditions: list[dict[str, Any]] = []
    for rep in root.iter(f"{{{MPD_NS}}}Representation"):
        index = int(rep.get("id", "-1"))
        is_audio = index >= len(plan.renditions)
        rid = "audio" if is_audio else plan.renditions[index].id
        os.rename(workdir / f"r{index}", workdir / version / rid)
        base = f"{version}/{rid}"
        template = rep.find("d:SegmentTemplate", _NS)
        if template is None:
            raise EncoderError("ffmpeg wrote an MPD without a SegmentTemplate")
        durations = _timeline(template)
        start = int(template.get("startNumber", "1"))
        segments = []
        for n, dur in enumerate(durations, start=start):
            uri = f"{base}/seg-{n:05d}.m4s"
            segments.append(Segment(uri, dur, (workdir / uri).stat().st_size))
        extra = sorted(set(os.listdir(workdir / base)) - {"init.mp4"}
                       - {s.uri.rsplit("/", 1)[1] for s in segments})
        if extra:
            raise EncoderError(f"rendition {rid} has segments the MPD does not list: {extra[:3]}")
        avg, peak = _bitrates(segments)
        rep.set("id", rid)
        rep.set("bandwidth", str(peak))
        template.set("initialization", INIT_TEMPLATE.format(version=version))
        template.set("media", MEDIA_TEMPLATE.format(version=version))
        entry: dict[str, Any] = {"id": rid, "kind": "audio" if is_audio else "video"}
        if is_audio:
            entry.update(
                codecs=rep.get("codecs", "mp4a.40.2"),
                channels=AUDIO_CHANNELS,
                sample_rate=int(rep.get("audioSamplingRate", AUDIO_SAMPLE_RATE)),
                target_bitrate_bps=AUDIO_BITRATE_BPS,
            )
        else:
            r = plan.renditions[index]
            entry.update(
                width=int(rep.get("width", r.width)),
                height=int(rep.get("height", r.height)),
                frame_rate=round(float(plan.fps), 3),
                codecs=rep.get("codecs", ""),
                target_bitrate_bps=r.bitrate_bps,
                maxrate_bps=r.maxrate_bps,
            )
        entry.update(
            average_bitrate_bps=avg,
            peak_bitrate_bps=peak,
            init=f"{base}/init.mp4",
            playlist=f"{base}/index.m3u8",
            segments=[
                {"uri": s.uri, "duration_s": round(s.duration_s, 6), "size_bytes": s.size_bytes}
                for s in segments
            ],
        )
        (workdir / base / "index.m3u8").write_text(media_playlist(segments, rid))
        renditions.append(entry)
    for aset in root.iter(f"{{{MPD_NS}}}AdaptationSet"):
        # Renditions have their own init segments (different SPS/PPS): segments of one
        # cannot follow another's init, so bitstream switching is false (ISO/IEC 23009-1 §5.3.3.2).
        aset.attrib.pop("bitstreamSwitching", None)
    tree.write(mpd_path, xml_declaration=True, encoding="utf-8")
    video = sorted((r for r in renditions if r["kind"] == "video"), key=lambda r: r["average_bitrate_bps"])
    audio = [r for r in renditions if r["kind"] == "audio"]
    (workdir / "master.m3u8").write_text(master_playlist(video, audio[0] if audio else None))
    duration = float(max(sum(s["duration_s"] for s in r["segments"]) for r in renditions))
    doc = {
        "format": 1,
        "title": title,
        "version": version,
        "duration_s": round(duration, 3),
        "segment_s": plan.segment_s,
        "codec": plan.codec,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": info.to_dict(),
        "manifests": {"hls": "master.m3u8", "dash": "manifest.mpd"},
        "renditions": video + audio,
    }
    return doc


def _bitrates(segments: list[Segment]) -> tuple[int, int]:
    """(average, peak) bits per second; peak is the largest segment bitrate (RFC 8216 §4.3.4.2)."""
    total_bits = sum(s.size_bytes * 8 for s in segments)
    total_s = sum(s.duration_s for s in segments)
    avg = round(total_bits / total_s) if total_s > 0 else 0
    # A very short last segment (audio remainder) would overstate the peak; weigh it as
    # at least half a second, as players measure it over a whole request anyway.
    peak = max((round(s.size_bytes * 8 / max(s.duration_s, 0.5)) for s in segments), default=0)
    return avg, max(peak, avg)


def media_playlist(segments: list[Segment], rid: str) -> str:
    """An HLS VOD media playlist over fMP4 segments (RFC 8216; version 7 for EXT-X-MAP)."""
    target = max(1, max(round(s.duration_s) for s in segments))
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-MEDIA-SEQUENCE:1",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-MAP:URI="init.mp4"',
    ]
    for s in segments:
        lines.append(f"#EXTINF:{s.duration_s:.6f},")
        lines.append(s.uri.rsplit("/", 1)[1])
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def master_playlist(video: list[dict[str, Any]], audio: dict[str, Any] | None) -> str:
    """The HLS master playlist: one variant per video rendition, audio in a group.

    BANDWIDTH and AVERAGE-BANDWIDTH include the audio rendition (RFC 8216 §4.3.4.2).
    """
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio is not None:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="audio",LANGUAGE="und",'
            f'DEFAULT=YES,AUTOSELECT=YES,CHANNELS="{audio["channels"]}",URI="{audio["playlist"]}"'
        )
    for v in sorted(video, key=lambda r: r["peak_bitrate_bps"], reverse=True):
        peak, avg = v["peak_bitrate_bps"], v["average_bitrate_bps"]
        codecs = v["codecs"]
        if audio is not None:
            peak += audio["peak_bitrate_bps"]
            avg += audio["average_bitrate_bps"]
            codecs = f'{codecs},{audio["codecs"]}'
        attrs = [
            f"BANDWIDTH={peak}",
            f"AVERAGE-BANDWIDTH={avg}",
            f"RESOLUTION={v['width']}x{v['height']}",
            f'CODECS="{codecs}"',
            f"FRAME-RATE={v['frame_rate']:.3f}",
        ]
        if audio is not None:
            attrs.append(f'AUDIO="{AUDIO_GROUP}"')
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(v["playlist"])
    return "\n".join(lines) + "\n"

