"""A small ISO BMFF (ISO/IEC 14496-12) box reader and in-place editor for CMAF segments.

A chunked encode writes each chunk's segments with its own timeline (starting at 0) and
its own fragment numbers (starting at 1). Joining them into one continuous CMAF track
(ISO/IEC 23000-19 §7.3.2: decode times and sequence numbers continue across segments)
means changing three fields per segment, all of fixed size, so the bytes are patched in
place and every size and offset (trun data_offset, sidx referenced_size) stays valid:

- `mfhd.sequence_number` (§8.8.5), 32 bits;
- `tfdt.baseMediaDecodeTime` (§8.8.12), 32 or 64 bits by the box version;
- `sidx.earliest_presentation_time` (§8.16.3), 32 or 64 bits by the box version.

Durations are measured from the boxes too: the segment's presentation span from `sidx`
(what ffmpeg's dash muxer writes into the MPD), its decode span from `trun` sample
durations (or the `tfhd` default).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from encoder.errors import EncoderError

CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"mvex",
                        b"edts", b"dinf"})


class BoxError(EncoderError):
    """A segment or init segment is not the ISO BMFF the dash muxer writes."""


@dataclass(frozen=True)
class Box:
    type: bytes
    """The four-character code."""
    start: int
    """Offset of the box's first byte."""
    body: int
    """Offset of the box's payload (after size, type and any 64-bit size)."""
    end: int
    """Offset just past the box."""


