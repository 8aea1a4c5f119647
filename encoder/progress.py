"""Progress of long jobs: a tqdm bar with ETA on a terminal, plain lines otherwise,
or JSON lines for the job service."""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any


class Progress:
    """Reports seconds done out of a known total. `mode`: bar, plain, json, none or auto."""

    def __init__(self, what: str, total_s: float, mode: str = "auto", stream: IO[str] | None = None):
        self.what = what
        self.total_s = max(total_s, 1e-6)
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "plain"
        self.mode = mode
        self._bar: Any = None
        self._last_step = -1
        self._start = time.monotonic()
        if mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(
                total=round(self.total_s, 1),
                desc=what,
                unit="s",
                file=self.stream,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]",
            )

    def update(self, done_s: float) -> None:
        done_s = min(max(done_s, 0.0), self.total_s)
        fraction = done_s / self.total_s
        if self._bar is not None:
            self._bar.n = round(done_s, 1)
            self._bar.refresh()
        elif self.mode == "plain":
            step = int(fraction * 10)
            if step > self._last_step:
                self._last_step = step
                elapsed = time.monotonic() - self._start
                eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
                eta_text = f", eta {eta:.0f} s" if fraction > 0 and step < 10 else ""
                print(f"{self.what}: {fraction:4.0%} ({done_s:.1f}/{self.total_s:.1f} s{eta_text})",
                      file=self.stream, flush=True)
        elif self.mode == "json":
            step = int(fraction * 100)
            if step > self._last_step:
                self._last_step = step
                print(json.dumps({"stage": self.what, "progress": round(fraction, 3)}),
                      file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
