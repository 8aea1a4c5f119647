"""`--encrypt clearkey`: CENC samples (checked in the bytes and by decrypting with ffmpeg),
the key kept outside the title and never served by the origin, the bearer-token key server,
and EME ClearKey playback in Chromium with dash.js and hls.js."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from encoder.encode import EncodeConfig, encode
from encoder.encrypt import ClearKey, license_response, parse_hex16
from encoder.ffmpeg import ffmpeg_exe
from encoder.service import ServiceConfig, make_app
from origin.server import DEFAULT_NODE_MODULES
from origin.testing import running_app, running_origin
from tests.encoder.conftest import run_abr
from tests.encoder.test_tracks import make_tracks_source

KEY = "00112233445566778899aabbccddeeff"
KID = "0123456789abcdef0123456789abcdef"
TOKEN = "s3cret-token-of-the-test"
CHROMIUM = "/usr/bin/chromium"


def _b64url(hexstr: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(hexstr)).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("enc")
    src = make_tracks_source(d / "src.mp4", seconds=4, subtitles=None)
    (d / "ladder.json").write_text('[{"height": 90, "bitrate_kbps": 150}]')
    doc = encode(EncodeConfig(source=src, title="locked", media_dir=d / "media", segment_s=2.0,
                              ladder=str(d / "ladder.json"), progress="none", encrypt="clearkey",
                              key=KEY, kid=KID))
    return d / "media", doc


def test_key_options_are_checked():
    assert parse_hex16(KID, "--kid") == bytes.fromhex(KID)
    assert parse_hex16("01234567-89ab-cdef-0123-456789abcdef", "--kid") == bytes.fromhex(KID)
    key = ClearKey(bytes.fromhex(KID), bytes.fromhex(KEY))
    answer = license_response({"kids": [_b64url(KID)], "type": "temporary"}, key)
    assert answer == {"keys": [{"kty": "oct", "kid": _b64url(KID), "k": _b64url(KEY)}], "type": "temporary"}
    assert license_response({"kids": [_b64url("ff" * 16)]}, key) is None


@pytest.mark.parametrize(("args", "words"), [
    (("--encrypt", "clearkey", "--key", "0011"), "--key must be 32 hex digits (16 bytes, AES-128); got 4"),
    (("--encrypt", "clearkey", "--kid", "zz" * 16), "--kid must be 32 hex digits (16 bytes); 'zzzz"),
    (("--key", KEY), "--key, --kid and --license-url need --encrypt clearkey"),
])
def test_bad_keys_get_one_sentence_and_nothing_is_written(tmp_path, args, words):
    src = make_tracks_source(tmp_path / "src.mp4", seconds=1, subtitles=None)
    out = run_abr("encode", str(src), "--title", "x", "--media", str(tmp_path / "m"), *args)
    assert out.returncode == 1 and words in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").iterdir())


def test_samples_are_cenc_encrypted_and_decrypt_with_the_key(encrypted):
    media, doc = encrypted
    folder = media / "locked"
    assert doc["encryption"] == {"scheme": "cenc", "system": "org.w3.clearkey",
                                 "kid": "01234567-89ab-cdef-0123-456789abcdef", "license_url": None}
    for r in doc["renditions"]:
        init = (folder / r["init"]).read_bytes()
        assert (b"encv" if r["kind"] == "video" else b"enca") in init
        assert b"schm" in init and b"cenc" in init and b"tenc" in init and bytes.fromhex(KID) in init
        joined = folder / f"{r['id']}.mp4"
        joined.write_bytes(b"".join((folder / u).read_bytes()
                                    for u in [r["init"], *(s["uri"] for s in r["segments"])]))
        ok = subprocess.run([ffmpeg_exe(), "-v", "error", "-decryption_key", KEY, "-i", str(joined),
                             "-f", "null", "-"], capture_output=True, text=True, timeout=60)
        joined.unlink()
        assert ok.returncode == 0 and ok.stderr == "", ok.stderr
    master = (folder / "master.m3u8").read_text()
    assert '#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES-CTR,KEYFORMAT="org.w3.clearkey"' in master
    media_pl = (folder / doc["renditions"][0]["playlist"]).read_text()
    assert f"KEYID=0x{KID}" in media_pl and media_pl.index("EXT-X-KEY") < media_pl.index("EXT-X-MAP")
    mpd = (folder / "manifest.mpd").read_text()
    assert 'cenc:default_KID="01234567-89ab-cdef-0123-456789abcdef"' in mpd
    assert mpd.count("urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e") == 3  # video + 2 audio sets


def test_the_key_is_kept_outside_the_title_and_never_served(encrypted):
    media, doc = encrypted
    path = media / ".keys" / "locked" / f"{doc['version']}.json"
    assert json.loads(path.read_text())["key"] == KEY and path.stat().st_mode & 0o777 == 0o600
    for f in (media / "locked").rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert bytes.fromhex(KEY) not in data and KEY.encode() not in data, f
    with running_origin(media) as url:
        for p in (f"/media/.keys/locked/{doc['version']}.json", "/media/locked/../.keys/locked",
                  "/media/%2ekeys/locked"):
            assert httpx.get(url + p).status_code in (400, 404), p


@pytest.fixture(scope="module")
def key_server(encrypted: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    media, _ = encrypted
    inputs = tmp_path_factory.mktemp("inputs")
    app = make_app(ServiceConfig(inputs=inputs, media=media, state=tmp_path_factory.mktemp("state"),
                                 key_token=TOKEN))
    with running_app(app) as url:
        yield url


def test_key_server_wants_the_bearer_token(key_server):
    body = {"kids": [_b64url(KID)], "type": "temporary"}
    assert httpx.post(f"{key_server}/keys/locked", json=body).status_code == 401
    r = httpx.post(f"{key_server}/keys/locked", json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.post(f"{key_server}/keys/locked", json=body, headers=auth)
    assert r.status_code == 200 and r.json()["keys"][0]["k"] == _b64url(KEY)
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Access-Control-Allow-Origin"] == "*"
    assert httpx.post(f"{key_server}/keys/locked", json={"kids": [_b64url("ff" * 16)]}, headers=auth).status_code == 404
    assert httpx.post(f"{key_server}/keys/nope", json=body, headers=auth).status_code == 404
    assert httpx.post(f"{key_server}/keys/locked", content=b"{", headers=auth).status_code == 400
    assert httpx.options(f"{key_server}/keys/locked").status_code == 204


PLAY = """
async ([kind, url, licence, token]) => {
  const video = document.createElement('video');
  video.muted = true; video.autoplay = true; document.body.appendChild(video);
  window.t = {video, errors: []};
  if (kind === 'hls') {
    const hls = new Hls({emeEnabled: true, drmSystems: {'org.w3.clearkey': {licenseUrl: licence}},
      licenseXhrSetup: (xhr, url) => { xhr.open('POST', url, true);
        xhr.setRequestHeader('Authorization', 'Bearer ' + token); xhr.setRequestHeader('Content-Type', 'application/json'); }});
    hls.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) window.t.errors.push(d.details + ' ' + (d.error && d.error.message)); });
    hls.loadSource(url); hls.attachMedia(video);
  } else {
    const p = dashjs.MediaPlayer().create();
    p.setProtectionData({'org.w3.clearkey': {serverURL: licence,
      httpRequestHeaders: {Authorization: 'Bearer ' + token}}});
    p.on('error', (e) => window.t.errors.push(JSON.stringify(e.error)));
    p.initialize(video, url, true);
  }
  video.play().catch(() => {});
}
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists() or not (DEFAULT_NODE_MODULES / "hls.js").is_dir(),
                    reason="needs Debian chromium and `npm install` (make setup system-deps)")
