"""Joining a chunked encode's outputs into what the one-process encode leaves in the
staging folder: ``r<i>/init.mp4``, ``r<i>/seg-NNNNN.m4s`` and one ``manifest.mpd``, so
that `package` (HLS + DASH from the measured segments, title.json) runs unchanged.

Per video rendition: one init segment (chunk 1's; every other chunk's codec
configuration and edit list must be byte-identical, or the chunks are refused), then
every chunk's segments in order, renumbered from 1, with `tfdt`, `sidx` and `mfhd`
moved on (encoder/boxes.py) so decode times, presentation times and fragment numbers
run on across chunk boundaries; a gap or overlap in decode time is an error. The MPD's
SegmentTimeline is rewritten from the segments as measured. Audio and subtitles come
from their one task for the whole title and are moved in as they are.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from encoder import boxes
from encoder.errors import EncoderError
from encoder.manifests import MPD_NS

_NS = {"d": MPD_NS}
for _prefix, _uri in (("", MPD_NS), ("xsi", "http://www.w3.org/2001/XMLSchema-instance"),
                      ("xlink", "http://www.w3.org/1999/xlink")):
    ET.register_namespace(_prefix, _uri)


def _q(tag: str) -> str:
    return f"{{{MPD_NS}}}{tag}"


def _segments(folder: Path) -> list[Path]:
    segs = sorted(folder.glob("seg-*.m4s"))
    expected = [f"seg-{n:05d}.m4s" for n in range(1, len(segs) + 1)]
    if not segs or [p.name for p in segs] != expected:
        raise EncoderError(f"chunk output {folder} has no segments or a gap in their numbers")
    return segs


def join_rendition(chunks: list[Path], dest: Path, what: str) -> tuple[int, list[tuple[int, int]]]:
    """Write one continuous track into `dest` from every chunk's `r<i>` folder; return the
    timescale and the (presentation time, duration) of every segment."""
    init = (chunks[0] / "init.mp4").read_bytes()
    entry = boxes.sample_entry(init)
    scale = boxes.timescale(init)
    dest.mkdir(exist_ok=True)
    (dest / "init.mp4").write_bytes(init)
    timeline: list[tuple[int, int]] = []
    number = sequence = 1
    end = decode_end = None
    for k, folder in enumerate(chunks):
        if k and boxes.sample_entry((folder / "init.mp4").read_bytes()) != entry:
            raise EncoderError(f"{what}: chunk {k + 1} has another codec configuration than chunk 1 "
                               "(the encoder's headers differ); encode without --chunks")
        shift = None
        for path in _segments(folder):
            data = path.read_bytes()
            m = boxes.measure(data)
            if shift is None:
                shift = 0 if end is None else end - m.presentation_time
            if decode_end is not None and m.decode_time + shift != decode_end:
                raise EncoderError(f"{what}: decode times do not continue at segment {number} "
                                   f"(chunk {k + 1}): {m.decode_time + shift} after {decode_end}")
            (dest / f"seg-{number:05d}.m4s").write_bytes(boxes.retime(data, shift, sequence))
            sequence += boxes.fragments(data)
            timeline.append((m.presentation_time + shift, m.presentation_duration))
            end = m.presentation_time + shift + m.presentation_duration
            decode_end = m.decode_time + shift + m.decode_duration
            number += 1
    return scale, timeline


def _set_timeline(rep: ET.Element, timeline: list[tuple[int, int]]) -> None:
    """A SegmentTimeline of runs (ISO/IEC 23009-1 §5.3.9.6): S@t at the first, S@r repeats."""
    template = rep.find("d:SegmentTemplate", _NS)
    if template is None:
        raise EncoderError("a chunk's MPD has no SegmentTemplate")
    old = template.find("d:SegmentTimeline", _NS)
    if old is not None:
        template.remove(old)
    tl = ET.SubElement(template, _q("SegmentTimeline"))
    runs: list[list[int]] = []
    for t, d in timeline:
        if runs and runs[-1][1] == d and runs[-1][0] + d * (runs[-1][2] + 1) == t:
            runs[-1][2] += 1
        else:
            runs.append([t, d, 0])
    for i, (t, d, r) in enumerate(runs):
        attrs = {"d": str(d)}
        if i == 0 or runs[i - 1][0] + runs[i - 1][1] * (runs[i - 1][2] + 1) != t:
            attrs = {"t": str(t), **attrs}
        if r:
            attrs["r"] = str(r)
        ET.SubElement(tl, _q("S"), attrs)


def _duration(text: str | None) -> float:
    """Seconds of an MPD duration as ffmpeg writes them (PT1H2M3.4S)."""
    import re

    m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?", text or "")
    if not m:
        return 0.0
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def assemble(staged: Path, video_outputs: int, chunks: list[Path], extra: Path | None,
             subtitle_files: tuple[Path, ...], rendition_ids: list[str]) -> None:
    """Fill `staged` from the chunk folders (video) and `extra` (audio, subtitles)."""
    tree = ET.parse(chunks[0] / "manifest.mpd")
    root = tree.getroot()
    period = root.find("d:Period", _NS)
    if period is None:
        raise EncoderError("a chunk's MPD has no Period")
    total_s = longest_s = 0.0
    reps = {rep.get("id"): rep for rep in period.iter(_q("Representation"))}
    for i in range(video_outputs):
        rep = reps.get(str(i))
        if rep is None:
            raise EncoderError(f"a chunk's MPD lacks representation {i}")
        scale, timeline = join_rendition([c / f"r{i}" for c in chunks], staged / f"r{i}",
                                         f"rendition {rendition_ids[i]}")
        _set_timeline(rep, timeline)
        total_s = max(total_s, (timeline[-1][0] + timeline[-1][1]) / scale)
        longest_s = max(longest_s, max(d for _, d in timeline) / scale)
    if extra is not None:
        other = ET.parse(extra / "manifest.mpd").getroot()
        total_s = max(total_s, _duration(other.get("mediaPresentationDuration")))
        longest_s = max(longest_s, _duration(other.get("maxSegmentDuration")))
        next_set = len(period.findall("d:AdaptationSet", _NS))
        for k, aset in enumerate(other.iter(_q("AdaptationSet"))):
            aset.set("id", str(next_set + k))
            for rep in aset.findall("d:Representation", _NS):
                j = int(rep.get("id", "-1"))
                rep.set("id", str(video_outputs + j))
                target = staged / f"r{video_outputs + j}"
                if target.exists():
                    target.rmdir()
                os.rename(extra / f"r{j}", target)
            period.append(aset)
        for k, path in enumerate(subtitle_files):
            os.rename(extra / f"sub{k}.vtt", path)
    root.set("mediaPresentationDuration", f"PT{total_s:.3f}S")
    root.set("maxSegmentDuration", f"PT{longest_s:.3f}S")
    if period.get("duration"):
        period.set("duration", f"PT{total_s:.3f}S")
    tree.write(staged / "manifest.mpd", xml_declaration=True, encoding="utf-8")
