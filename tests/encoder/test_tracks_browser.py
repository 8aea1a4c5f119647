"""Headless Chromium with hls.js and dash.js on a title with two audio languages and a
subtitle track, served by a real origin: both players list both languages, switching
changes what the browser decodes (the tone's pitch, measured with Web Audio), and the
subtitle cue is active at its time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from origin.server import DEFAULT_NODE_MODULES
from origin.testing import running_origin
from tests.encoder.test_tracks import make_tracks_source

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists() or not (DEFAULT_NODE_MODULES / "hls.js").is_dir(),
                       reason="needs Debian chromium and `npm install` (make setup system-deps)"),
]

# A page script: start the player, expose its tracks, and measure the dominant frequency
# of the decoded audio (an AnalyserNode on the <video>).
SETUP = """
async ([kind, url]) => {
  const video = document.createElement('video');
  video.muted = false; video.autoplay = true; video.playsInline = true;
  document.body.appendChild(video);
  const ctx = new AudioContext();
  const src = ctx.createMediaElementSource(video);
  const an = ctx.createAnalyser(); an.fftSize = 4096;
  src.connect(an); an.connect(ctx.destination);
  window.t = {video, kind, errors: []};
  window.t.pitch = () => {
    const bins = new Float32Array(an.frequencyBinCount); an.getFloatFrequencyData(bins);
    let best = 0; for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    return best * ctx.sampleRate / an.fftSize;
  };
  if (kind === 'hls') {
    const hls = new Hls({subtitleDisplay: true});
    hls.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) window.t.errors.push(d.details); });
    hls.loadSource(url); hls.attachMedia(video);
    window.t.audio = () => hls.audioTracks.map(a => ({name: a.name, lang: a.lang, channels: a.channels}));
    window.t.current = () => hls.audioTracks[hls.audioTrack]?.lang;
    window.t.choose = (lang) => { hls.audioTrack = hls.audioTracks.findIndex(a => a.lang === lang && a.channels !== '6'); };
    window.t.subs = () => hls.subtitleTracks.map(s => s.lang);
    window.t.showSubs = (lang) => { hls.subtitleTrack = hls.subtitleTracks.findIndex(s => s.lang === lang); };
  } else {
    const p = dashjs.MediaPlayer().create();
    p.on('error', (e) => window.t.errors.push(String(e.error && e.error.message || e.error)));
    p.initialize(video, url, true);
    window.t.audio = () => p.getTracksFor('audio').map(a => ({name: (a.labels[0] || {}).text, lang: a.lang,
      channels: (a.audioChannelConfiguration[0] || {}).value}));
    window.t.current = () => (p.getCurrentTrackFor('audio') || {}).lang;
    window.t.choose = (lang) => p.setCurrentTrack(p.getTracksFor('audio').find(a => a.lang === lang &&
      (a.audioChannelConfiguration[0] || {}).value !== '6'));
    window.t.subs = () => p.getTracksFor('text').map(s => s.lang);
    window.t.showSubs = (lang) => { p.enableText(true);
      p.setCurrentTrack(p.getTracksFor('text').find(s => s.lang === lang)); };
  }
  video.play().catch(() => {}); ctx.resume();
}
"""

CUES = """() => Array.from(window.t.video.textTracks).flatMap(tt =>
  Array.from(tt.activeCues || []).map(c => c.text))"""


@pytest.fixture(scope="module")
def tracks_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from encoder.encode import EncodeConfig, encode

    d = tmp_path_factory.mktemp("tracks-browser")
    src = make_tracks_source(d / "src.mp4", seconds=8)
    encode(EncodeConfig(source=src, title="langs", media_dir=d / "media", segment_s=2.0,
                        ladder=str(_ladder(d)), progress="none"))
    with running_origin(d / "media") as url:
        yield url


def _ladder(d: Path) -> Path:
    p = d / "ladder.json"
    p.write_text('[{"height": 90, "bitrate_kbps": 150}]')
    return p


def _wait(page: Any, script: str, ok: Any, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = page.evaluate(script)
        errors = page.evaluate("() => window.t.errors")
        assert errors == [], errors
        if ok(value):
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out; last {value!r}")


@pytest.mark.parametrize("player", ["hls", "dash"])
def test_languages_switch_and_subtitles_show(tracks_origin: str, player: str) -> None:
    from playwright.sync_api import sync_playwright

    manifest = "master.m3u8" if player == "hls" else "manifest.mpd"
    lib = "hls.min.js" if player == "hls" else "dash.all.min.js"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{tracks_origin}/healthz")
            page.add_script_tag(url=f"{tracks_origin}/static/vendor/{lib}")
            page.evaluate(SETUP, [player, f"{tracks_origin}/media/langs/{manifest}"])
            tracks = _wait(page, "() => window.t.audio()", lambda v: len(v) >= 2)
            langs = {t["lang"] for t in tracks}
            assert {"en", "fr"} <= langs, tracks
            assert {t["name"] for t in tracks} >= {"English", "French"}, tracks
            assert _wait(page, "() => window.t.current()", lambda v: v is not None) == "en"
            # the default (English) plays the 440 Hz tone
            _wait(page, "() => window.t.video.currentTime", lambda v: v > 0.5)
            assert abs(_wait(page, "() => window.t.pitch()", lambda v: abs(v - 440) < 30) - 440) < 30
            page.evaluate("() => window.t.choose('fr')")
            _wait(page, "() => window.t.current()", lambda v: v == "fr")
            # French is 660 Hz: the decoded audio changed
            assert abs(_wait(page, "() => window.t.pitch()", lambda v: abs(v - 660) < 30,
                             timeout_s=20) - 660) < 30
            assert "en" in _wait(page, "() => window.t.subs()", lambda v: len(v) >= 1)
            page.evaluate("() => { window.t.showSubs('en'); window.t.video.currentTime = 4.2; }")
            cues = _wait(page, CUES, lambda v: len(v) > 0, timeout_s=20)
            t = page.evaluate("() => window.t.video.currentTime")
            assert cues == ["Second line of the test"] and 4.0 <= t <= 6.0, (cues, t)
        finally:
            browser.close()
