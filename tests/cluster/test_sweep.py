"""`abr sim --scheduler`: a sweep on a LocalCluster and on command-line scheduler + workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from abrstack.cluster import open_client
from player_sim import model
from player_sim.sweep import run_sweep, run_sweep_cluster
from player_sim.traces import load_traces
from player_sim.video import load_video

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
BIN = Path(sys.executable).parent


def test_cluster_sweep_equals_jobs_1() -> None:
    video = load_video(str(DATA / "videos" / "envivio"))
    traces = load_traces([DATA / "traces" / "fcc"])[:24]
    m = model.pensieve()
    one = run_sweep(video, traces, ["bb", "bola", "robustmpc"], m, jobs=1)
    with open_client("local", workers=2, processes=True) as client:
        spread = run_sweep_cluster(client, video, traces, ["bb", "bola", "robustmpc"], m)
    for name in ("bb", "bola"):  # no state across sessions: exactly equal
        assert spread[name] == one[name]
    # robustMPC carries errors across sessions: the documented exception, as with --jobs
    assert len(spread["robustmpc"]) == len(one["robustmpc"]) == 24


def _abr(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "abrstack", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[str]:
    """`dask scheduler` and two `dask worker` processes started from the command line."""
    file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(file)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 30
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(2):
            procs.append(subprocess.Popen([str(BIN / "dask"), "worker", "--scheduler-file", str(file),
                                           "--nworkers", "1", "--nthreads", "1", "--no-dashboard"],
                                          env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        address = json.loads(file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_sim_on_command_line_cluster_equals_jobs_1(scheduler: str) -> None:
    common = ["sim", "--abr", "bb,bola", "--trace", str(DATA / "traces" / "fcc"), "--every", "20",
              "--json", "--quiet"]
    one = _abr(*common, "--jobs", "1")
    spread = _abr(*common, "--scheduler", scheduler)
    assert one.returncode == 0, one.stderr
    assert spread.returncode == 0, spread.stderr
    assert json.loads(spread.stdout) == json.loads(one.stdout)


def test_sim_bad_scheduler_is_one_sentence() -> None:
    out = _abr("sim", "--abr", "bb", "--every", "50", "--quiet", "--scheduler", "tcp://127.0.0.1:1")
    assert out.returncode == 1
    assert out.stderr.strip().startswith("abr sim: error: cannot reach the Dask scheduler")
    assert "Traceback" not in out.stderr
