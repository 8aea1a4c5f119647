"""The README's main command, end to end on a tiny sample."""

import re
import socket
import subprocess
import sys

import pytest


def _services_running(root) -> list[str]:
    """Command lines of live `abr origin` / `abr edge` processes with files under `root`."""
    from pathlib import Path

    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        text = [a.decode(errors="replace") for a in argv]
        if "abrstack" in text and ("origin" in text or "edge" in text) and any(str(root) in a for a in text):
            found.append(" ".join(text))
    return found


@pytest.mark.slow
def test_demo_encodes_serves_plays_over_h1_h2_h3_and_stops_everything(tmp_path):
    media, out = tmp_path / "media", tmp_path / "out"
    cmd = [sys.executable, "-m", "abrstack", "demo", "--media", str(media), "--out", str(out),
           "--duration", "8", "--size", "320x180", "--speed", "8"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    text = first.stdout
    assert "[1/4] making" in text and "[2/4] encoding" in text and "[3/4] starting" in text
    rows = {ln.split()[0]: ln.split() for ln in text.splitlines() if ln[:3] in ("h1 ", "h2 ", "h3 ")}
    assert set(rows) == {"h1", "h2", "h3"}
    assert all(r[1] == "1" and r[-1] == "0" for r in rows.values())  # one session each, none failed
    # a fair comparison: every protocol met the same (cold) cache, so the same hit ratio
    assert "every protocol on a cold cache" in text and "shield" in text
    assert len({r[-3] for r in rows.values()}) == 1, rows
    assert "'h1':" in text and "'h2':" in text and "'h3':" in text  # the edge logged every protocol
    assert (out / "report.html").stat().st_size > 10_000
    assert sorted(p.name for p in out.glob("session-*.json")) == [
        "session-h1-000.json", "session-h2-000.json", "session-h3-000.json"]
    assert _services_running(tmp_path) == []
    buses = re.findall(r"event bus redis://127.0.0.1:(\d+)/0 \(private, stopped at the end\)", text)
    assert len(buses) == 3, text  # one private redis-server per cold fleet, each stopped
    for port in buses:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0 and "title exists" in second.stdout


@pytest.mark.slow
def test_demo_stops_its_services_on_ctrl_c(tmp_path):
    import signal
    import time

    media = tmp_path / "media"
    proc = subprocess.Popen(
        [sys.executable, "-m", "abrstack", "demo", "--media", str(media), "--out", str(tmp_path / "out"),
         "--duration", "8", "--size", "320x180", "--speed", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("[4/4] h1"):
            break
    time.sleep(1.0)
    assert _services_running(tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert _services_running(tmp_path) == []
