"""Bandwidth traces: one representation, three input formats.

A :class:`Trace` is a piecewise-constant bandwidth: period ``i`` lasts ``durations_s[i]``
seconds at ``bandwidths_bps[i]`` with a one-way request latency ``latencies_s[i]``.
Traces loop when a session outlasts them.

Formats read here:

* Pensieve "cooked" text (Mao et al., SIGCOMM 2017): ``time_s<ws>throughput_Mbps`` per line;
  the sample on line ``i`` is the throughput between ``time[i-1]`` and ``time[i]``, so the
  first line only gives the start time (hongzimao/pensieve ``test/fixed_env.py``).
* sabre JSON (Spiteri et al., UMass-LIDS/sabre): a list of
  ``{"duration_ms", "bandwidth_kbps", "latency_ms"}`` periods.
* Mahimahi (Netravali et al., USENIX ATC 2015): one millisecond timestamp per line, each a
  delivery opportunity for one 1500-byte packet; binned into 500-ms periods here.

Parsing is pure (text in, :class:`Trace` out); :func:`load_traces` is the thin file shell.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from player_sim.errors import PlayerError

MAHIMAHI_PACKET_BYTES = 1500
MAHIMAHI_BIN_MS = 500


@dataclass(frozen=True)
class Trace:
    """A looping piecewise-constant bandwidth trace."""

    name: str
    """File name (or a label) used in reports."""
    start_s: float
    """Trace clock at which the first period starts (a cooked trace's first time stamp)."""
    durations_s: tuple[float, ...]
    """Length of each period, seconds."""
    bandwidths_bps: tuple[float, ...]
    """Throughput of each period, bits per second."""
    latencies_s: tuple[float, ...]
    """Request latency (round trip to the first byte) in each period, seconds; 0 when unknown."""

    @property
    def duration_s(self) -> float:
        """Length of one pass over the trace."""
        return sum(self.durations_s)

    @property
    def mean_bps(self) -> float:
        """Time-weighted mean bandwidth."""
        total = self.duration_s
        return sum(d * b for d, b in zip(self.durations_s, self.bandwidths_bps, strict=True)) / total


def _check(trace: Trace) -> Trace:
    if not trace.durations_s:
        raise PlayerError(f"trace {trace.name} has no bandwidth samples")
    if any(d < 0 or math.isnan(d) for d in trace.durations_s) or trace.duration_s <= 0:
        raise PlayerError(f"trace {trace.name} has time stamps that do not increase")
    if any(b < 0 or math.isnan(b) or math.isinf(b) for b in trace.bandwidths_bps):
        raise PlayerError(f"trace {trace.name} has a negative or non-numeric bandwidth")
    if not any(d > 0 and b > 0 for d, b in zip(trace.durations_s, trace.bandwidths_bps, strict=True)):
        raise PlayerError(f"trace {trace.name} has zero bandwidth throughout, so no segment could ever arrive")
    return trace


def parse_cooked(name: str, text: str) -> Trace:
    """Parse a Pensieve cooked trace (``time_s throughput_Mbps`` per line)."""
    times: list[float] = []
    mbps: list[float] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            t, b = float(fields[0]), float(fields[1])
        except (ValueError, IndexError):
            raise PlayerError(
                f"trace {name} line {lineno} is not 'time_s throughput_Mbps': {line.strip()[:40]!r}"
            ) from None
        times.append(t)
        mbps.append(b)
    if len(times) < 2:
        raise PlayerError(f"trace {name} needs at least two 'time_s throughput_Mbps' lines")
    durations = tuple(times[i] - times[i - 1] for i in range(1, len(times)))
    return _check(
        Trace(
            name=name,
            start_s=times[0],
            durations_s=durations,
            bandwidths_bps=tuple(m * 1e6 for m in mbps[1:]),
            latencies_s=tuple(0.0 for _ in durations),
        )
    )


def parse_sabre(name: str, text: str) -> Trace:
    """Parse a sabre JSON network trace (list of duration/bandwidth/latency periods)."""
    try:
        data = json.loads(text)
        periods = [
            (float(p["duration_ms"]) / 1000, float(p["bandwidth_kbps"]) * 1000, float(p.get("latency_ms", 0)) / 1000)
            for p in data
        ]
    except (ValueError, TypeError, KeyError, AttributeError):
        raise PlayerError(
            f"trace {name} is not a sabre JSON list of {{duration_ms, bandwidth_kbps, latency_ms}} periods"
        ) from None
    return _check(
        Trace(
            name=name,
            start_s=0.0,
            durations_s=tuple(p[0] for p in periods),
            bandwidths_bps=tuple(p[1] for p in periods),
            latencies_s=tuple(p[2] for p in periods),
        )
    )


def mahimahi_stamps(name: str, text: str) -> list[int]:
    """A Mahimahi trace's delivery time stamps (ms), one per line."""
    stamps: list[int] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if not line.isdigit():
            raise PlayerError(f"trace {name} line {lineno} is not a Mahimahi millisecond time stamp: {line[:40]!r}")
        stamps.append(int(line))
    return stamps


def parse_mahimahi(name: str, text: str, bin_ms: int = MAHIMAHI_BIN_MS) -> Trace:
    """Parse a Mahimahi packet-delivery trace into ``bin_ms`` periods of constant bandwidth."""
    stamps = mahimahi_stamps(name, text)
    if not stamps:
        raise PlayerError(f"trace {name} is empty")
    end_ms = max(stamps[-1], 1)
    bins = [0] * (math.ceil(end_ms / bin_ms) or 1)
    for s in stamps:
        bins[min(s // bin_ms, len(bins) - 1)] += 1
    durations = tuple(min(bin_ms, end_ms - i * bin_ms) / 1000 for i in range(len(bins)))
    return _check(
        Trace(
            name=name,
            start_s=0.0,
            durations_s=durations,
            bandwidths_bps=tuple(
                n * MAHIMAHI_PACKET_BYTES * 8 / d if d > 0 else 0.0 for n, d in zip(bins, durations, strict=True)
            ),
            latencies_s=tuple(0.0 for _ in durations),
        )
    )


def parse_trace(name: str, text: str) -> Trace:
    """Detect the format of one trace file's text and parse it."""
    stripped = text.lstrip()
    if not stripped:
        raise PlayerError(f"trace {name} is empty")
    if stripped[0] in "[{":
        return parse_sabre(name, text)
    first = stripped.split("\n", 1)[0].split()
    if len(first) == 1:
        return parse_mahimahi(name, text)
    return parse_cooked(name, text)


def trace_files(paths: list[Path]) -> list[Path]:
    """The trace files named by ``paths`` (files, or folders whose visible files are taken in sorted order)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            found = [p for p in found if p.suffix.lower() != ".md" and not p.name.upper().startswith("README")]
            if not found:
                raise PlayerError(f"trace folder {path} has no trace files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise PlayerError(f"trace path {path} does not exist")
    if not files:
        raise PlayerError("no trace files given")
    return files


def load_traces(paths: list[Path]) -> list[Trace]:
    """Read and parse every trace named by ``paths``."""
    traces = []
    for f in trace_files(paths):
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PlayerError(f"trace {f} cannot be read as text: {exc}") from None
        traces.append(parse_trace(f.name, text))
    return traces