@pytest.mark.parametrize("player", ["hls", "dash"])
def test_chromium_plays_through_eme_clearkey(encrypted, key_server, player):
    from playwright.sync_api import sync_playwright

    media, _ = encrypted
    manifest = "master.m3u8" if player == "hls" else "manifest.mpd"
    lib = "hls.min.js" if player == "hls" else "dash.all.min.js"
    with running_origin(media) as origin, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                                           "--autoplay-policy=no-user-gesture-required"])
        try:
            page = browser.new_page()
            page.goto(f"{origin}/healthz")
            page.add_script_tag(url=f"{origin}/static/vendor/{lib}")
            page.evaluate(PLAY, [player, f"{origin}/media/locked/{manifest}", f"{key_server}/keys/locked", TOKEN])
            deadline, state = time.monotonic() + 30, {}
            while time.monotonic() < deadline:
                state = page.evaluate("() => ({t: window.t.video.currentTime, errors: window.t.errors,"
                                      " keys: !!window.t.video.mediaKeys})")
                if state["errors"] or state["t"] > 2.5:
                    break
                time.sleep(0.25)
            assert state["errors"] == [] and state["t"] > 2.5 and state["keys"], state
        finally:
            browser.close()


def test_a_failed_encode_leaves_neither_title_nor_key(tmp_path):
    import threading

    from encoder.errors import Cancelled

    src = make_tracks_source(tmp_path / "src.mp4", seconds=3, subtitles=None)
    stop = threading.Event()
    stop.set()  # ffmpeg is stopped as soon as it starts, after the key was stored
    with pytest.raises(Cancelled):
        encode(EncodeConfig(source=src, title="gone", media_dir=tmp_path / "m", progress="none",
                            encrypt="clearkey"), cancel=stop)
    assert not (tmp_path / "m" / "gone").exists()
    assert list((tmp_path / "m" / ".keys").rglob("*.json")) == []
