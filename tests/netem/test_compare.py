"""`--compare`: the statistics (pure) and a real comparison over the emulated link."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from player_sim.compare import interval, schedule, summarise, verdicts
from player_sim.netem import root_missing


def test_interval_uses_student_t() -> None:
    i = interval([1.0, 2.0, 3.0])
    assert i.mean == 2.0 and i.n == 3
    assert i.half_width == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert math.isinf(interval([5.0]).half_width)


def test_schedule_alternates() -> None:
    assert schedule(["h1", "h2", "h3"], 3) == ["h1", "h2", "h3", "h3", "h2", "h1", "h1", "h2", "h3"]


def test_verdicts_say_when_a_difference_is_inside_the_noise() -> None:
    row = {"bitrate_kbps_mean": 1, "rebuffer_s_mean": 0, "startup_s_mean": 1}
    close = summarise({"h1": [{**row, "qoe_per_chunk": q} for q in (1.0, 1.2, 0.9)],
                       "h2": [{**row, "qoe_per_chunk": q} for q in (1.1, 1.0, 1.05)]})
    assert "inside the noise" in verdicts(close)[0]
    apart = summarise({"h1": [{**row, "qoe_per_chunk": q} for q in (1.0, 1.01, 0.99)],
                       "h2": [{**row, "qoe_per_chunk": q} for q in (2.0, 2.01, 1.99)]})
    assert "h2 higher beyond the noise" in verdicts(apart)[0]


def test_bad_compare_lists_are_one_sentence() -> None:
    for bad in ("h1", "h1,h4", "h1,h1"):
        r = subprocess.run([sys.executable, "-m", "abrstack", "play", "https://127.0.0.1:9/x.m3u8", "--compare", bad],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "--compare takes" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(root_missing() is not None, reason=root_missing() or "")
def test_compare_h1_h3_over_the_emulated_link(tiny_title: Any, tmp_path: Path) -> None:
    from abrstack.stack import running_stack

    trace = tmp_path / "8mbit.mahi"
    trace.write_text("".join(f"{t}\n{t}\n" for t in range(3, 3001, 3)))
    out = tmp_path / "out"
    with running_stack(tiny_title.media_dir, tmp_path / "stack") as stack:
        r = subprocess.run([sys.executable, "-m", "abrstack", "play",
                            f"{stack.edge_https}/media/{tiny_title.name}/master.m3u8", "--compare", "h1,h3",
                            "--sessions", "2", "--emulate", str(trace), "--delay-ms", "10", "--insecure",
                            "--speed", "4", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "cache: warm" in r.stdout and "h1 vs h3" in r.stdout
    doc = json.loads((out / "compare.json").read_text())
    assert {p: len(v) for p, v in doc["samples"].items()} == {"h1": 2, "h3": 2}
    assert doc["stats"]["h1"]["qoe_per_chunk"]["n"] == 2
    assert list(out.glob("compare-*.png"))
    assert sorted(p.name for p in (out / "sessions").iterdir()) == ["000-h1", "001-h3", "002-h3", "003-h1", "warmup"]


def test_compare_with_in_client_shaping(tiny_title: Any, tmp_path: Path) -> None:
    from abrstack.stack import running_stack

    trace = tmp_path / "const.json"
    trace.write_text('[{"duration_ms": 600000, "bandwidth_kbps": 3000, "latency_ms": 20}]')
    with running_stack(tiny_title.media_dir, tmp_path / "stack") as stack:
        r = subprocess.run([sys.executable, "-m", "abrstack", "play",
                            f"{stack.edge_https}/media/{tiny_title.name}/master.m3u8", "--compare", "h1,h2",
                            "--sessions", "2", "--trace", str(trace), "--cacert", str(stack.certfile),
                            "--speed", "4", "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "comparison on const.json" in r.stdout and "h1 vs h2" in r.stdout
    doc = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert {p: len(v) for p, v in doc["samples"].items()} == {"h1": 2, "h2": 2}
