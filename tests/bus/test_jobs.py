"""The `jobs` work queue: `abr encoder serve --redis` and `abr encoder worker` processes on a real
redis-server. A worker SIGKILLed mid-encode: another runs the job again, the title is published
once and complete; cancel reaches the worker running a job."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from abrstack.bus import Event, connect
from abrstack.events import TITLES
from abrstack.redisproc import RedisServer
from encoder.sample import make_sample
from encoder.verify import verify_title

ABR = [sys.executable, "-m", "abrstack"]
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PYTHONUNBUFFERED": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of 1280x720: four rungs, a few seconds of encoding on a loaded machine."""
    out = tmp_path_factory.mktemp("jobsrc") / "s.mp4"
    make_sample(out, 4.0, (1280, 720), 30, True, progress="none")
    return out


class Queue:
    """A job service and its workers, as real processes on one redis-server."""

    def __init__(self, root: Path, redis: RedisServer, source: Path) -> None:
        self.root, self.redis = root, redis
        (root / "inputs").mkdir()
        os.link(source, root / "inputs" / "s.mp4")
        self.media = root / "media"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.start("serve", [*ABR, "encoder", "serve", "--port", str(self.port), "--inputs",
                             str(root / "inputs"), "--media", str(self.media), "--redis", redis.url])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("service did not start")

    def start(self, name: str, argv: list[str]) -> None:
        log = (self.root / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=log, env=ENV)

    def worker(self, name: str, *extra: str) -> None:
        self.start(name, [*ABR, "encoder", "worker", "--redis", self.redis.url, "--media",
                          str(self.media), "--inputs", str(self.root / "inputs"), "--name", name,
                          "--visibility-s", "2", *extra])

    def post(self, **body: Any) -> dict[str, Any]:
        r = httpx.post(f"{self.url}/jobs", json={"source": "s.mp4", "segment_s": 2, **body})
        assert r.status_code == 202, r.text
        return dict(r.json())

    def wait(self, job_id: str, check: Any, timeout: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = httpx.get(f"{self.url}/jobs/{job_id}").json()
            if check(job):
                return dict(job)
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} never got there: {job}")

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            proc.wait(timeout=30)


@pytest.fixture
def queue(tmp_path: Path, redis_server: RedisServer, source: Path) -> Iterator[Queue]:
    q = Queue(tmp_path, redis_server, source)
    yield q
    q.close()


def _title_events(url: str) -> list[Event]:
    async def read() -> list[Event]:
        r = connect(url)
        entries = await r.xrange(TITLES)
        await r.aclose()
        return [Event.decode(f[b"e"]) for _i, f in entries]
    return asyncio.run(read())


def _running(job: dict[str, Any]) -> bool:
    return bool(job["state"] == "running" and job["progress"] > 0)


def test_a_worker_killed_mid_encode_its_job_runs_again_elsewhere_and_publishes_once(
        queue: Queue) -> None:
    queue.worker("w1")
    queue.worker("w2")
    job = queue.post(title="a")
    running = queue.wait(job["id"], _running)
    victim = running["worker"]
    assert victim in ("w1", "w2") and running["attempts"] == 1
    queue.procs[victim].send_signal(signal.SIGKILL)
    queue.procs[victim].wait()
    done = queue.wait(job["id"], lambda j: j["state"] in ("done", "failed", "cancelled"))
    other = "w2" if victim == "w1" else "w1"
    assert done["state"] == "done" and done["worker"] == other, done
    assert done["attempts"] == 2 and done["restarts"] == 1 and done["progress"] == 1.0
    assert f"reclaimed from worker {victim}" in done["note"]
    doc = json.loads((queue.media / "a" / "title.json").read_text())
    assert doc["job_id"] == job["id"]
    verify_title(queue.media / "a", doc)  # complete: every playlist and segment is there
    assert [len(r["segments"]) for r in doc["renditions"] if r["kind"] == "video"] == [2] * 4
    assert len(doc["renditions"]) == 5  # 720p, 480p, 360p, 240p, audio
    assert not list(queue.media.glob(".tmp-*"))
    events = _title_events(queue.redis.url)
    assert [(e.type, e.id, e.data["version"]) for e in events] == [
        ("title.published", f"job-{job['id']}", doc["version"])]


def test_cancel_reaches_the_worker_and_it_takes_the_next_job(queue: Queue) -> None:
    queue.worker("w1")
    first = queue.post(title="c1")
    second = queue.post(title="c2")  # queued behind it
    queue.wait(first["id"], _running)
    r = httpx.delete(f"{queue.url}/jobs/{first['id']}", timeout=40)
    assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
    assert r.json()["worker"] == "w1" and r.json()["cancel_requested"] is True
    done = queue.wait(second["id"], lambda j: j["state"] == "done")
    assert done["worker"] == "w1" and done["attempts"] == 1
    assert not (queue.media / "c1").exists() and not list(queue.media.glob(".tmp-*"))
    assert [e.data["title"] for e in _title_events(queue.redis.url)] == ["c2"]
    third = queue.post(title="c3")  # a queued job is cancelled at once, no worker involved
    queue.procs["w1"].terminate()
    queue.procs["w1"].wait(timeout=30)
    r = httpx.delete(f"{queue.url}/jobs/{third['id']}", timeout=40)
    assert r.status_code == 200 and r.json()["state"] in ("cancelled", "queued"), r.text
    listing = {j["id"]: j["state"] for j in httpx.get(f"{queue.url}/jobs").json()["jobs"]}
    assert listing[first["id"]] == "cancelled" and listing[second["id"]] == "done"


