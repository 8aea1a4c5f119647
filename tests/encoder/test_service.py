"""The encoding job service over real HTTP, as a real process (restarts included)."""

import json
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.encoder.conftest import ABR


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.log = root / "service.log"
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*ABR, "encoder", "serve", "--port", str(self.port), "--inputs", str(self.root / "inputs"),
             "--media", str(self.root / "media")],
            stdout=subprocess.DEVNULL, stderr=self.log.open("a"), text=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("service did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def wait(self, job_id: str, states=("done", "failed", "cancelled"), timeout=90.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = httpx.get(f"{self.url}/jobs/{job_id}").json()
            if job["state"] in states:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} stuck in {job['state']}")


@pytest.fixture
def service(tmp_path, tiny_source):
    (tmp_path / "inputs").mkdir()
    shutil.copy(tiny_source, tmp_path / "inputs" / "tiny.mp4")
    (tmp_path / "secret.mp4").write_bytes(b"x")
    svc = Service(tmp_path)
    svc.start()
    yield svc
    svc.stop()


def test_job_runs_to_done_with_progress_and_publishes(service):
    r = httpx.post(f"{service.url}/jobs", json={"source": "tiny.mp4", "title": "a", "segment_s": 2})
    assert r.status_code == 202 and r.headers["Location"] == f"/jobs/{r.json()['id']}"
    job = r.json()
    assert job["state"] == "queued" and job["progress"] == 0.0
    seen = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        cur = httpx.get(f"{service.url}/jobs/{job['id']}").json()
        seen.add(cur["state"])
        if cur["state"] == "done":
            break
        time.sleep(0.05)
    assert "running" in seen and cur["state"] == "done" and cur["progress"] == 1.0
    assert (service.root / "media" / "a" / "master.m3u8").exists()
    listing = httpx.get(f"{service.url}/jobs").json()["jobs"]
    assert [j["id"] for j in listing] == [job["id"]]


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"source": "../secret.mp4", "title": "x"}, 400, "outside the inputs folder"),
        ({"source": "/etc/passwd", "title": "x"}, 400, "relative name"),
        ({"source": "nope.mp4", "title": "x"}, 404, "not in the inputs folder"),
        ({"source": "tiny.mp4", "title": "../x"}, 400, "not allowed"),
        ({"source": "tiny.mp4", "title": "x", "ladder": [{"height": 240}]}, 400, "bitrate_kbps"),
        ({"source": "tiny.mp4", "title": "x", "codec": "h266"}, 400, "unknown codec"),
        ({"source": "tiny.mp4", "title": "x", "codec": "h264,h264"}, 400, "names a codec twice"),
        ({"source": "tiny.mp4", "title": "x", "audio_lang": "xx"}, 400, "unknown language code 'xx' in 'audio_lang'"),
        ({"source": "tiny.mp4", "title": "x", "audio_lang": 3}, 400, "'audio_lang' must be a string"),
        ({"source": "tiny.mp4", "title": "x", "codec": ["h264"]}, 400, "'codec' must be a string"),
        ({"source": "tiny.mp4", "title": "x", "ladder": 7}, 400, "'ladder' must be"),
        ({"source": "tiny.mp4", "title": "ab\n"}, 400, "not allowed"),
        ({"source": "tiny.mp4", "title": "x", "ladder": [{"height": 100 + i, "bitrate_kbps": 200}
                                                         for i in range(300)]}, 400, "too many"),
        ({"source": "tiny.mp4", "title": "x", "colour": "red"}, 400, "unknown key"),
        (["tiny.mp4"], 400, "JSON object"),
    ],
)
def test_bad_job_requests(service, body, status, words):
    r = httpx.post(f"{service.url}/jobs", json=body)
    assert r.status_code == status and words in r.json()["error"]
    assert httpx.get(f"{service.url}/jobs").json()["jobs"] == []


def test_non_video_source_and_existing_title_are_refused_at_submit(service):
    (service.root / "inputs" / "bad.mp4").write_bytes(b"\x00" * 1000)
    r = httpx.post(f"{service.url}/jobs", json={"source": "bad.mp4", "title": "b"})
    assert r.status_code == 400 and "'bad.mp4' is not a readable video file" in r.json()["error"]
    assert str(service.root) not in r.json()["error"]
    (service.root / "media" / "b").mkdir(parents=True)
    r = httpx.post(f"{service.url}/jobs", json={"source": "tiny.mp4", "title": "b"})
    assert r.status_code == 409 and '"force": true' in r.json()["error"] and "--force" not in r.json()["error"]
    assert httpx.get(f"{service.url}/jobs").json()["jobs"] == []


def test_failed_encode_reports_the_reason_in_api_terms(service):
    jobs = [httpx.post(f"{service.url}/jobs", json={"source": "tiny.mp4", "title": "b", "segment_s": 2}).json()
            for _ in range(2)]
    assert service.wait(jobs[0]["id"])["state"] == "done"
    done = service.wait(jobs[1]["id"])
    assert done["state"] == "failed" and "already exists" in done["error"], done
    assert '"force": true' in done["error"] and "--force" not in done["error"]
    failed = httpx.get(f"{service.url}/jobs", params={"state": "failed"}).json()["jobs"]
    assert [j["id"] for j in failed] == [jobs[1]["id"]]
    assert [j["id"] for j in httpx.get(f"{service.url}/jobs?state=done").json()["jobs"]] == [jobs[0]["id"]]
    r = httpx.get(f"{service.url}/jobs?state=finished")
    assert r.status_code == 400 and "'state'" in r.json()["error"]
    iso = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
    assert all(iso.fullmatch(done[k]) for k in ("created", "started", "finished")), done
    assert httpx.delete(f"{service.url}/jobs/{jobs[1]['id']}").status_code == 204
    assert httpx.get(f"{service.url}/jobs/{jobs[1]['id']}").status_code == 404
    assert not (service.root / "media" / ".jobs" / f"{jobs[1]['id']}.json").exists()
    assert [j["id"] for j in httpx.get(f"{service.url}/jobs").json()["jobs"]] == [jobs[0]["id"]]


