// abrstack player page: plays one title with hls.js or dash.js and shows what the ABR does.
// State for humans is in the page; state for tests is on window.abrPlayer.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("config").textContent);
  const video = document.getElementById("video");
  const $ = (id) => document.getElementById(id);

  const state = {
    player: config.player,
    title: config.title,
    manifestUrl: config.manifestUrl,
    state: "loading",        // loading | playing | waiting | paused | ended | error
    renditions: [],          // [{index, id, width, height, bitrateBps, codecs}] from the player
    currentRendition: null,  // index into renditions (video)
    currentRenditionId: null,
    bufferS: 0,              // seconds buffered ahead of currentTime
    bandwidthBps: null,      // the player's own throughput estimate
    currentTime: 0,
    switches: 0,
    errors: [],              // fatal errors; empty while all is well
    warnings: [],            // non-fatal player errors (recovered by the player)
  };
  window.abrPlayer = state;
  let probe = null;  // () => {bandwidthBps, level}, set once the library is started

  function fmtBps(bps) {
    if (bps == null || !isFinite(bps)) return "–";
    return bps >= 1e6 ? (bps / 1e6).toFixed(2) + " Mbit/s" : (bps / 1e3).toFixed(0) + " kbit/s";
  }

  function fail(message) {
    state.errors.push(String(message));
    state.state = "error";
    $("error").hidden = false;
    $("error").textContent = "Error: " + state.errors.join("; ");
    refresh();
  }

  function setRenditions(list) {
    state.renditions = list;
    const body = $("renditions");
    body.textContent = "";
    list.forEach((r) => {
      const row = document.createElement("tr");
      row.dataset.index = String(r.index);
      row.dataset.id = r.id == null ? "" : String(r.id);
      const res = r.width && r.height ? r.width + "x" + r.height : "–";
      [r.index, r.id, res, fmtBps(r.bitrateBps), r.codecs || ""].forEach((text) => {
        const cell = document.createElement("td");
        cell.textContent = text == null ? "" : String(text);
        row.appendChild(cell);
      });
      body.appendChild(row);
    });
    body.dataset.count = String(list.length);
  }

  function setCurrent(index) {
    if (index == null || index < 0 || index === state.currentRendition) return;
    if (state.currentRendition !== null) state.switches += 1;
    state.currentRendition = index;
    const r = state.renditions[index];
    state.currentRenditionId = r ? r.id : String(index);
  }

  function bufferAhead() {
    const t = video.currentTime;
    for (let i = 0; i < video.buffered.length; i++) {
      if (video.buffered.start(i) <= t + 0.1 && t <= video.buffered.end(i)) {
        return video.buffered.end(i) - t;
      }
    }
    return 0;
  }

  // The names the user gave the rungs are in title.json (the catalog), not in the HLS
  // master playlist (EXT-X-STREAM-INF has no NAME, RFC 8216 4.3.4.2): find a level's
  // rendition by its playlist URL, else by its size.
  const catalogVideo = config.renditions.filter((r) => r.kind === "video");
  function catalogRendition(url, width, height) {
    let path = "";
    try { path = url ? new URL(url, location.href).pathname : ""; } catch (_) { path = ""; }
    return catalogVideo.find((r) => r.playlist_url && path && path.endsWith(r.playlist_url)) ||
      catalogVideo.find((r) => r.width === width && r.height === height) || null;
  }

  // --- hls.js --------------------------------------------------------------------------
  function startHls() {
    if (!window.Hls || !window.Hls.isSupported()) {
      fail("hls.js is not supported in this browser (no Media Source Extensions)");
      return null;
    }
    const Hls = window.Hls;
    const hls = new Hls({ enableWorker: true });
    hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
      setRenditions(data.levels.map((l, i) => ({
        index: i,
        id: (catalogRendition(l.url || l.uri, l.width, l.height) || {}).id ||
          l.name || (l.height ? Math.min(l.width || l.height, l.height) + "p" : String(i)),
        width: l.width, height: l.height, bitrateBps: l.bitrate,
        codecs: [l.videoCodec, l.audioCodec].filter(Boolean).join(","),
      })));
      video.play().catch((err) => state.warnings.push("play(): " + err));
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => setCurrent(data.level));
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (data.fatal) fail("hls.js " + data.type + ": " + data.details);
      else state.warnings.push(data.details);
    });
    hls.loadSource(config.manifestUrl);
    hls.attachMedia(video);
    return () => ({ bandwidthBps: hls.bandwidthEstimate, level: hls.currentLevel });
  }

  // --- dash.js -------------------------------------------------------------------------
  function startDash() {
    if (!window.dashjs) {
      fail("dash.js did not load");
      return null;
    }
    const events = window.dashjs.MediaPlayer.events;
    const player = window.dashjs.MediaPlayer().create();
    const videoReps = () => player.getRepresentationsByType("video") || [];
    player.on(events.STREAM_INITIALIZED, () => {
      setRenditions(videoReps().map((r, i) => ({
        index: i, id: r.id, width: r.width, height: r.height,
        bitrateBps: r.bandwidth, codecs: r.codecs,
      })));
    });
    player.on(events.QUALITY_CHANGE_RENDERED, (e) => {
      if (e.mediaType !== "video" || !e.newRepresentation) return;
      const index = state.renditions.findIndex((r) => r.id === e.newRepresentation.id);
      setCurrent(index);
    });
    player.on(events.ERROR, (e) => {
      const err = e && e.error ? e.error : e;
      // 27 (DOWNLOAD_ERROR_ID_CONTENT): a media segment failed after dash.js's retries; dash.js
      // then blacklists that BaseURL's serviceLocation and goes on from the next one (content
      // steering, several edges), so it is a warning; if nothing is left, playback stalls.
      if (err && err.code === 27) {
        state.warnings.push("dash.js error 27: " + (err.message || ""));
        return;
      }
      fail("dash.js error " + (err && err.code !== undefined ? err.code + ": " : "") +
           (err && err.message ? err.message : JSON.stringify(err)));
    });
    player.on(events.PLAYBACK_ERROR, (e) => fail("dash.js playback error: " + JSON.stringify(e.error)));
    player.initialize(video, config.manifestUrl, true);
    return () => {
      let rep = null;
      try { rep = player.getCurrentRepresentationForType("video"); } catch (_) { rep = null; }
      const kbps = player.getAverageThroughput("video");
      const level = rep ? state.renditions.findIndex((r) => r.id === rep.id) : null;
      return { bandwidthBps: kbps && isFinite(kbps) ? kbps * 1000 : null, level: level };
    };
  }

  // Before the player parses its manifest, show the catalog's renditions.
  setRenditions(config.renditions.filter((r) => r.kind === "video").map((r, i) => ({
    index: i, id: r.id, width: r.width, height: r.height, bitrateBps: r.bitrate_bps, codecs: r.codecs,
  })));
  state.renditions = [];  // the player's own list replaces these once loaded

  probe = config.player === "dash" ? startDash() : startHls();

  video.addEventListener("error", () => {
    const err = video.error;
    fail("media element error " + (err ? err.code + " " + (err.message || "") : ""));
  });
  video.addEventListener("playing", () => { if (!state.errors.length) state.state = "playing"; });
  video.addEventListener("waiting", () => { if (!state.errors.length) state.state = "waiting"; });
  video.addEventListener("pause", () => { if (!state.errors.length && !video.ended) state.state = "paused"; });
  video.addEventListener("ended", () => { if (!state.errors.length) state.state = "ended"; });

  function refresh() {
    state.currentTime = video.currentTime;
    state.bufferS = bufferAhead();
    if (probe) {
      const now = probe();
      if (now.bandwidthBps) state.bandwidthBps = now.bandwidthBps;
      if (now.level != null && now.level >= 0 && state.currentRendition === null) setCurrent(now.level);
    }
    const r = state.renditions[state.currentRendition];
    $("status").textContent = state.state;
    $("status").dataset.state = state.state;
    $("current-rendition").textContent = r
      ? r.id + (r.height ? " (" + r.width + "x" + r.height + ", " + fmtBps(r.bitrateBps) + ")" : "")
      : "–";
    $("position").textContent = state.currentTime.toFixed(1) + " s";
    $("buffer").textContent = state.bufferS.toFixed(1) + " s";
    $("bandwidth").textContent = fmtBps(state.bandwidthBps);
    $("switches").textContent = String(state.switches);
    document.querySelectorAll("#renditions tr").forEach((row) => {
      row.classList.toggle("current", row.dataset.index === String(state.currentRendition));
    });
  }
  setInterval(refresh, 250);
  refresh();

  // --- QoE beacons ------------------------------------------------------------------------
  // The session's totals so far (schema: abrstack/beacons.py) go to the serving host's
  // /beacon: the first one with fetch() (a text/plain POST, never preflighted), to learn
  // whether the host takes beacons at all (an origin or an edge without --redis answers 4xx or
  // 503, and beacons stop); then every beaconIntervalS s and at the end (ended, pagehide) with
  // navigator.sendBeacon, which the browser delivers even while the page goes away.
  const t0 = performance.now();
  const qoe = {
    sessionId: Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join(""),
    seq: 0, startupS: null, stalls: 0, stallS: 0, stallSince: null,
    sent: 0, status: null, off: false, finalSent: false, probing: false,
  };
  state.beacon = qoe;
  const nowS = () => (performance.now() - t0) / 1000;
  function protocol() {
    const hops = performance.getEntriesByType("resource").filter((e) => e.name.includes(".m4s"));
    const hop = hops.length ? hops[hops.length - 1].nextHopProtocol : "";
    return hop === "h3" || hop === "h2" ? hop : hop === "http/1.1" || hop === "http/1.0" ? "h1" : "unknown";
  }
  function beaconBody(final) {
    const r = state.renditions[state.currentRendition];
    const ongoing = qoe.stallSince === null ? 0 : nowS() - qoe.stallSince;
    const body = {
      session_id: qoe.sessionId, title: config.title, abr: config.player === "dash" ? "dash.js" : "hls.js",
      protocol: protocol(), seq: qoe.seq++, bitrate_bps: r && r.bitrateBps ? r.bitrateBps : 0,
      buffer_s: Math.min(86400, state.bufferS), stalls: qoe.stalls, stall_s: qoe.stallS + ongoing,
      startup_s: qoe.startupS, switches: state.switches, errors: state.errors.length,
      played_s: video.currentTime || 0, final: final,
    };
    if (state.errors.length) body.error = state.errors[state.errors.length - 1].slice(0, 200);
    return JSON.stringify(body);
  }
  function sendBeacon(final) {
    if (qoe.off || qoe.finalSent || qoe.status === null) return;
    if (final) qoe.finalSent = true;
    if (navigator.sendBeacon(config.beaconUrl, beaconBody(final))) qoe.sent += 1;
  }
  function firstBeacon(final) {
    qoe.probing = true;
    if (final) qoe.finalSent = true;
    fetch(config.beaconUrl, { method: "POST", body: beaconBody(final), keepalive: true,
                              headers: { "content-type": "text/plain;charset=UTF-8" } })
      .then((resp) => {
        qoe.status = resp.status;
        qoe.probing = false;
        if (!resp.ok) { qoe.off = true; return; }
        qoe.sent += 1;
        setInterval(() => sendBeacon(false), Math.max(1, config.beaconIntervalS) * 1000);
        if (video.ended) sendBeacon(true);
      })
      .catch(() => { qoe.off = true; qoe.probing = false; });
  }
  // A session that fails reports it (its first beacon may be its final one).
  setInterval(() => {
    if (!state.errors.length || qoe.off || qoe.finalSent || qoe.probing) return;
    if (qoe.status === null) firstBeacon(true); else sendBeacon(true);
  }, 1000);
  video.addEventListener("playing", () => {
    if (qoe.startupS === null) {
      qoe.startupS = nowS();
      if (qoe.status === null && !qoe.probing) firstBeacon(false);
    } else if (qoe.stallSince !== null) {
      qoe.stallS += nowS() - qoe.stallSince;
      qoe.stallSince = null;
    }
  });
  video.addEventListener("waiting", () => {
    if (qoe.startupS !== null && qoe.stallSince === null && !video.seeking) {
      qoe.stalls += 1;
      qoe.stallSince = nowS();
    }
  });
  video.addEventListener("ended", () => sendBeacon(true));
  window.addEventListener("pagehide", () => sendBeacon(true));
})();