def test_a_job_whose_workers_keep_dying_fails_after_max_attempts(queue: Queue) -> None:
    queue.worker("w1", "--max-attempts", "1")
    job = queue.post(title="m")
    queue.wait(job["id"], _running)
    queue.procs["w1"].send_signal(signal.SIGKILL)
    queue.procs["w1"].wait()
    queue.worker("w2", "--max-attempts", "1")
    failed = queue.wait(job["id"], lambda j: j["state"] == "failed")
    assert "gave up after 1 attempts" in failed["error"]
    assert not (queue.media / "m").exists() and not list(queue.media.glob(".tmp-*"))

    async def dead() -> list[dict[bytes, bytes]]:
        r = connect(queue.redis.url)
        entries = await r.xrange("jobs.dead")
        await r.aclose()
        return [f for _i, f in entries]
    (entry,) = asyncio.run(dead())
    assert entry[b"reason"] == b"job failed: too many attempts"
    assert Event.decode(entry[b"e"]).data["job"] == job["id"]


def test_failed_job_and_bad_worker_arguments(queue: Queue) -> None:
    (queue.root / "other").mkdir()  # this worker's storage lacks the service's source
    queue.start("w1", [*ABR, "encoder", "worker", "--redis", queue.redis.url, "--media",
                       str(queue.media), "--inputs", str(queue.root / "other"), "--name", "w1"])
    job = queue.post(title="f")
    failed = queue.wait(job["id"], lambda j: j["state"] in ("failed", "done"))
    assert failed["state"] == "failed" and failed["worker"] == "w1"
    assert failed["error"] == "source 's.mp4' is not in this worker's inputs folder"
    assert _title_events(queue.redis.url) == []
    for extra, words in ((["--inputs", str(queue.root / "nope")], "the inputs folder"),
                         (["--max-attempts", "0"], "--max-attempts must be at least 1"),
                         (["--visibility-s", "0"], "--visibility-s must be from 1 to 3600"),
                         (["--chunks", "x"], "--chunks 'x' is neither 'auto' nor a number"),
                         (["--scheduler", "nowhere"], "--scheduler 'nowhere' is neither")):
        bad = subprocess.run([*ABR, "encoder", "worker", "--redis", queue.redis.url, "--inputs",
                              str(queue.root / "inputs"), *extra], capture_output=True, text=True,
                             env=ENV, timeout=60)
        assert bad.returncode == 1 and words in bad.stderr and "Traceback" not in bad.stderr
    bad = subprocess.run([*ABR, "encoder", "serve", "--port", "0", "--redis", queue.redis.url,
                          "--inputs", str(queue.root / "inputs"), "--scheduler", "local"],
                         capture_output=True, text=True, env=ENV, timeout=60)
    assert bad.returncode == 1 and "give --chunks/--scheduler to `abr encoder worker`" in bad.stderr


def test_worker_passes_chunks_through_to_the_encode(queue: Queue) -> None:
    queue.worker("w1", "--chunks", "2", "--scheduler", "local")
    job = queue.post(title="k")
    done = queue.wait(job["id"], lambda j: j["state"] in ("failed", "done"), timeout=120)
    assert done["state"] == "done", done
    doc = json.loads((queue.media / "k" / "title.json").read_text())
    assert "encoded in 2 chunks on Dask" in doc["notes"]


def test_a_worker_stopped_with_sigterm_queues_its_job_again_at_once(queue: Queue) -> None:
    queue.worker("w1", "--visibility-s", "60")  # no reclaim within this test: a requeue it is
    job = queue.post(title="t")
    queue.wait(job["id"], _running)
    queue.procs["w1"].terminate()
    assert queue.procs["w1"].wait(timeout=30) == 0
    queued = httpx.get(f"{queue.url}/jobs/{job['id']}").json()
    assert queued["state"] == "queued" and queued["note"] == "worker w1 stopped; queued again"
    assert not list(queue.media.glob(".tmp-*"))
    queue.worker("w2", "--visibility-s", "60")
    done = queue.wait(job["id"], lambda j: j["state"] in ("done", "failed"), timeout=40)
    assert done["state"] == "done" and done["worker"] == "w2" and done["attempts"] == 2, done
    assert done["note"] == "worker w1 stopped; queued again"
    assert [e.data["title"] for e in _title_events(queue.redis.url)] == ["t"]