def test_access_log_is_one_json_line_per_request(service):
    httpx.get(f"{service.url}/jobs?state=done")
    httpx.get(f"{service.url}/jobs/nope")
    time.sleep(0.2)
    lines = [json.loads(ln) for ln in service.log.read_text().splitlines() if ln.startswith("{")]
    by_path = {(d["method"], d["path"], d["status"]) for d in lines}
    assert {("GET", "/jobs", 200), ("GET", "/jobs/nope", 404)} <= by_path
    assert all(isinstance(d["ts"], float) and d["duration_ms"] >= 0 for d in lines)


def test_custom_ladder_job(service):
    ladder = [{"height": 180, "bitrate_kbps": 200}]
    job = httpx.post(f"{service.url}/jobs", json={"source": "tiny.mp4", "title": "c", "ladder": ladder}).json()
    assert service.wait(job["id"])["state"] == "done"
    doc = json.loads((service.root / "media" / "c" / "title.json").read_text())
    assert [r["id"] for r in doc["renditions"]] == ["180p", "audio"]


def test_cancel_a_running_job_leaves_no_title(service):
    job = httpx.post(f"{service.url}/jobs", json={"source": "tiny.mp4", "title": "d", "segment_s": 1}).json()
    service.wait(job["id"], states=("running",))
    r = httpx.delete(f"{service.url}/jobs/{job['id']}", timeout=40)
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    time.sleep(0.3)
    media = service.root / "media"
    assert not (media / "d").exists() and not list(media.glob(".tmp-*"))
    assert httpx.delete(f"{service.url}/jobs/{job['id']}").status_code == 204  # now forgotten
    assert httpx.delete(f"{service.url}/jobs/{job['id']}").status_code == 404


def test_restart_loses_no_job(service):
    url = service.url
    first = httpx.post(f"{url}/jobs", json={"source": "tiny.mp4", "title": "e1", "segment_s": 1}).json()
    second = httpx.post(f"{url}/jobs", json={"source": "tiny.mp4", "title": "e2"}).json()
    service.wait(first["id"], states=("running",))
    service.kill()  # SIGKILL: no chance to clean up; the child encode dies with it
    state = json.loads((service.root / "media" / ".jobs" / f"{first['id']}.json").read_text())
    assert state["state"] == "running"
    service.start()
    for job in (first, second):
        done = service.wait(job["id"])
        assert done["state"] == "done", done
    assert (service.root / "media" / "e1" / "title.json").exists()
    assert (service.root / "media" / "e2" / "title.json").exists()
    again = httpx.get(f"{service.url}/jobs/{first['id']}").json()
    assert again["attempts"] == 2 and again["restarts"] == 1
    assert again["note"] == "restarted from 0% after the service stopped"
    assert httpx.get(f"{service.url}/jobs/{second['id']}").json()["restarts"] == 0
    assert not [p for p in (service.root / "media").iterdir() if p.name.startswith(".tmp-")]


def test_deeply_nested_or_huge_bodies_are_refused(service):
    deep = '{"source": "tiny.mp4", "title": "x", "ladder": ' + "[" * 100_000 + "]" * 100_000 + "}"
    r = httpx.post(f"{service.url}/jobs", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than 65536 bytes" in r.json()["error"]
    r = httpx.post(f"{service.url}/jobs", content="[" * 20_000 + "]" * 20_000)
    assert r.status_code == 400 and "nested too deeply" in r.json()["error"]
    assert httpx.get(f"{service.url}/jobs").json()["jobs"] == []


def test_a_job_whose_title_was_published_before_a_crash_is_done_after_restart(tmp_path, tiny_title,
                                                                             tiny_source):
    (tmp_path / "inputs").mkdir()
    shutil.copy(tiny_source, tmp_path / "inputs" / "tiny.mp4")
    media = tmp_path / "media"
    shutil.copytree(tiny_title.path, media / "p")
    doc = json.loads((media / "p" / "title.json").read_text())
    (media / "p" / "title.json").write_text(json.dumps({**doc, "job_id": "0123456789ab"}))
    (media / ".jobs").mkdir()
    job = {"id": "0123456789ab", "source": "tiny.mp4", "title": "p", "ladder": "default",
           "segment_s": 2.0, "codec": "h264", "quality": False, "force": False, "state": "running",
           "progress": 0.95, "error": None, "attempts": 1, "created": time.time(),
           "started": time.time(), "finished": None}
    (media / ".jobs" / "0123456789ab.json").write_text(json.dumps(job))
    svc = Service(tmp_path)
    svc.start()
    try:
        done = svc.wait("0123456789ab")
    finally:
        svc.stop()
    assert done["state"] == "done" and done["error"] is None, done
