"""QoE of a session: the linear QoE of Yin et al. (SIGCOMM 2015) as Pensieve uses it.

QoE_lin per segment = R/1000 - 4.3 * rebuffer_s - |R - R_prev| / 1000, with R in kbps
(Mao et al., SIGCOMM 2017, section 5.1). Pure functions over per-segment records.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import NamedTuple

REBUFFER_PENALTY = 4.3
"""Penalty per second of rebuffering (1 s of stall costs as much as 4.3 Mbps for one segment)."""
SMOOTH_PENALTY = 1.0
"""Penalty per Mbps of bitrate change between consecutive segments."""


class SegmentRecord(NamedTuple):
    """One played segment (a named tuple: sessions make thousands of these a second)."""

    segment: int
    """Segment index."""
    level: int
    """Level played."""
    bitrate_kbps: float
    """Nominal bitrate of that level."""
    rebuffer_s: float
    """Stall time charged to this segment (for segment 0: the startup delay)."""
    buffer_s: float
    """Buffer after the segment arrived (and after any idle wait)."""
    time_s: float
    """Session clock when the segment arrived."""
    download_s: float
    """Request-to-last-byte time, including abandoned attempts."""
    reward: float
    """QoE_lin of this segment."""


@dataclass(frozen=True)
class SessionResult:
    """Summary and per-segment records of one simulated session."""

    algorithm: str
    """ABR algorithm name."""
    trace: str
    """Trace name."""
    score: float
    """Session QoE (sum of the scored segments' QoE_lin)."""
    scored_segments: int
    """How many segments the score sums over."""
    bitrate_kbps_mean: float
    """Mean nominal bitrate of the scored segments."""
    rebuffer_s: float
    """Stall time after startup."""
    startup_s: float
    """Time from the first request until playback could start."""
    switches: int
    """Number of level changes."""
    abandoned: int = 0
    """Downloads abandoned and refetched lower."""
    records: tuple[SegmentRecord, ...] = field(default=(), repr=False)
    """Per-segment detail (for plots)."""

    @property
    def qoe_per_segment(self) -> float:
        """Score divided by the scored segments."""
        return self.score / self.scored_segments if self.scored_segments else 0.0

    def to_row(self) -> dict[str, object]:
        """One CSV row."""
        row: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "records"}
        row["qoe_per_chunk"] = self.qoe_per_segment
        return row


def reward(bitrate_kbps: float, prev_kbps: float, rebuffer_s: float) -> float:
    """QoE_lin of one segment."""
    return bitrate_kbps / 1000 - REBUFFER_PENALTY * rebuffer_s - SMOOTH_PENALTY * abs(bitrate_kbps - prev_kbps) / 1000


def summarise(algorithm: str, trace: str, records: list[SegmentRecord], skip_first: bool, startup_s: float,
              abandoned: int = 0, extra_penalty: float = 0.0) -> SessionResult:
    """Build a :class:`SessionResult`; ``skip_first`` leaves segment 0 out of the score (Pensieve's rule)."""
    scored = records[1:] if skip_first else records
    score = sum(r.reward for r in scored) - extra_penalty
    switches = sum(1 for a, b in zip(records, records[1:], strict=False) if a.level != b.level)
    return SessionResult(
        algorithm=algorithm,
        trace=trace,
        score=score,
        scored_segments=len(scored),
        bitrate_kbps_mean=sum(r.bitrate_kbps for r in scored) / len(scored) if scored else 0.0,
        rebuffer_s=sum(r.rebuffer_s for r in records[1:]),
        startup_s=startup_s,
        switches=switches,
        abandoned=abandoned,
        records=tuple(records),
    )
