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


def test_ctrl_c_stops_the_chunks_on_a_standing_cluster(scheduler: str, tmp_path: Path) -> None:  # noqa: F811
    """The workers outlive the client: the abort flag must stop their ffmpegs, long before
    their 22-s chunks of 720p would end by themselves."""
    import signal

    from tests.cluster.test_chunk_faults import _chunk_ffmpegs

    src = lavfi(tmp_path / "src.mp4", "testsrc2=size=1280x720:rate=30", seconds=45)
    media = tmp_path / "media"
    proc = subprocess.Popen([sys.executable, "-m", "abrstack", "encode", str(src), "--title", "t",
                             "--media", str(media), "--chunks", "2", "--scheduler", scheduler,
                             "--progress", "none"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 60
    while not _chunk_ffmpegs(src) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.5)
    interrupted = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in err, err
    deadline = interrupted + 3  # measured: ~0.6 s with the abort flag
    while _chunk_ffmpegs(src) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _chunk_ffmpegs(src) == [], "a worker's chunk ffmpeg kept running after Ctrl-C"
    assert not (media / "t").exists()
