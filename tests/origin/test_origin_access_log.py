"""The origin writes one JSON access-log line per request, like the edge."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
from origin_test_helpers import HandTitle
from test_origin_page import _start_cli, _wait_healthy


def test_json_access_log_per_request(hand_title: HandTitle, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    proc, url = _start_cli(["--media", str(hand_title.media_dir), "--port", "0",
                            "--access-log", str(log)])
    try:
        _wait_healthy(url)
        r = httpx.get(url + "/media/show/360p/seg-00001.m4s", headers={"Range": "bytes=0-99"})
        assert r.status_code == 206
        assert httpx.get(url + "/media/show/nope.m4s").status_code == 404
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    by_path = {x["path"]: x for x in lines}
    seg = by_path["/media/show/360p/seg-00001.m4s"]
    assert seg["status"] == 206 and seg["bytes"] == 100 and seg["method"] == "GET"
    assert seg["duration_ms"] >= 0 and seg["ts"] > 1.7e9
    assert by_path["/media/show/nope.m4s"]["status"] == 404
