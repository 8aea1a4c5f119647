"""The README's main command, end to end on a tiny sample."""

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_makes_a_sample_encodes_it_and_reuses_it(tmp_path):
    cmd = [sys.executable, "-m", "abrstack", "demo", "--media", str(tmp_path), "--duration", "3",
           "--size", "320x180"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "[1/2] making" in first.stdout and "[2/2] encoding" in first.stdout
    assert (tmp_path / "sample" / "master.m3u8").exists()
    assert "title sample:" in first.stdout
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and "title exists" in second.stdout
