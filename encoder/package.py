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

from encoder import webvtt
from encoder.encrypt import add_pssh, hls_key_line, pssh
from encoder.errors import EncoderError
from encoder.manifests import (
    AUDIO_GROUP,
    MPD_NS,
    describe_set,
    master_playlist,
    media_playlist,
    protection,
    text_set,
)
from encoder.plan import AUDIO_SAMPLE_RATE, EncodePlan
from encoder.probe import SourceInfo

__all__ = ["AUDIO_GROUP", "master_playlist", "media_playlist", "package", "new_version"]

_NS = {"d": MPD_NS}
for _prefix, _uri in (
    ("", MPD_NS),
    ("xsi", "http://www.w3.org/2001/XMLSchema-instance"),
    ("xlink", "http://www.w3.org/1999/xlink"),
):
    ET.register_namespace(_prefix, _uri)

INIT_TEMPLATE = "{version}/$RepresentationID$/init.mp4"
MEDIA_TEMPLATE = "{version}/$RepresentationID$/seg-$Number%05d$.m4s"


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


def _segments_entry(segments: list[Segment], base: str) -> dict[str, Any]:
    avg, peak = _bitrates(segments)
    return {
        "average_bitrate_bps": avg,
        "peak_bitrate_bps": peak,
        "init": f"{base}/init.mp4",
        "playlist": f"{base}/index.m3u8",
        "segments": [
            {"uri": s.uri, "duration_s": round(s.duration_s, 6), "size_bytes": s.size_bytes}
            for s in segments
        ],
    }


