"""Chunked encodes when things go wrong, on real LocalClusters with worker processes: a
worker killed mid-chunk, a chunk that fails on every retry, Ctrl-C, a worker that cannot
see the media folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import av
import pytest

from abrstack.cluster import ClusterError, check_shared_path, open_client
from encoder.encode import EncodeConfig, encode
from tests.encoder.conftest import lavfi

ROOT = Path(__file__).resolve().parents[2]


def _chunk_ffmpegs(source: Path) -> list[tuple[int, int]]:
    """(pid, parent pid) of every running chunk ffmpeg of `source` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if b"-copyts" in argv and str(source).encode() in argv:
            found.append((int(entry.name), int(stat.rsplit(")", 1)[1].split()[1])))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lavfi(tmp_path_factory.mktemp("faults") / "src.mp4", "testsrc2=size=640x360:rate=30",
                 seconds=16)


def _frames(folder: Path, doc: dict[str, Any]) -> int:
    r = next(r for r in doc["renditions"] if r["kind"] == "video")
    track = folder / "track.mp4"
    track.write_bytes((folder / r["init"]).read_bytes() + b"".join(
        (folder / s["uri"]).read_bytes() for s in r["segments"]))
    try:
        with av.open(str(track)) as f:
            return sum(1 for _ in f.decode(video=0))
    finally:
        track.unlink()


def test_worker_killed_mid_chunk_is_retried(source: Path, tmp_path: Path) -> None:
    media = tmp_path / "media"
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["doc"] = encode(EncodeConfig(source=source, title="t", media_dir=media,
                                                segment_s=2.0, chunks="4", workers=2, progress="none"))
        except BaseException as exc:  # reported below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        running = _chunk_ffmpegs(source)
        if running:
            ffmpeg, worker = running[0]
            os.kill(worker, signal.SIGKILL)  # the worker process dies mid-chunk
            killed = ffmpeg
        time.sleep(0.05)
    thread.join(timeout=120)
    assert killed is not None, "no chunk ffmpeg was seen"
    assert "error" not in result, result.get("error")
    assert not _alive(killed), "the dead worker's ffmpeg kept running"
    assert _frames(media / "t", result["doc"]) == 16 * 30
    assert [p.name for p in media.iterdir()] == ["t"]  # no chunk folders left


def test_chunk_failing_every_retry_fails_the_encode(source: Path, tmp_path: Path) -> None:
    """The source vanishes after the first chunk started: later chunks fail on every try."""
    src = tmp_path / "src.mp4"
    src.write_bytes(source.read_bytes())
    media = tmp_path / "media"
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            encode(EncodeConfig(source=src, title="t", media_dir=media, segment_s=2.0, chunks="4",
                                workers=1, progress="none"))
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not _chunk_ffmpegs(src) and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    src.unlink()
    thread.join(timeout=120)
    error = result.get("error")
    assert isinstance(error, ClusterError), error
    text = str(error)
    assert text.startswith("encode task chunk ") and "failed after 2 retries" in text, text
    assert "\n" not in text
    assert not (media / "t").exists()
    assert list(media.iterdir()) == []  # no partial title, no chunk folders


def test_ctrl_c_cancels_the_chunks(source: Path, tmp_path: Path) -> None:
    media = tmp_path / "media"
    proc = subprocess.Popen([sys.executable, "-m", "abrstack", "encode", str(source), "--title", "t",
                             "--media", str(media), "--chunks", "4", "--workers", "2",
                             "--progress", "none"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    deadline = time.monotonic() + 60
    while not _chunk_ffmpegs(source) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in err, err
    deadline = time.monotonic() + 10
    while _chunk_ffmpegs(source) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _chunk_ffmpegs(source) == []
    assert not (media / "t").exists()
    assert [p for p in media.iterdir() if p.name.startswith(".tmp-")] == []


def test_shared_path_must_be_the_same_folder(tmp_path: Path) -> None:
    """A worker whose media folder is another folder at the same path (a private tmpfs in
    its own mount namespace) is named."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -m is not allowed here")
    media = tmp_path / "media"
    media.mkdir()
    bin_dir = Path(sys.executable).parent
    with open_client("local", workers=1) as client:
        address = client.scheduler.address
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        worker = subprocess.Popen(
            ["unshare", "-m", "sh", "-c", f"mount -t tmpfs none {media} && exec {bin_dir / 'dask'} "
             f"worker {address} --nthreads 1 --no-dashboard"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client.wait_for_workers(2, timeout=60)
            with pytest.raises(ClusterError, match="must be a shared folder every Dask worker can write"):
                check_shared_path(client, media)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
