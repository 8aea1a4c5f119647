"""Checks a packaged title before it is published: both manifests parse with the
libraries players use (m3u8, mpegdash), every file they name exists, and the video
renditions' segments are aligned (same count, same durations)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import m3u8
from mpegdash.parser import MPEGDASHParser

from encoder.errors import EncoderError

ALIGN_TOLERANCE_S = 0.05


class VerifyError(EncoderError):
    """The packaged title is inconsistent (a bug or a disk problem, never the user's input)."""


def verify_title(folder: Path, doc: dict[str, Any]) -> None:
    """Raise VerifyError unless the title in `folder` is complete and consistent."""
    master = m3u8.load(str(folder / "master.m3u8"))
    if not master.is_variant or not master.playlists:
        raise VerifyError("master.m3u8 has no variants")
    for variant in master.playlists:
        if variant.stream_info.bandwidth is None:
            raise VerifyError(f"variant {variant.uri} has no BANDWIDTH")
    uris = [p.uri for p in master.playlists] + [m.uri for m in master.media if m.uri]
    for uri in uris:
        media = m3u8.load(str(folder / uri))
        if media.playlist_type != "vod" or not media.is_endlist or not media.segments:
            raise VerifyError(f"{uri} is not a complete VOD playlist")
        base = (folder / uri).parent
        for seg in media.segments:
            _exists(base / seg.uri)
        if media.segment_map:
            _exists(base / media.segment_map[0].uri)
    mpd = MPEGDASHParser.parse(str(folder / "manifest.mpd"))
    if not mpd.periods or not mpd.periods[0].adaptation_sets:
        raise VerifyError("manifest.mpd has no adaptation sets")
    reps = [r for aset in mpd.periods[0].adaptation_sets for r in aset.representations]
    if {r.id for r in reps} != {r["id"] for r in doc["renditions"]}:
        raise VerifyError("manifest.mpd and title.json list different renditions")
    for r in doc["renditions"]:
        _exists(folder / r["init"])
        for s in r["segments"]:
            _exists(folder / s["uri"])
    video = [r for r in doc["renditions"] if r["kind"] == "video"]
    first = [s["duration_s"] for s in video[0]["segments"]]
    for r in video[1:]:
        durs = [s["duration_s"] for s in r["segments"]]
        if len(durs) != len(first) or any(abs(a - b) > ALIGN_TOLERANCE_S for a, b in zip(durs, first, strict=True)):
            raise VerifyError(f"rendition {r['id']} is not segment-aligned with {video[0]['id']}")


def _exists(path: Path) -> None:
    if not path.is_file() or path.stat().st_size == 0:
        raise VerifyError(f"{path.name} is missing or empty")
