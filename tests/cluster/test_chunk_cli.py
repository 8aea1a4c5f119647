"""Chunked encodes on a `dask scheduler` with two `dask worker` processes started from the
command line: `abr encode --chunks --scheduler` and `abr encoder serve --scheduler`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.cluster.test_sweep import scheduler  # noqa: F401  (the command-line cluster)
from tests.encoder.conftest import lavfi
from tests.encoder.test_service import _free_port

ROOT = Path(__file__).resolve().parents[2]


def _abr(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "abrstack", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_encode_on_command_line_cluster(scheduler: str, tmp_path: Path) -> None:  # noqa: F811
    src = lavfi(tmp_path / "src.mp4", "testsrc2=size=320x180:rate=30", seconds=8)
    media = tmp_path / "media"
    one = _abr("encode", str(src), "--title", "one", "--media", str(media), "--segment-s", "2",
               "--progress", "none", "--json")
    out = _abr("encode", str(src), "--title", "t", "--media", str(media), "--segment-s", "2",
               "--progress", "none", "--chunks", "2", "--scheduler", scheduler, "--json")
    assert one.returncode == 0, one.stderr
    assert out.returncode == 0, out.stderr
    docs = [json.loads(one.stdout), json.loads(out.stdout)]
    durations = [[s["duration_s"] for s in d["renditions"][0]["segments"]] for d in docs]
    assert durations[0] == durations[1] == [2.0, 2.0, 2.0, 2.0]
    assert "encoded in 2 chunks on Dask" in docs[1]["notes"]


def test_encode_needs_the_work_to_spread(tmp_path: Path) -> None:
    out = _abr("encode", "x.mp4", "--title", "t", "--media", str(tmp_path), "--scheduler", "local")
    assert out.returncode == 1
    assert "--scheduler needs --chunks or --ladder per-title" in out.stderr
    assert "Traceback" not in out.stderr


def test_service_jobs_fan_out_on_the_cluster(scheduler: str, tmp_path: Path) -> None:  # noqa: F811
    inputs, media = tmp_path / "inputs", tmp_path / "media"
    inputs.mkdir()
    lavfi(inputs / "src.mp4", "testsrc2=size=320x180:rate=30", seconds=4)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "abrstack", "encoder", "serve", "--port", str(port),
                             "--inputs", str(inputs), "--media", str(media), "--scheduler", scheduler],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "service did not start"
                time.sleep(0.1)
        job = httpx.post(f"{url}/jobs", json={"source": "src.mp4", "title": "t", "segment_s": 2}).json()
        deadline = time.monotonic() + 120
        while job["state"] not in ("done", "failed", "cancelled"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
            job = httpx.get(f"{url}/jobs/{job['id']}").json()
        assert job["state"] == "done", job
        doc = json.loads((media / "t" / "title.json").read_text())
        assert "encoded in 1 chunk on Dask" in doc["notes"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
