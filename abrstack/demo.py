"""`abr demo`: the README's main command on a built-in sample.

Today: make a sample source (once), encode it into `media/sample`, print the title's
summary. Later steps (origin, edge, players, QoE report) join as those parts land.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="sample -> encode -> summary (the README's main command)")
    p.add_argument("--media", type=Path, default=Path("media"), help="media folder (default media)")
    p.add_argument("--duration", type=float, default=30.0, help="sample length in seconds (default 30)")
    p.add_argument("--size", default="1280x720", help="sample size (default 1280x720)")
    p.add_argument("--title", default="sample", help="title name (default sample)")
    p.add_argument("--fresh", action="store_true", help="remake the sample and re-encode")
    p.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from encoder.cli import summary
    from encoder.encode import EncodeConfig, encode
    from encoder.sample import make_sample, parse_size

    size = parse_size(args.size)
    source = args.media / "sources" / f"{args.title}-{args.size}-{args.duration:g}s.mp4"
    if args.fresh or not source.exists():
        print(f"[1/2] making a {args.duration:g}-s {args.size} sample: {source}", flush=True)
        make_sample(source, args.duration, size)
    else:
        print(f"[1/2] sample exists: {source}", flush=True)
    folder = args.media / args.title
    doc_path = folder / "title.json"
    if args.fresh or not doc_path.exists() or json.loads(doc_path.read_text())["source"]["file"] != source.name:
        print(f"[2/2] encoding {source} -> {folder}", flush=True)
        doc = encode(EncodeConfig(source=source, title=args.title, media_dir=args.media, force=True))
    else:
        print(f"[2/2] title exists: {folder} (--fresh re-encodes)", flush=True)
        doc = json.loads(doc_path.read_text())
    print(summary(doc, folder))
    return 0
