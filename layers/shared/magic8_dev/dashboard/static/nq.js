/* magic8 dashboard — NQ price chart (5-minute candles) with the IFD signals on it, and the
 * gateway's Databento spend vs budget. Plain JS + SVG, no third-party code, no build step.
 *
 * Reads the same configuration as app.js (window.MAGIC8_CONFIG, else config.json: apiBase,
 * apiKey; a key the trader typed is in localStorage "magic8.apiKey"), and:
 *   GET /nq/bars                 the most recent session's 5-minute bars (the API picks it)
 *   GET /signals?since=&until=   the IFD signals of the bars' time range; each carries
 *                                `bias` (bullish | bearish), defined once in the runtime
 *                                package (magic8.domain.bias): buying calls / selling puts is
 *                                bullish, buying puts / selling calls is bearish
 *   GET /health/detailed         gateway.spend: the day's streaming and backfill spend vs budget
 * A bullish signal is a green triangle under its candle's low, a bearish one a red triangle
 * over its high, at the 5-minute bar of the signal's window; hover for the details.
 *
 * Elements the browser test checks: nq-chart, nq-candle, nq-signal-marker (data-bias),
 * spend-panel, spend-streaming, spend-backfill.
 */
(function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";
  var BAR_MS = 5 * 60 * 1000;
  var ET = "America/New_York";
  var REFRESH_MS = 10000;
  var KEY_STORE = "magic8.apiKey";
  var cfg = { apiBase: "/api", apiKey: "" };
  var state = { bars: [], signals: [], spend: null, range: null, error: "" };

  function svg(tag, attrs, parent, text) {
    var n = document.createElementNS(SVG_NS, tag);
    for (var k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) n.setAttribute(k, attrs[k]);
    if (text !== undefined) n.textContent = text;
    if (parent) parent.appendChild(n);
    return n;
  }
  function el(tag, attrs, parent, text) {
    var n = document.createElement(tag);
    for (var k in attrs) n.setAttribute(k, attrs[k]);
    if (text !== undefined) n.textContent = text;
    if (parent) parent.appendChild(n);
    return n;
  }
  function fmtTime(d, withDate) {
    var o = { timeZone: ET, hour: "2-digit", minute: "2-digit", hour12: false };
    if (withDate) { o.month = "short"; o.day = "numeric"; }
    return d.toLocaleString("en-US", o);
  }
  function fmtPx(v) { return Number(v).toFixed(2); }
  function usd(v) { return "$" + (isFinite(Number(v)) ? Number(v).toFixed(2) : "—"); }

  function api(path) {
    var headers = { accept: "application/json" };
    if (cfg.apiKey) headers["x-api-key"] = cfg.apiKey;
    return fetch(String(cfg.apiBase || "").replace(/\/+$/, "") + path, { headers: headers, cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error(path.split("?")[0] + ": HTTP " + r.status);
        return r.json();
      });
  }

  function loadConfig() {
    if (window.MAGIC8_CONFIG) return Promise.resolve(window.MAGIC8_CONFIG);
    return fetch("config.json", { cache: "no-store" }).then(function (r) { return r.ok ? r.json() : {}; })
      .catch(function () { return {}; });
  }

  // ------------------------------------------------------------------ data
  function loadBars() {
    return api("/nq/bars").then(function (resp) {
      state.bars = (resp.bars || []).map(function (b) {
        return { t: new Date(b.ts), o: +b.open, h: +b.high, l: +b.low, c: +b.close, v: +b.volume, complete: b.complete !== false };
      }).filter(function (b) { return !isNaN(b.t.getTime()) && isFinite(b.o + b.h + b.l + b.c); });
      state.range = state.bars.length ? {
        since: state.bars[0].t, until: new Date(state.bars[state.bars.length - 1].t.getTime() + BAR_MS),
      } : null;
    });
  }
  function loadSignals() {
    if (!state.range) { state.signals = []; return Promise.resolve(); }
    var q = "?since=" + encodeURIComponent(state.range.since.toISOString()) +
      "&until=" + encodeURIComponent(new Date(state.range.until.getTime() + BAR_MS).toISOString()) + "&limit=1000";
    if (cfg.underlying) q += "&underlying=" + encodeURIComponent(cfg.underlying);
    return api("/signals" + q).then(function (resp) { state.signals = resp.signals || []; });
  }
  function loadSpend() {
    return api("/health/detailed").then(function (resp) {
      state.spend = resp && resp.gateway ? resp.gateway.spend || null : null;
    });
  }
  var inflight = null;
  function refresh() {
    if (inflight) return inflight;
    var bars = loadBars().then(loadSignals);
    inflight = Promise.all([
      bars.then(function () { state.error = ""; }, function (e) { state.error = String(e.message || e); }),
      loadSpend().catch(function () {}),
    ]).then(render).catch(function () {}).then(function () { inflight = null; });
    return inflight;
  }

  // ------------------------------------------------------------------ chart
  function barIndexOf(bars, t) {
    var start = Math.floor(t / BAR_MS) * BAR_MS;
    for (var i = 0; i < bars.length; i++) if (bars[i].t.getTime() === start) return i;
    return -1;
  }
  function signalTitle(s) {
    var conf = Number(s.confidence);
    return "IFD " + (s.bias || "neutral").toUpperCase() + " (" + (s.direction || "?") + ") · " +
      (s.underlying || "NQ") + " " + s.strike + " " + (s.option_type === "C" ? "call" : "put") +
      "\nconfidence " + (isFinite(conf) ? conf.toFixed(3) : "—") +
      "\nwindow " + fmtTime(new Date(s.window_start), true) + "–" + fmtTime(new Date(s.window_end)) + " ET" +
      "\nbuy " + Math.round(s.ask_volume || 0) + " / sell " + Math.round(s.bid_volume || 0);
  }

  function renderChart() {
    var host = document.getElementById("nq-chart");
    var bars = state.bars;
    host.innerHTML = "";
    host.setAttribute("data-bar-count", String(bars.length));
    var W = 1100, H = 360, m = { l: 64, r: 16, t: 22, b: 34 };
    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "NQ 5-minute candlestick chart" }, host);
    if (!bars.length) {
      svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, root,
        state.error ? "NQ bars unavailable: " + state.error : "No NQ bars yet — waiting for the futures feed");
      return;
    }
    var lo = Infinity, hi = -Infinity;
    bars.forEach(function (b) { lo = Math.min(lo, b.l); hi = Math.max(hi, b.h); });
    var pad = Math.max((hi - lo) * 0.12, 2);
    lo -= pad; hi += pad;
    var pw = W - m.l - m.r, ph = H - m.t - m.b;
    var step = pw / bars.length, bw = Math.max(1.5, Math.min(12, step * 0.65));
    function y(p) { return m.t + (hi - p) / (hi - lo) * ph; }
    function x(i) { return m.l + step * (i + 0.5); }

    // price grid: ~6 round levels
    var raw = (hi - lo) / 6, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var tick = [1, 2, 2.5, 5, 10].map(function (f) { return f * mag; }).find(function (s) { return s >= raw; }) || raw;
    for (var p = Math.ceil(lo / tick) * tick; p <= hi; p += tick) {
      svg("line", { x1: m.l, x2: W - m.r, y1: y(p), y2: y(p), class: "grid" }, root);
      svg("text", { x: m.l - 6, y: y(p) + 4, "text-anchor": "end" }, root, p.toFixed(tick < 1 ? 2 : 0));
    }
    var labelEvery = Math.max(1, Math.ceil(bars.length / 12));
    bars.forEach(function (b, i) {
      var up = b.c >= b.o, cls = up ? "candle-up" : "candle-down";
      var g = svg("g", {
        class: "candle " + cls + (b.complete ? "" : " candle-open"), "data-testid": "nq-candle",
        "data-ts": b.t.toISOString(),
      }, root);
      svg("line", { x1: x(i), x2: x(i), y1: y(b.h), y2: y(b.l), class: "wick" }, g);
      var top = y(Math.max(b.o, b.c)), bottom = y(Math.min(b.o, b.c));
      svg("rect", { x: x(i) - bw / 2, y: top, width: bw, height: Math.max(1, bottom - top), class: "body" }, g);
      svg("title", {}, g, fmtTime(b.t, true) + " ET  O " + fmtPx(b.o) + "  H " + fmtPx(b.h) +
        "  L " + fmtPx(b.l) + "  C " + fmtPx(b.c) + "  vol " + b.v + (b.complete ? "" : " (forming)"));
      if (i % labelEvery === 0) svg("text", { x: x(i), y: H - m.b + 14, "text-anchor": "middle" }, root, fmtTime(b.t));
    });
    svg("text", { x: m.l, y: H - 4 }, root, fmtTime(bars[0].t, true).split(",")[0] + " (ET) · NQ front month, 5-minute bars");
    var last = bars[bars.length - 1];
    svg("text", { x: W - m.r, y: m.t - 6, "text-anchor": "end", class: "label-strong" }, root, "NQ " + fmtPx(last.c));

    // IFD signals at their bar: bullish under the low, bearish over the high, stacked
    var stacks = {};
    var placed = 0;
    state.signals.slice().sort(function (a, b) { return (b.confidence || 0) - (a.confidence || 0); }).forEach(function (s) {
      var i = barIndexOf(bars, new Date(s.window_start).getTime());
      if (i < 0) return;
      var bias = s.bias === "bullish" || s.bias === "bearish" ? s.bias : "neutral";
      var key = i + bias, k = stacks[key] || 0;
      stacks[key] = k + 1;
      if (k > 3) return; // at most four per bar and side
      var r = 5, cx = x(i), cy, d;
      if (bias === "bearish") {
        cy = y(bars[i].h) - 8 - r - k * 11;
        d = "M" + (cx - r) + "," + (cy - r) + " L" + (cx + r) + "," + (cy - r) + " L" + cx + "," + (cy + r) + " Z";
      } else {
        cy = y(bars[i].l) + 8 + r + k * 11;
        d = "M" + (cx - r) + "," + (cy + r) + " L" + (cx + r) + "," + (cy + r) + " L" + cx + "," + (cy - r) + " Z";
      }
      var mk = svg("path", {
        d: d, class: "nq-marker nq-" + bias, "data-testid": "nq-signal-marker", "data-bias": bias,
        "data-signal-id": s.signal_id || "", "data-confidence": isFinite(Number(s.confidence)) ? Number(s.confidence).toFixed(3) : "",
      }, root);
      svg("title", {}, mk, signalTitle(s));
      placed++;
    });
    host.setAttribute("data-marker-count", String(placed));
  }

  // ------------------------------------------------------------------ spend
  function meter(parent, testid, label, used, budget) {
    var row = el("div", { class: "spend-row", "data-testid": testid }, parent);
    var share = budget > 0 ? Math.min(1, used / budget) : 0;
    el("span", { class: "k" }, row, label);
    var track = el("span", { class: "spend-track" }, row);
    var fill = el("span", { class: "spend-fill" + (share >= 1 ? " over" : share >= 0.8 ? " near" : "") }, track);
    fill.style.width = (share * 100).toFixed(1) + "%";
    el("span", { class: "spend-val" }, row, usd(used) + " of " + usd(budget));
  }
  function renderSpend() {
    var body = document.getElementById("spend-body");
    body.innerHTML = "";
    var s = state.spend;
    if (!s) {
      el("p", { class: "empty" }, body, "No spend reported in the gateway heartbeat yet.");
      return;
    }
    meter(body, "spend-streaming", "streaming", Number(s.streaming_usd), Number(s.streaming_budget_usd));
    meter(body, "spend-backfill", "backfill", Number(s.backfill_usd), Number(s.backfill_budget_usd));
    var notes = ["day " + (s.day || "—") + " (UTC)", "total " + usd(s.total_usd)];
    if (s.streaming_stopped) notes.push("streaming stopped at budget");
    else if (s.backfill_stopped) notes.push("backfill stopped for the day");
    if (s.estimate) notes.push(String(s.estimate));
    el("p", { class: "hint" }, body, notes.join(" · "));
  }

  function render() {
    renderChart();
    renderSpend();
    document.getElementById("nq-panel").setAttribute("data-loaded", "1");
  }

  function boot() {
    loadConfig().then(function (c) {
      c = c || {};
      cfg.apiBase = c.apiBase || c.apiUrl || "/api";
      cfg.apiKey = c.apiKey || "";
      cfg.underlying = c.underlying || "";
      if (!cfg.apiKey) { try { cfg.apiKey = localStorage.getItem(KEY_STORE) || ""; } catch (e) {} }
      return refresh();
    }).then(function () {
      setInterval(function () {
        if (!cfg.apiKey) { try { cfg.apiKey = localStorage.getItem(KEY_STORE) || ""; } catch (e) {} }
        refresh();
      }, REFRESH_MS);
    });
  }

  window.magic8nq = { state: state, refresh: refresh };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
