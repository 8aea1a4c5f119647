"""Reports: the per-algorithm summary (table, JSON), per-session CSV and PNG plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from player_sim.qoe import SessionResult

SUMMARY_KEYS = ("sessions", "qoe_mean", "qoe_per_chunk", "bitrate_kbps_mean", "rebuffer_s_mean",
                "startup_s_mean", "switches_mean")


def summarise(results: dict[str, list[SessionResult]]) -> dict[str, dict[str, float]]:
    """One summary per algorithm (keys :data:`SUMMARY_KEYS`)."""
    out: dict[str, dict[str, float]] = {}
    for name, sessions in results.items():
        n = len(sessions)
        chunks = sum(s.scored_segments for s in sessions)
        out[name] = {
            "sessions": n,
            "qoe_mean": sum(s.score for s in sessions) / n,
            "qoe_per_chunk": sum(s.score for s in sessions) / chunks if chunks else 0.0,
            "bitrate_kbps_mean": sum(s.bitrate_kbps_mean for s in sessions) / n,
            "rebuffer_s_mean": sum(s.rebuffer_s for s in sessions) / n,
            "startup_s_mean": sum(s.startup_s for s in sessions) / n,
            "switches_mean": sum(s.switches for s in sessions) / n,
        }
    return out


def table(summary: dict[str, dict[str, float]]) -> str:
    """A fixed-width text table of the summary."""
    head = f"{'algorithm':<16} {'sessions':>8} {'QoE mean':>10} {'per chunk':>9} {'kbps':>7} {'rebuf s':>8} {'startup s':>9} {'switches':>8}"
    lines = [head, "-" * len(head)]
    for name, s in summary.items():
        lines.append(
            f"{name:<16} {int(s['sessions']):>8} {s['qoe_mean']:>10.3f} {s['qoe_per_chunk']:>9.3f} "
            f"{s['bitrate_kbps_mean']:>7.0f} {s['rebuffer_s_mean']:>8.2f} {s['startup_s_mean']:>9.2f} {s['switches_mean']:>8.2f}"
        )
    return "\n".join(lines)


def to_json(summary: dict[str, dict[str, float]]) -> str:
    """The summary as one JSON object keyed by algorithm."""
    return json.dumps(summary, indent=2)


def write_csv(results: dict[str, list[SessionResult]], path: Path) -> None:
    """One row per session."""
    rows = [s.to_row() for sessions in results.values() for s in sessions]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_plots(results: dict[str, list[SessionResult]], out_dir: Path, traces: list[str] | None = None) -> list[Path]:
    """QoE CDF per algorithm and bitrate / buffer over time for the named traces (default: the first 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, ss in results.items():
        scores = sorted(s.score for s in ss)
        ax.step(scores, [(i + 1) / len(scores) for i in range(len(scores))], where="post", label=name)
    ax.set_xlabel("QoE per session")
    ax.set_ylabel("CDF")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = out_dir / "qoe_cdf.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    first = next(iter(results.values()))
    names = [s.trace for s in first]
    chosen = [names.index(t) for t in traces] if traces else list(range(min(3, len(first))))
    for i in chosen:
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
        for name, ss in results.items():
            recs = ss[i].records
            t = [r.time_s for r in recs]
            a1.step(t, [r.bitrate_kbps for r in recs], where="post", label=name)
            a2.plot(t, [r.buffer_s for r in recs], label=name)
        a1.set_ylabel("bitrate (kbps)")
        a2.set_ylabel("buffer (s)")
        a2.set_xlabel("session time (s)")
        a1.set_title(f"trace {first[i].trace}")
        a1.legend(fontsize=7)
        a1.grid(alpha=0.3)
        a2.grid(alpha=0.3)
        path = out_dir / f"session_{i:03d}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
