"""Atomic publish: a failure at any point leaves no partial title and keeps an existing one."""

import json
import os
import signal
import stat
import subprocess
import sys

import pytest

from encoder.ffmpeg import ffmpeg_exe
from tests.encoder.conftest import ABR, run_abr


def _encode(src, media, *extra, env=None):
    return subprocess.run(
        [*ABR, "encode", str(src), "--title", "t", "--media", str(media), "--segment-s", "2",
         "--progress", "none", *extra],
        capture_output=True, text=True, timeout=180, env=env,
    )


def _created(media):
    return json.loads((media / "t" / "title.json").read_text())["created"]


def test_existing_title_is_kept_without_force_and_replaced_with_it(sources, tmp_path):
    assert _encode(sources["small"], tmp_path).returncode == 0
    before = sorted(p.name for p in (tmp_path / "t").rglob("*"))
    marker = tmp_path / "t" / "marker"
    marker.write_text("old")
    out = _encode(sources["small"], tmp_path)
    assert out.returncode == 1 and "already exists" in out.stderr and "--force" in out.stderr
    assert marker.exists()
    out = _encode(sources["portrait"], tmp_path, "--force")
    assert out.returncode == 0, out.stderr
    assert not marker.exists()
    doc = json.loads((tmp_path / "t" / "title.json").read_text())
    assert doc["source"]["file"] == "portrait.mp4"
    assert sorted(p.name for p in (tmp_path / "t").rglob("*")) != before
    assert [p.name for p in tmp_path.iterdir()] == ["t"]  # no temporary folders left


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_encode_leaves_no_partial_title_and_keeps_the_old_one(tiny_source, tmp_path, sig):
    assert _encode(tiny_source, tmp_path).returncode == 0
    old = _created(tmp_path)
    proc = subprocess.Popen(
        [*ABR, "encode", str(tiny_source), "--title", "t", "--media", str(tmp_path), "--force",
         "--progress", "plain"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert first.startswith("encode t:")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert _created(tmp_path) == old
    assert [p.name for p in tmp_path.iterdir()] == ["t"]


def test_ffmpeg_failure_such_as_a_full_disk_leaves_nothing(sources, tmp_path):
    # The outside world fails: an ffmpeg that writes its output, then reports a full disk.
    fake = tmp_path / "ffmpeg"
    fake.write_text(
        f"#!/bin/sh\n{ffmpeg_exe()} \"$@\"\necho 'Error writing trailer: No space left on device' >&2\nexit 1\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    media = tmp_path / "media"
    out = _encode(sources["small"], media, env={**os.environ, "ABR_FFMPEG": str(fake)})
    assert out.returncode == 1
    assert "no space left on the device" in out.stderr and "Traceback" not in out.stderr
    assert list(media.iterdir()) == []


def test_stale_temporary_folders_of_dead_encodes_are_removed(sources, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".tmp-t-{dead}-abc123"
    (stale / "r0").mkdir(parents=True)
    assert run_abr("encode", str(sources["small"]), "--title", "t", "--media", str(tmp_path),
                   "--progress", "none").returncode == 0
    assert not stale.exists()


@pytest.mark.parametrize("name", ["ab\n", "ab\r\n", "\nab"])
def test_title_names_with_a_newline_are_refused_by_encoder_and_origin(name):
    from encoder.errors import PublishError
    from encoder.publish import check_title_name
    from origin.media import is_title_name

    with pytest.raises(PublishError, match="not allowed"):
        check_title_name(name)
    assert not is_title_name(name)
    assert is_title_name("ab")


def test_published_title_is_readable_by_other_users(tiny_title):
    folder = tiny_title.path
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    for p in folder.rglob("*"):
        assert stat.S_IMODE(p.stat().st_mode) == (0o755 if p.is_dir() else 0o644), p