def boxes(data: bytes | bytearray, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes between `start` and `end`, in order (no descent)."""
    end = len(data) if end is None else end
    off = start
    while off < end:
        if end - off < 8:
            raise BoxError(f"truncated box header at byte {off}")
        size, typ = struct.unpack_from(">I4s", data, off)
        body = off + 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, off + 8)
            body = off + 16
        elif size == 0:
            size = end - off
        if size < body - off or off + size > end:
            raise BoxError(f"box {typ!r} at byte {off} overruns its parent")
        yield Box(typ, off, body, off + size)
        off += size


def find(data: bytes | bytearray, *path: bytes) -> list[Box]:
    """Every box at `path` (e.g. ``b"moof", b"traf", b"tfdt"``), descending through containers."""
    level = [Box(b"", 0, 0, len(data))]
    for typ in path:
        level = [b for parent in level for b in boxes(data, parent.body, parent.end) if b.type == typ]
    return level


def one(data: bytes | bytearray, *path: bytes) -> Box:
    found = find(data, *path)
    if len(found) != 1:
        raise BoxError(f"expected one {b'/'.join(path).decode()} box, found {len(found)}")
    return found[0]


def _uint(data: bytes | bytearray, off: int, wide: bool) -> int:
    return int(struct.unpack_from(">Q" if wide else ">I", data, off)[0])


def _put(data: bytearray, off: int, wide: bool, value: int, what: str) -> None:
    if value < 0 or value >= (1 << (64 if wide else 32)):
        raise BoxError(f"{what} {value} does not fit its {64 if wide else 32}-bit field")
    struct.pack_into(">Q" if wide else ">I", data, off, value)


def timescale(init: bytes) -> int:
    """The media timescale of the single track of an init segment (`mdhd`, §8.4.2)."""
    mdhd = one(init, b"moov", b"trak", b"mdia", b"mdhd")
    version = init[mdhd.body]
    return _uint(init, mdhd.body + (20 if version == 1 else 12), False)


def sample_entry(init: bytes) -> bytes:
    """The bytes that must agree between chunks' init segments: the sample description
    (codec configuration, `stsd`) and the edit list (`elst`, the composition offset)."""
    stsd = one(init, b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd")
    elst = find(init, b"moov", b"trak", b"edts", b"elst")
    return init[stsd.start:stsd.end] + b"".join(init[e.start:e.end] for e in elst)


@dataclass(frozen=True)
class Fragment:
    """What a media segment says about its time (in the track's timescale)."""

    decode_time: int
    """`tfdt` of its first fragment."""
    decode_duration: int
    """Sum of its samples' durations."""
    presentation_time: int
    """`sidx` earliest presentation time (the MPD's S@t)."""
    presentation_duration: int
    """`sidx` subsegment durations (the MPD's S@d)."""
    samples: int
    """Number of samples."""


def measure(seg: bytes | bytearray, default_duration: int = 0) -> Fragment:
    """Times and counts of one media segment (one `sidx`, one or more `moof`)."""
    sidx = one(seg, b"sidx")
    wide = seg[sidx.body] == 1
    ept = _uint(seg, sidx.body + 12, wide)
    refs_at = sidx.body + 12 + (16 if wide else 8)
    (count,) = struct.unpack_from(">H", seg, refs_at + 2)
    span = sum(_uint(seg, refs_at + 4 + 12 * i + 4, False) for i in range(count))
    trafs = find(seg, b"moof", b"traf")
    if not trafs:
        raise BoxError("a media segment without a moof/traf")
    first = None
    total = samples = 0
    for traf in trafs:
        tfdt = next((b for b in boxes(seg, traf.body, traf.end) if b.type == b"tfdt"), None)
        if tfdt is None:
            raise BoxError("a traf without tfdt")
        if first is None:
            first = _uint(seg, tfdt.body + 4, seg[tfdt.body] == 1)
        d, n = _traf_duration(seg, traf, default_duration)
        total += d
        samples += n
    return Fragment(first or 0, total, ept, span, samples)


def _traf_duration(seg: bytes | bytearray, traf: Box, default_duration: int) -> tuple[int, int]:
    """(sum of sample durations, sample count) of one track fragment (§8.8.7, §8.8.8)."""
    inner = {b.type: b for b in boxes(seg, traf.body, traf.end)}
    tfhd = inner.get(b"tfhd")
    trun_boxes = [b for b in boxes(seg, traf.body, traf.end) if b.type == b"trun"]
    if tfhd is None or not trun_boxes:
        raise BoxError("a traf without tfhd or trun")
    flags = int.from_bytes(seg[tfhd.body + 1 : tfhd.body + 4], "big")
    off = tfhd.body + 8  # version/flags, track_ID
    off += 8 if flags & 0x01 else 0  # base_data_offset
    off += 4 if flags & 0x02 else 0  # sample_description_index
    default = _uint(seg, off, False) if flags & 0x08 else default_duration
    total = count = 0
    for trun in trun_boxes:
        tflags = int.from_bytes(seg[trun.body + 1 : trun.body + 4], "big")
        (n,) = struct.unpack_from(">I", seg, trun.body + 4)
        at = trun.body + 8 + (4 if tflags & 0x01 else 0) + (4 if tflags & 0x04 else 0)
        per = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if tflags & bit)
        if tflags & 0x100:
            total += sum(_uint(seg, at + i * per, False) for i in range(n))
        else:
            total += default * n
        count += n
    return total, count


def retime(seg: bytes, shift: int, sequence: int) -> bytes:
    """`seg` with every decode and presentation time moved by `shift` ticks and its
    fragments numbered from `sequence` on (sizes and offsets unchanged)."""
    out = bytearray(seg)
    for sidx in find(out, b"sidx"):
        wide = out[sidx.body] == 1
        at = sidx.body + 12
        _put(out, at, wide, _uint(out, at, wide) + shift, "sidx earliest_presentation_time")
    for k, mfhd in enumerate(find(out, b"moof", b"mfhd")):
        _put(out, mfhd.body + 4, False, sequence + k, "mfhd sequence_number")
    for tfdt in find(out, b"moof", b"traf", b"tfdt"):
        wide = out[tfdt.body] == 1
        at = tfdt.body + 4
        _put(out, at, wide, _uint(out, at, wide) + shift, "tfdt baseMediaDecodeTime")
    return bytes(out)


def fragments(seg: bytes | bytearray) -> int:
    """How many movie fragments (`moof`) a segment holds."""
    return len(find(seg, b"moof"))
