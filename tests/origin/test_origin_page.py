"""The player page and its assets (without a browser), and the `abr origin` command."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from origin_test_helpers import HandTitle

from origin.server import DEFAULT_NODE_MODULES
from origin.testing import running_origin

needs_npm = pytest.mark.skipif(
    not (DEFAULT_NODE_MODULES / "hls.js").is_dir(), reason="run `npm install` first"
)


@needs_npm
@pytest.mark.parametrize(
    ("player", "library"), [("hls", "hls.min.js"), ("dash", "dash.all.min.js")]
)
def test_player_page_uses_relative_urls(origin_url: str, player: str, library: str) -> None:
    r = httpx.get(origin_url + f"/play/show?player={player}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert f'src="../static/vendor/{library}"' in page
    assert '"manifestUrl": "../media/show/' in page
    assert 'id="renditions"' in page and 'id="status"' in page
    # relative only: no scheme, host or root-absolute URL in src/href attributes
    for url in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert not url.startswith(("/", "http:", "https:")), url
    for asset in re.findall(r'src="\.\./(static/[^"]+)"', page):
        got = httpx.get(f"{origin_url}/{asset}")
        assert got.status_code == 200 and got.headers["content-type"].startswith("text/javascript")
        assert len(got.content) > 1000


@needs_npm
def test_player_page_default_and_errors(origin_url: str) -> None:
    assert "hls.min.js" in httpx.get(origin_url + "/play/show").text
    bad = httpx.get(origin_url + "/play/show?player=flash")
    assert bad.status_code == 400 and "hls, dash" in bad.text
    missing = httpx.get(origin_url + "/play/nothing")
    assert missing.status_code == 404 and "nothing" in missing.text
    script = "<script>alert(1)</script>"
    assert script not in httpx.get(origin_url + "/play/" + script).text


def test_home_page_links_every_title(origin_url: str) -> None:
    r = httpx.get(origin_url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "href='play/show?player=hls'" in r.text and "href='play/show?player=dash'" in r.text
    assert "360p" in r.text


def test_missing_node_modules_gives_a_clear_page(hand_title: HandTitle, tmp_path: Path) -> None:
    with running_origin(hand_title.media_dir, node_modules=tmp_path / "none") as url:
        for path in ("/play/show", "/static/vendor/hls.min.js"):
            r = httpx.get(url + path)
            assert r.status_code == 503
            assert "npm install" in r.text and str(tmp_path / "none") in r.text
        assert httpx.get(url + "/static/vendor/other.js").status_code == 404
        assert httpx.get(url + "/static/player.js").status_code == 200


def test_cli_reports_a_missing_media_folder(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "abrstack",
            "origin",
            "--media",
            str(tmp_path / "nope"),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("abr origin: error: the media folder")
    assert "Traceback" not in done.stderr


def test_cli_reports_a_busy_port(hand_title: HandTitle) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "abrstack",
                "origin",
                "--media",
                str(hand_title.media_dir),
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.startswith(f"abr origin: error: cannot listen on 127.0.0.1:{port}")


def _start_cli(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "abrstack", "origin", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"on (http://[\d.]+:\d+)/", line)
    assert match, (line, proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
    return proc, match.group(1)


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


@pytest.mark.parametrize("workers", [1, 2])
def test_cli_serves_with_one_or_several_workers(hand_title: HandTitle, workers: int) -> None:
    proc, url = _start_cli(
        ["--media", str(hand_title.media_dir), "--port", "0", "--workers", str(workers)]
    )
    try:
        _wait_healthy(url)
        time.sleep(0.3 * (workers - 1))  # let the other workers bind
        # separate connections are spread over the workers; every one answers correctly
        for _ in range(10):
            with httpx.Client() as client:
                r = client.get(url + "/media/show/360p/seg-00001.m4s")
                assert r.status_code == 200 and r.content == hand_title.big
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert proc.returncode in (0, -signal.SIGTERM)


def test_no_such_title_page_links_back_to_the_catalog(origin_url: str) -> None:
    missing = httpx.get(origin_url + "/play/nothing")
    assert missing.status_code == 404
    hrefs = re.findall(r"href='([^']*)'", missing.text)
    assert hrefs == ["../"]
    home = httpx.get(httpx.URL(origin_url + "/play/nothing").join(hrefs[0]))
    assert home.status_code == 200 and "<h1>Titles</h1>" in home.text


def test_home_page_and_catalog_show_the_codec(origin_url: str) -> None:
    page = httpx.get(origin_url + "/").text
    assert "<th>codec</th>" in page and "<td>h264</td>" in page
    entry = httpx.get(origin_url + "/titles/show").json()
    assert entry["codec"] == "h264"
    assert [r["codec"] for r in entry["renditions"] if r["kind"] == "video"] == ["h264"]


@needs_npm
def test_player_page_shows_the_codec(origin_url: str) -> None:
    assert '<strong id="codec">h264</strong>' in httpx.get(origin_url + "/play/show").text


def _renamed_title(src: Path, media: Path, old: str, new: str) -> None:
    """A copy of an encoded title whose rung `old` is named `new` (as a ladder's "name")."""
    import json
    import shutil

    dest = media / "named"
    shutil.copytree(src, dest)
    version = json.loads((dest / "title.json").read_text())["version"]
    (dest / version / old).rename(dest / version / new)
    for name in ("title.json", "master.m3u8", "manifest.mpd"):
        path = dest / name
        path.write_text(path.read_text().replace(f"{old}/", f"{new}/").replace(f'"{old}"', f'"{new}"'))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists() or not (DEFAULT_NODE_MODULES / "hls.js").is_dir(),
                    reason="needs Debian chromium and `npm install`")
def test_hls_page_shows_the_names_the_ladder_gave(tiny_title, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    _renamed_title(tiny_title.path, tmp_path, "360p", "hd")
    with running_origin(tmp_path) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page()
            page.goto(f"{url}/play/named?player=hls")
            page.wait_for_function("() => window.abrPlayer.renditions.length > 0", timeout=30_000)
            ids = page.evaluate("() => window.abrPlayer.renditions.map((r) => r.id)")
            assert sorted(ids) == ["240p", "hd"]
            rows = page.locator("#renditions tr").all_inner_texts()
            assert any("\thd\t" in row for row in rows), rows
        finally:
            browser.close()
