"""The shell of ``abr play --compare``: run the schedule, collect summaries, report (see compare.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Callable
from copy import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

from player_sim import compare, play_report
from player_sim.errors import PlayerError
from player_sim.linkmodel import LinkConfig
from player_sim.player import PlayConfig, Session


def _report(args: argparse.Namespace, samples: dict[str, list[dict[str, Any]]], hits: dict[str, list[float]],
            label: str) -> int:
    stats = compare.summarise(samples)
    if len(stats) < len(samples) or any(len(v) < 2 for v in samples.values()):
        raise PlayerError("too many sessions failed for a comparison: need two per protocol")
    hit_ratio = {p: (sum(v) / len(v) if v else None) for p, v in hits.items()}
    print(f"comparison on {label}; cache: warm (one untimed warm-up session first), order alternating")
    print(compare.table(stats, hit_ratio))
    for line in compare.verdicts(stats):
        print(line)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        doc = {p: {m: vars(i) for m, i in row.items()} for p, row in stats.items()}
        (args.out / "compare.json").write_text(json.dumps({"label": label, "stats": doc, "samples": samples},
                                                          indent=2, default=str))
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", label)[:80]
        page = compare.plot(stats, args.out / f"compare-{slug}.png", f"protocols on {label}")
        print(f"plot: {page}", file=sys.stderr)
    return 0


def _collect(run_one: Callable[[str, int], dict[str, Any] | None], protocols: list[str], sessions: int,
             ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[float]]]:
    run_one(protocols[0], -1)  # warm-up: the cache state every measured session meets
    samples: dict[str, list[dict[str, Any]]] = {p: [] for p in protocols}
    hits: dict[str, list[float]] = {p: [] for p in protocols}
    for i, proto in enumerate(compare.schedule(protocols, sessions)):
        row = run_one(proto, i)
        if row is None:
            continue
        samples[proto].append({m: row[m] for m in compare.METRICS})
        if row.get("edge_hit_ratio") is not None:
            hits[proto].append(row["edge_hit_ratio"])
    return samples, hits


def run_shaped(args: argparse.Namespace, configs: list[PlayConfig], protocols: list[str]) -> int:
    """In-client shaping (the trace as ``--trace``)."""
    by_proto = dict(zip(protocols, configs, strict=True))

    def one(proto: str, i: int) -> dict[str, Any] | None:
        cfg = replace(by_proto[proto], session_id=f"{proto}-{i:03d}" if i >= 0 else "warmup")
        log = asyncio.run(Session(cfg).run())
        if log.error:
            print(f"{proto} session {i} failed: {log.error}", file=sys.stderr)
            return None
        return play_report.aggregate({proto: [log]})[proto]

    samples, hits = _collect(one, protocols, args.sessions)
    trace = configs[0].trace
    return _report(args, samples, hits, trace.name if trace is not None else "no trace (unshaped)")


def run_emulated(args: argparse.Namespace, link: LinkConfig, protocols: list[str]) -> int:
    """Each session over a fresh emulated link (the trace starts at its beginning every time)."""
    from player_sim import play_emulated

    base_out = args.out or Path(".")

    def one(proto: str, i: int) -> dict[str, Any] | None:
        a = copy(args)
        a.protocol, a.players, a.json, a.packet_log = proto, 1, False, None
        a.out = (base_out / "sessions" / (f"{i:03d}-{proto}" if i >= 0 else "warmup")).resolve()
        rc = play_emulated.run(a, link)
        summary = a.out / "summary.json"
        if rc != 0 or not summary.exists():
            print(f"{proto} session {i} failed (exit {rc})", file=sys.stderr)
            return None
        return dict(json.loads(summary.read_text())[proto])

    samples, hits = _collect(one, protocols, args.sessions)
    label = (f"{args.emulate.name} emulated, delay {link.delay_ms:g} ms, loss {link.loss:g}, "
             f"queue {link.queue_bytes or 'unbounded'} bytes {link.queue.value}")
    return _report(args, samples, hits, label)
