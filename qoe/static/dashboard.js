// abrstack QoE dashboard: polls the aggregator's JSON API and draws its series as SVG line
// charts (our own few lines, no chart library, no CDN). State for tests: window.qoeDashboard.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const NS = "http://www.w3.org/2000/svg";
  const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
  const state = { dimension: "title", updates: 0, api: null, history: null, error: null };
  window.qoeDashboard = state;

  const colourOf = (values, v) => COLOURS[values.indexOf(v) % COLOURS.length];
  const fmt = (x, digits, unit) => (x == null ? "–" : Number(x).toFixed(digits) + (unit || ""));

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, String(v)));
    if (text != null) node.textContent = text;
    return node;
  }

  // One line per series; gaps (null) split a line. x: seconds before now; y: 0..max.
  function chart(svg, t, series, values, scale) {
    const W = 480, H = 200, L = 44, R = 8, T = 8, B = 22;
    svg.textContent = "";
    let max = 0;
    values.forEach((v) => series[v].forEach((y) => { if (y != null) max = Math.max(max, y * scale); }));
    max = max > 0 ? max * 1.1 : 1;
    const t0 = t.length ? t[0] : 0, t1 = t.length ? t[t.length - 1] : 1;
    const x = (ti) => L + (W - L - R) * (t1 > t0 ? (ti - t0) / (t1 - t0) : 1);
    const y = (v) => H - B - (H - T - B) * (v / max);
    svg.appendChild(el("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    svg.appendChild(el("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
    svg.appendChild(el("text", { x: 2, y: T + 10 }, max.toPrecision(3)));
    svg.appendChild(el("text", { x: 2, y: H - B }, "0"));
    svg.appendChild(el("text", { x: L, y: H - 6 }, t.length ? "-" + Math.round(t1 - t0) + " s" : ""));
    svg.appendChild(el("text", { x: W - R - 24, y: H - 6 }, "now"));
    values.forEach((v) => {
      let points = [];
      const flush = () => {
        if (points.length) {
          const line = el("polyline", { points: points.join(" "), stroke: colourOf(values, v) });
          line.dataset.series = v;
          svg.appendChild(line);
        }
        points = [];
      };
      series[v].forEach((val, i) => {
        if (val == null) flush();
        else points.push(x(t[i]).toFixed(1) + "," + y(val * scale).toFixed(1));
      });
      flush();
    });
  }

  function draw() {
    const h = state.history, api = state.api, dim = state.dimension;
    if (!h || !api) return;
    const by = h.by[dim] || {};
    const values = Object.keys(by).sort();
    const pick = (k) => Object.fromEntries(values.map((v) => [v, by[v][k]]));
    chart($("chart-active"), h.t, pick("active"), values, 1);
    chart($("chart-bitrate"), h.t, pick("bitrate_bps"), values, 1e-6);
    chart($("chart-rebuffer"), h.t, pick("rebuffer_ratio"), values, 100);
    $("dim-name").textContent = dim;
    const rows = $("rows");
    rows.textContent = "";
    const now = api.by[dim] || {};
    Object.keys(now).sort().forEach((v) => {
      const f = now[v];
      const tr = document.createElement("tr");
      tr.dataset.value = v;
      const first = document.createElement("td");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = values.includes(v) ? colourOf(values, v) : "#ccc";
      first.append(sw, v);
      tr.appendChild(first);
      [f.active, f.sessions, f.ended, fmt(f.bitrate_bps == null ? null : f.bitrate_bps / 1e6, 2, " Mbit/s"),
       fmt(f.buffer_s, 1, " s"), f.stalls, fmt(f.rebuffer_ratio == null ? null : f.rebuffer_ratio * 100, 2, " %"),
       fmt(f.startup_mean_s, 2, " s"), f.switches, f.errors].forEach((text) => {
        const td = document.createElement("td");
        td.textContent = String(text);
        tr.appendChild(td);
      });
      rows.appendChild(tr);
    });
    const all = api.all;
    $("summary").textContent = all && all.sessions
      ? all.active + " active of " + all.sessions + " sessions · bitrate " +
        fmt(all.bitrate_bps == null ? null : all.bitrate_bps / 1e6, 2, " Mbit/s") + " · rebuffer " +
        fmt(all.rebuffer_ratio == null ? null : all.rebuffer_ratio * 100, 2, " %") + " · startup " +
        fmt(all.startup_mean_s, 2, " s")
      : "waiting for beacons…";
    $("bus").textContent = api.bus.connected ? "bus connected (group " + api.bus.group + ")" : "bus unreachable";
  }

  async function update() {
    try {
      const [api, history] = await Promise.all(["api/qoe", "api/qoe/history"].map(
        (u) => fetch(u, { cache: "no-store" }).then((r) => r.json())));
      state.api = api;
      state.history = history;
      state.error = null;
      state.updates += 1;
      draw();
      setTimeout(update, Math.max(500, (history.interval_s || 2) * 1000));
    } catch (err) {
      state.error = String(err);
      setTimeout(update, 2000);
    }
  }

  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => {
    state.dimension = b.dataset.dim;
    document.querySelectorAll("#tabs button").forEach((o) => o.classList.toggle("on", o === b));
    draw();
  }));
  update();
})();
