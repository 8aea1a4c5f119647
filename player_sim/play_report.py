"""Reports of real sessions: the QoE summary in `abr sim`'s form, download-time
percentiles per protocol, the edge's hit ratio, edge-caused stalls, JSON logs, and an
HTML report with plots (matplotlib, PNGs inlined)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from player_sim import report
from player_sim.player import SessionLog

HIT_RESULTS = ("HIT", "STALE")
"""X-Cache values served from the edge's cache without an origin round trip."""


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); 0 for no values."""
    if not values:
        return 0.0
    v = sorted(values)
    pos = (len(v) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def media_requests(log: SessionLog) -> list[dict[str, Any]]:
    return [e for e in log.events if e["type"] == "request" and e.get("kind") in ("video", "audio", "init")]


def aggregate(logs: dict[str, list[SessionLog]]) -> dict[str, dict[str, Any]]:
    """Per group (e.g. protocol): QoE summary + download percentiles + hit ratio + stalls."""
    out: dict[str, dict[str, Any]] = {}
    for group, sessions in logs.items():
        done = [s for s in sessions if s.result is not None]
        summary = report.summarise({group: [s.result for s in done if s.result]})[group] if done else {
            k: 0.0 for k in report.SUMMARY_KEYS}
        downloads = [e["end_s"] - e["start_s"] for s in sessions for e in media_requests(s)
                     if e["kind"] == "video"]
        cache = [str(e.get("x_cache") or "") for s in sessions for e in media_requests(s)]
        known = [c for c in cache if c]
        hits = [c for c in known if c.split()[0].upper() in HIT_RESULTS]
        protocols = sorted({str(e["protocol"]) for s in sessions for e in media_requests(s) if e.get("protocol")})
        out[group] = {
            **summary,
            "sessions_failed": len(sessions) - len(done) + sum(1 for s in done if s.error),
            "download_s_p50": percentile(downloads, 50),
            "download_s_p95": percentile(downloads, 95),
            "download_s_p99": percentile(downloads, 99),
            "edge_hit_ratio": len(hits) / len(known) if known else None,
            "edge_caused_stalls": sum(1 for s in sessions if s.edge_caused_stall),
            "retries": sum(s.retries for s in sessions),
            "protocols_seen": protocols,
        }
    return out


def table(agg: dict[str, dict[str, Any]], label: str = "protocol") -> str:
    head = (f"{label:<10} {'sessions':>8} {'QoE mean':>9} {'per chunk':>9} {'kbps':>6} {'rebuf s':>7} "
            f"{'startup s':>9} {'switches':>8} {'dl p50':>7} {'dl p95':>7} {'dl p99':>7} {'hit %':>6} "
            f"{'edge stalls':>11} {'failed':>6}")
    lines = [head, "-" * len(head)]
    for name, a in agg.items():
        hit = "-" if a["edge_hit_ratio"] is None else f"{100 * a['edge_hit_ratio']:.0f}"
        lines.append(
            f"{name:<10} {int(a['sessions']):>8} {a['qoe_mean']:>9.3f} {a['qoe_per_chunk']:>9.3f} "
            f"{a['bitrate_kbps_mean']:>6.0f} {a['rebuffer_s_mean']:>7.2f} {a['startup_s_mean']:>9.2f} "
            f"{a['switches_mean']:>8.2f} {a['download_s_p50']:>7.3f} {a['download_s_p95']:>7.3f} "
            f"{a['download_s_p99']:>7.3f} {hit:>6} {a['edge_caused_stalls']:>11} {a['sessions_failed']:>6}")
    return "\n".join(lines)


def write_logs(logs: dict[str, list[SessionLog]], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for group, sessions in logs.items():
        for i, s in enumerate(sessions):
            p = out / f"session-{group}-{i:03d}.json"
            p.write_text(json.dumps(s.to_dict(), indent=1))
            paths.append(p)
    return paths


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def session_figure(log: SessionLog, title: str) -> str:
    """Bitrate, buffer and per-segment throughput over time, as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = log.result
    fig, axes = plt.subplots(3, 1, figsize=(8, 6.5), sharex=True)
    if r is not None and r.records:
        t = [x.time_s for x in r.records]
        axes[0].step(t, [x.bitrate_kbps for x in r.records], where="post")
        axes[1].plot(t, [x.buffer_s for x in r.records], marker=".")
        video = [e for e in log.events if e["type"] == "request" and e.get("kind") == "video"]
        axes[2].plot([e["end_s"] for e in video],
                     [e["bytes"] * 8 / max(e["end_s"] - e["start_s"], 1e-6) / 1000 for e in video], marker=".")
        for e in log.events:
            if e["type"] == "stall_started":
                for ax in axes:
                    ax.axvline(e["t_s"], color="red", alpha=0.3)
    axes[0].set_ylabel("bitrate kbps")
    axes[1].set_ylabel("buffer s")
    axes[2].set_ylabel("throughput kbps")
    axes[2].set_xlabel("session time s (red: stalls)")
    fig.suptitle(title)
    data = _png(fig)
    plt.close(fig)
    return data


def comparison_figure(agg: dict[str, dict[str, Any]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("qoe_mean", "QoE"), ("bitrate_kbps_mean", "bitrate kbps"), ("rebuffer_s_mean", "rebuffer s"),
            ("startup_s_mean", "startup s"), ("download_s_p95", "download p95 s")]
    fig, axes = plt.subplots(1, len(keys), figsize=(13, 3))
    names = list(agg)
    for ax, (k, label) in zip(axes, keys, strict=True):
        ax.bar(names, [float(agg[n][k]) for n in names], color=["C0", "C1", "C2", "C3", "C4"][: len(names)])
        ax.set_title(label)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def write_html(logs: dict[str, list[SessionLog]], agg: dict[str, dict[str, Any]], path: Path,
               title: str = "abrstack player report", max_sessions: int = 6) -> Path:
    """One self-contained HTML page: the table, a per-group comparison, per-session plots."""
    parts = [f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:1em}"
             "img{max-width:100%}</style>",
             f"<h1>{html.escape(title)}</h1><pre>{html.escape(table(agg))}</pre>",
             f"<h2>Comparison</h2><img alt=comparison src='data:image/png;base64,{comparison_figure(agg)}'>"]
    shown = 0
    for group, sessions in logs.items():
        for i, s in enumerate(sessions):
            if shown >= max_sessions:
                break
            shown += 1
            cfg = s.config
            name = f"{group} #{i}: {cfg.get('abr')} over {cfg.get('protocol')}, trace {cfg.get('trace')}"
            err = f"<p style=color:red>{html.escape(s.error)}</p>" if s.error else ""
            parts.append(f"<h2>{html.escape(name)}</h2>{err}"
                         f"<img alt='{html.escape(name)}' src='data:image/png;base64,{session_figure(s, name)}'>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
    return path