def package(workdir: Path, plan: EncodePlan, info: SourceInfo, title: str,
            version: str | None = None, subtitle_files: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Reorganise ffmpeg's output in `workdir` under a new version folder, write
    manifests and title.json; return it. `subtitle_files` are the WebVTT files ffmpeg
    wrote, one per `plan.subtitles`."""
    version = version or new_version()
    (workdir / version).mkdir()
    mpd_path = workdir / "manifest.mpd"
    tree = ET.parse(mpd_path)
    root = tree.getroot()
    outputs = plan.video_outputs()
    audio_out = plan.audio_outputs()
    renditions: list[dict[str, Any]] = []
    for aset in root.iter(f"{{{MPD_NS}}}AdaptationSet"):
        # Renditions have their own init segments (different SPS/PPS): segments of one
        # cannot follow another's init, so bitstream switching is false (ISO/IEC 23009-1 §5.3.3.2).
        aset.attrib.pop("bitstreamSwitching", None)
        reps = aset.findall("d:Representation", _NS)
        for rep in reps:
            renditions.append(_rendition(workdir, version, plan, rep))
        first = int(renditions[-1]["_index"]) if reps else -1
        protect = _protection(plan)
        if 0 <= first < len(outputs):
            o = outputs[first]
            describe_set(aset, color=o.format.color if o.format.bit_depth > 8 or o.format.tonemap else None,
                         protect=protect)
        elif first >= len(outputs):
            a = audio_out[first - len(outputs)]
            main = a.source_index == _default_source(audio_out)
            role = "description" if a.description else "main" if main else "alternate"
            describe_set(aset, lang=a.language, label=a.name, role=role, protect=protect)
    for r in renditions:
        del r["_index"]
    video = sorted((r for r in renditions if r["kind"] == "video"),
                   key=lambda r: (plan.video_codecs.index(r["codec"]), r["average_bitrate_bps"]))
    audio = [r for r in renditions if r["kind"] == "audio"]
    durations = [s["duration_s"] for s in video[0]["segments"]]
    subs = _subtitles(workdir, version, plan, subtitle_files, durations)
    period = root.find("d:Period", _NS)
    if period is None:
        raise EncoderError("ffmpeg wrote an MPD without a Period")
    next_id = len(period.findall("d:AdaptationSet", _NS))
    ms = [e - s for s, e in webvtt.boundaries(durations)]
    for k, sub in enumerate(subs):
        text_set(period, next_id + k, sub, ms, INIT_TEMPLATE.format(version=version),
                 MEDIA_TEMPLATE.format(version=version))
    ET.indent(tree, space="\t")
    tree.write(mpd_path, xml_declaration=True, encoding="utf-8")
    session = hls_key_line(plan.encryption, "EXT-X-SESSION-KEY") if plan.encryption else None
    (workdir / "master.m3u8").write_text(master_playlist(video, audio, subs, session))
    duration = float(max(sum(s["duration_s"] for s in r["segments"]) for r in video + audio))
    doc = {
        "format": 1,
        "title": title,
        "version": version,
        "duration_s": round(duration, 3),
        "segment_s": plan.segment_s,
        "codec": plan.codec,
        "codecs": list(plan.video_codecs),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": info.to_dict(),
        "manifests": {"hls": "master.m3u8", "dash": "manifest.mpd"},
        "renditions": video + audio + subs,
        "notes": list(plan.notes),
    }
    if plan.encryption is not None:  # the key itself is kept in MEDIA/.keys/, never here
        doc["encryption"] = {"scheme": "cenc", "system": "org.w3.clearkey",
                             "kid": plan.encryption.kid_uuid, "license_url": plan.license_url}
    return doc


def _protection(plan: EncodePlan) -> list[ET.Element] | None:
    if plan.encryption is None:
        return None
    import base64

    return protection(plan.encryption.kid_uuid, base64.b64encode(pssh(plan.encryption.kid)).decode(),
                      plan.license_url)


def _default_source(audio: tuple[Any, ...]) -> int:
    return next((a.source_index for a in audio if a.default), audio[0].source_index if audio else -1)


def _rendition(workdir: Path, version: str, plan: EncodePlan, rep: ET.Element) -> dict[str, Any]:
    """Move one Representation's files to `version/<rid>/` and describe it."""
    outputs = plan.video_outputs()
    audio_out = plan.audio_outputs()
    index = int(rep.get("id", "-1"))
    if not 0 <= index < len(outputs) + len(audio_out):
        raise EncoderError(f"ffmpeg wrote an unexpected representation {index}")
    is_audio = index >= len(outputs)
    rid = audio_out[index - len(outputs)].id if is_audio else outputs[index].id
    os.rename(workdir / f"r{index}", workdir / version / rid)
    base = f"{version}/{rid}"
    if plan.encryption is not None:
        init = workdir / base / "init.mp4"
        init.write_bytes(add_pssh(init.read_bytes(), pssh(plan.encryption.kid)))
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
    measured = _segments_entry(segments, base)
    rep.set("id", rid)
    rep.set("bandwidth", str(measured["peak_bitrate_bps"]))
    template.set("initialization", INIT_TEMPLATE.format(version=version))
    template.set("media", MEDIA_TEMPLATE.format(version=version))
    entry: dict[str, Any] = {"id": rid, "kind": "audio" if is_audio else "video", "_index": index}
    if is_audio:
        a = audio_out[index - len(outputs)]
        entry.update(
            codecs=rep.get("codecs", "mp4a.40.2"),
            channels=a.channels,
            sample_rate=int(rep.get("audioSamplingRate", AUDIO_SAMPLE_RATE)),
            target_bitrate_bps=a.bitrate_bps,
            language=a.language,
            name=a.name,
            default=a.default,
            source_stream=a.source_index,
        )
        if a.description:
            entry["description"] = True
    else:
        o = outputs[index]
        r = o.rendition
        entry.update(
            width=int(rep.get("width", r.width)),
            height=int(rep.get("height", r.height)),
            frame_rate=round(float(plan.fps / r.fps_divisor), 3),
            codec=o.codec,
            codecs=rep.get("codecs", ""),
            bit_depth=o.format.bit_depth,
            video_range=o.format.video_range,
            target_bitrate_bps=r.bitrate_bps,
            maxrate_bps=r.maxrate_bps,
        )
    entry.update(measured)
    key_line = hls_key_line(plan.encryption) if plan.encryption else None
    (workdir / base / "index.m3u8").write_text(media_playlist(segments, rid, key_line))
    return entry


def _subtitles(workdir: Path, version: str, plan: EncodePlan, files: tuple[Path, ...],
               durations: list[float]) -> list[dict[str, Any]]:
    """Segment each WebVTT file for HLS (seg-N.vtt) and DASH (wvtt fMP4 seg-N.m4s)."""
    bounds = webvtt.boundaries(durations)
    out = []
    for sub, path in zip(plan.subtitles, files, strict=True):
        try:
            cues = webvtt.parse(path.read_text(encoding="utf-8", errors="replace"))
        except EncoderError as exc:
            raise EncoderError(f"subtitles {sub.origin}: ffmpeg's WebVTT output does not parse ({exc})") from exc
        base = f"{version}/{sub.id}"
        folder = workdir / base
        folder.mkdir()
        os.replace(path, folder / "subtitles.vtt")
        lang3 = _alpha3(sub.language)
        (folder / "init.mp4").write_bytes(webvtt.init_segment(lang3))
        segments = []
        for n, (a, b) in enumerate(bounds, start=1):
            (folder / f"seg-{n:05d}.vtt").write_text(webvtt.hls_segment(cues, a, b))
            data = webvtt.media_segment(cues, a, b, n)
            (folder / f"seg-{n:05d}.m4s").write_bytes(data)
            segments.append(Segment(f"{base}/seg-{n:05d}.m4s", (b - a) / 1000, len(data)))
        (folder / "index.m3u8").write_text(webvtt.hls_playlist(durations))
        entry: dict[str, Any] = {
            "id": sub.id, "kind": "subtitles", "codecs": "wvtt", "language": sub.language,
            "name": sub.name, "default": sub.default, "forced": sub.forced, "from": sub.origin,
            "cues": len(cues), "file": f"{base}/subtitles.vtt",
        }
        if sub.captions:
            entry["captions"] = True
        entry.update(_segments_entry(segments, base))
        out.append(entry)
    return out


def _alpha3(tag: str) -> str:
    """The ISO 639-2/T code of a BCP 47 tag, for the mp4 `mdhd` box."""
    from encoder.languages import alpha3

    return alpha3(tag)


def _bitrates(segments: list[Segment]) -> tuple[int, int]:
    """(average, peak) bits per second; peak is the largest segment bitrate (RFC 8216 §4.3.4.2)."""
    total_bits = sum(s.size_bytes * 8 for s in segments)
    total_s = sum(s.duration_s for s in segments)
    avg = round(total_bits / total_s) if total_s > 0 else 0
    # A very short last segment (audio remainder) would overstate the peak; weigh it as
    # at least half a second, as players measure it over a whole request anyway.
    peak = max((round(s.size_bytes * 8 / max(s.duration_s, 0.5)) for s in segments), default=0)
    return avg, max(peak, avg)


