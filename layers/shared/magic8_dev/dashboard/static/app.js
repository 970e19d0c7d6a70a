/* magic8 dashboard — plain JS + SVG, no build step, no third-party code.
 *
 * Configuration (window.MAGIC8_CONFIG if a page defines it, else config.json next to the page):
 *   apiBase      base URL of the magic8 API ("/api" locally: the dashboard server proxies it
 *                and adds the API key server-side; in AWS the API URL). Alias: apiUrl.
 *   apiKey       optional x-api-key header value (leave empty when a proxy adds it). When the
 *                API answers 401/403 and no key is configured, the page asks for one and
 *                keeps it in this browser's localStorage (never in the deployed assets).
 *   wsUrl        optional WebSocket URL for live updates; polling is the fallback
 *   pollSeconds  polling period while the WebSocket is down (default 5)
 *   underlying   optional IFD underlying filter for /signals (e.g. "NQZ5")
 *   signalsFrom, signalsTo  optional ISO range holding the signals (a replayed session keeps
 *                its real timestamps); without them the page reads the last lookbackHours
 *   historyHours hours of confidence history to load (default 24)
 *
 * Elements the browser test checks carry stable data-testid attributes:
 *   signal-marker, signal-row, confidence-line, threshold-line, health-panel, live-status.
 */
(function () {
  "use strict";

  var DEFAULTS = {
    apiBase: "/api",
    apiKey: "",
    wsUrl: "",
    pollSeconds: 5,
    livePollSeconds: 30, // full refresh while the WebSocket is live
    signalPollSeconds: 10, // /signals while the WebSocket is live (IFD pushes are not guaranteed)
    underlying: "",
    historyHours: 24,
    lookbackHours: 24,
    signalsFrom: "",
    signalsTo: "",
    maxSignals: 500,
    maxWindows: 72,
  };
  var CFG = Object.assign({}, DEFAULTS);
  var SVG_NS = "http://www.w3.org/2000/svg";
  var WINDOW_MS = 5 * 60 * 1000;
  var ET = "America/New_York";

  var state = {
    signals: new Map(), // id -> normalized signal
    series: new Map(), // "SYMBOL#Strategy" -> {symbol, strategy, threshold, points: Map(ts -> {t, v, th}), trades: []}
    watch: [],
    health: null,
    ws: null,
    wsLive: false,
    wsRetryMs: 1000,
    errors: {},
    newIds: new Set(),
    lastPoll: 0,
    lastSignalsPoll: 0,
    signalsInflight: false,
    inflight: null,
    loadedOnce: false,
  };

  // ---------------------------------------------------------------- helpers
  function num(v) {
    if (v === null || v === undefined || v === "") return NaN;
    var n = Number(v);
    return isFinite(n) ? n : NaN;
  }
  function first() {
    for (var i = 0; i < arguments.length; i++) {
      var v = arguments[i];
      if (v !== undefined && v !== null && v !== "") return v;
    }
    return undefined;
  }
  function toDate(v) {
    if (v === undefined || v === null || v === "") return null;
    if (v instanceof Date) return v;
    var n = Number(v);
    if (isFinite(n) && String(v).trim() !== "") {
      return new Date(n > 1e12 ? n : n * 1000); // epoch ms or s
    }
    var d = new Date(v);
    return isNaN(d.getTime()) ? null : d;
  }
  function fmtTime(d, withDate) {
    if (!d) return "—";
    var opts = { timeZone: ET, hour: "2-digit", minute: "2-digit", hour12: false };
    if (withDate) { opts.month = "2-digit"; opts.day = "2-digit"; }
    try { return d.toLocaleString("en-US", opts); } catch (e) { return d.toISOString().slice(5, 16); }
  }
  function fmtNum(v, digits) {
    var n = num(v);
    if (isNaN(n)) return "—";
    if (digits === undefined) return n >= 1000 ? Math.round(n).toLocaleString("en-US") : String(Math.round(n * 100) / 100);
    return n.toFixed(digits);
  }
  /** The array inside an API response: the response itself or its first array-valued field. */
  function arrayIn(resp, keys) {
    if (Array.isArray(resp)) return resp;
    if (!resp || typeof resp !== "object") return [];
    var preferred = (keys || []).concat(["items", "data", "results", "records"]);
    for (var i = 0; i < preferred.length; i++) {
      if (Array.isArray(resp[preferred[i]])) return resp[preferred[i]];
    }
    for (var k in resp) if (Array.isArray(resp[k])) return resp[k];
    return [];
  }
  function el(tag, attrs, parent, text) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function svg(tag, attrs, parent, text) {
    var node = document.createElementNS(SVG_NS, tag);
    for (var k in attrs || {}) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function setError(key, msg) {
    if (msg) state.errors[key] = msg; else delete state.errors[key];
    var parts = [];
    for (var k in state.errors) parts.push(k + ": " + state.errors[k]);
    document.getElementById("errors").textContent = parts.join(" · ");
  }

  // ---------------------------------------------------------------- API
  function apiUrl(path) {
    var base = String(CFG.apiBase || "").replace(/\/+$/, "");
    return base + path;
  }
  function api(path, optional) {
    var headers = { accept: "application/json" };
    if (CFG.apiKey) headers["x-api-key"] = CFG.apiKey;
    return fetch(apiUrl(path), { headers: headers, cache: "no-store" }).then(function (r) {
      if ((r.status === 401 || r.status === 403) && !state.configKey) askForKey();
      if (!r.ok) {
        var err = new Error("HTTP " + r.status);
        err.status = r.status;
        throw err;
      }
      return r.json();
    }).then(function (body) {
      setError(path.split("?")[0], null);
      return body;
    }, function (err) {
      // Optional endpoints (not deployed yet) are silent on 404 (and API Gateway's 403 for
      // an unknown resource).
      if (!(optional && (err.status === 404 || err.status === 403))) setError(path.split("?")[0], err.message || String(err));
      throw err;
    });
  }

  var KEY_STORE = "magic8.apiKey";
  function askForKey() {
    var form = document.getElementById("key-form");
    if (!form.hidden) return;
    form.hidden = false;
    form.onsubmit = function (ev) {
      ev.preventDefault();
      var key = document.getElementById("key-input").value.trim();
      if (!key) return;
      CFG.apiKey = key;
      try { localStorage.setItem(KEY_STORE, key); } catch (e) {}
      form.hidden = true;
      state.errors = {};
      refreshAll();
    };
  }

  // ---------------------------------------------------------------- normalization
  /** One IFD signal from /signals or the WebSocket, in whatever field spelling the producer used. */
  function normSignal(s) {
    if (!s || typeof s !== "object") return null;
    var w = s.window && typeof s.window === "object" ? s.window : {};
    var end = toDate(first(s.window_end, w.window_end, s.ts, s.timestamp, s.created_at));
    var start = toDate(first(s.window_start, w.window_start));
    if (!start && end) start = new Date(end.getTime() - WINDOW_MS);
    if (!end && start) end = new Date(start.getTime() + WINDOW_MS);
    if (!start) return null;
    var optionType = String(first(s.option_type, w.option_type, s.right, "") || "").toUpperCase().slice(0, 1);
    var aggressor = String(first(s.aggressor, s.dominant_side, w.dominant_side, "") || "").toUpperCase();
    var direction = String(first(s.direction, s.bias, "") || "").toUpperCase();
    if (!direction && aggressor) {
      var bullish = (aggressor === "BUY") === (optionType !== "P");
      direction = aggressor === "NEUTRAL" ? "NEUTRAL" : bullish ? "LONG" : "SHORT";
    }
    if (direction === "BULLISH" || direction === "BUY") direction = "LONG";
    if (direction === "BEARISH" || direction === "SELL") direction = "SHORT";
    var strike = num(first(s.strike, w.strike));
    var sig = {
      id: String(first(s.signal_id, s.id, end.toISOString() + "#" + strike + "#" + optionType)),
      underlying: String(first(s.underlying, w.underlying, s.symbol, "NQ")),
      strike: strike,
      optionType: optionType,
      direction: direction || "NEUTRAL",
      aggressor: aggressor,
      confidence: num(first(s.confidence, s.score, s.probability)),
      start: start,
      end: end,
      buy: num(first(s.ask_volume, w.ask_volume, s.buy_volume)),
      sell: num(first(s.bid_volume, w.bid_volume, s.sell_volume)),
      pressure: num(first(s.pressure_ratio, w.pressure_ratio)),
      alerted: first(s.alerted, s.alert_sent, s.published),
      raw: s,
    };
    return sig;
  }

  function seriesKey(symbol, strategy) { return String(symbol).toUpperCase() + "#" + strategy; }

  function ensureSeries(symbol, strategy) {
    var key = seriesKey(symbol, strategy);
    var s = state.series.get(key);
    if (!s) {
      s = { key: key, symbol: String(symbol).toUpperCase(), strategy: String(strategy), threshold: NaN, points: new Map(), trades: [] };
      state.series.set(key, s);
      state.subsDirty = true;
    }
    return s;
  }

  /** The line of one trade within a symbol x strategy series (history points name it). */
  function ensureTradeSeries(parent, trade) {
    var key = parent.key + "#" + trade;
    var s = state.series.get(key);
    if (!s) {
      s = { key: key, parent: parent.key, symbol: parent.symbol, strategy: parent.strategy, trade: trade, threshold: parent.threshold, points: new Map(), trades: [], line: true };
      state.series.set(key, s);
    }
    return s;
  }

  /** A trade's identity as the API names it (magic8.domain.trade_shape.trade_identity):
   *  "BUY 5805/5855/5905", "SELL P 5840/5845"; "" when the trade does not say. */
  function tradeIdentity(tr, strategy) {
    if (!tr || typeof tr !== "object") return "";
    if (typeof tr.trade === "string" && tr.trade) return tr.trade;
    if (!Array.isArray(tr.strikes) || !tr.strikes.length || !tr.action) return "";
    var kind = String(tr.option_type || "").trim().toUpperCase().slice(0, 1);
    var ks = tr.strikes.map(Number).sort(function (a, b) { return a - b; }).map(String).join("/");
    return kind && strategy !== "Iron Condor" ? tr.action + " " + kind + " " + ks : tr.action + " " + ks;
  }

  /** A confidence point from history, a sweep message or a prediction. */
  function addPoint(series, p) {
    if (!p || typeof p !== "object") return false;
    var t = toDate(first(p.ts, p.timestamp, p.time, p.sweep_at, p.created_at));
    var v = num(first(p.win_probability, p.confidence, p.probability, p.value));
    if (!t || isNaN(v)) return false;
    var th = num(first(p.threshold, p.alert_threshold));
    if (!isNaN(th)) series.threshold = th;
    // one point per 5 s: a sweep's pushed update and its stored history point are the same
    series.points.set(Math.round(t.getTime() / 5000), { t: t, v: v, th: th });
    return true;
  }

  function addSignals(list) {
    var added = 0;
    list.forEach(function (raw) {
      var sig = normSignal(raw);
      if (!sig) return;
      if (!state.signals.has(sig.id)) {
        added++;
        if (state.loadedOnce) state.newIds.add(sig.id); // flash rows that arrive after the first load
      }
      state.signals.set(sig.id, sig);
    });
    if (state.signals.size > CFG.maxSignals) {
      var sorted = sortedSignals();
      sorted.slice(0, sorted.length - CFG.maxSignals).forEach(function (s) { state.signals.delete(s.id); });
    }
    return added;
  }

  function sortedSignals() {
    return Array.from(state.signals.values()).sort(function (a, b) {
      return a.start - b.start || a.strike - b.strike;
    });
  }

  // ---------------------------------------------------------------- loading
  var DAY_MS = 24 * 3600 * 1000;
  var MAX_RANGE_MS = 30 * DAY_MS; // the API accepts at most 31 days per query

  /** [since, until) for the next /signals read (until null = now). */
  function signalsRange() {
    var now = Date.now();
    var latest = 0;
    state.signals.forEach(function (s) { latest = Math.max(latest, s.end.getTime()); });
    var from = toDate(CFG.signalsFrom), to = toDate(CFG.signalsTo);
    var since;
    if (latest) since = latest - 3 * WINDOW_MS; // re-read the last windows: ids dedupe, late ones are kept
    else if (from) since = from.getTime();
    else since = now - CFG.lookbackHours * 3600 * 1000;
    if (!from && now - since > MAX_RANGE_MS) since = now - MAX_RANGE_MS;
    var until = null;
    if (from) {
      until = since + MAX_RANGE_MS;
      if (to) until = Math.min(until, Math.max(to.getTime(), since + WINDOW_MS));
    }
    return { since: new Date(since), until: until ? new Date(until) : null };
  }

  function loadSignals() {
    var r = signalsRange();
    var q = "?since=" + encodeURIComponent(r.since.toISOString()) + "&limit=1000";
    if (r.until) q += "&until=" + encodeURIComponent(r.until.toISOString());
    if (CFG.underlying) q += "&underlying=" + encodeURIComponent(CFG.underlying);
    return api("/signals" + q).then(function (resp) {
      addSignals(arrayIn(resp, ["signals"]));
    });
  }

  function loadWatchlist() {
    return api("/watchlist", true).then(function (resp) {
      state.watch = arrayIn(resp, ["watchlist", "entries", "trades"]);
      state.watch.forEach(function (w) {
        var trade = w.trade && typeof w.trade === "object" ? w.trade : w;
        if (!trade.symbol || !trade.strategy) return;
        var s = ensureSeries(trade.symbol, trade.strategy);
        var id = first(w.id, w.entry_id, "");
        if (!s.trades.some(function (t) { return t.id === id; })) s.trades.push({ id: id, trade: trade, raw: w });
        var th = num(first(w.threshold, trade.threshold));
        if (!isNaN(th)) s.threshold = th;
      });
    }, function () { /* optional: fall back to trends */ });
  }

  function loadTrends() {
    return api("/confidence/trends", true).then(function (resp) {
      var rows = arrayIn(resp, ["trends", "series"]);
      if (!rows.length && resp && typeof resp === "object" && !Array.isArray(resp)) {
        // {"SPX#Butterfly": {...}} or {"SPX": {"Butterfly": {...}}}
        Object.keys(resp).forEach(function (k) {
          var v = resp[k];
          if (k.indexOf("#") > 0) rows.push(Object.assign({ series: k }, v));
          else if (v && typeof v === "object" && !Array.isArray(v)) {
            Object.keys(v).forEach(function (strat) {
              if (v[strat] && typeof v[strat] === "object") rows.push(Object.assign({ symbol: k, strategy: strat }, v[strat]));
            });
          }
        });
      }
      rows.forEach(function (r) {
        var symbol = r.symbol, strategy = r.strategy;
        if ((!symbol || !strategy) && typeof r.series === "string" && r.series.indexOf("#") > 0) {
          symbol = r.series.split("#")[0]; strategy = r.series.split("#")[1];
        }
        if (!symbol || !strategy) return;
        var s = ensureSeries(symbol, strategy);
        var th = num(first(r.threshold, r.latest && r.latest.threshold));
        if (!isNaN(th)) s.threshold = th;
      });
    }, function () {});
  }

  function loadHistory(series) {
    var path = "/confidence/history/" + encodeURIComponent(series.symbol) + "/" +
      encodeURIComponent(series.strategy) + "?hours=" + encodeURIComponent(CFG.historyHours);
    return api(path).then(function (resp) {
      var th = num(resp && resp.threshold);
      if (!isNaN(th)) series.threshold = th;
      // one line per trade identity (the API names each point's trade): unrelated trades
      // of the same symbol x strategy get their own card instead of one zig-zag line
      arrayIn(resp, ["history", "points"]).forEach(function (p) {
        addPoint(p && p.trade ? ensureTradeSeries(series, p.trade) : series, p);
      });
    }, function () {});
  }

  function loadHealth() {
    return api("/health/detailed").then(function (resp) { state.health = resp; }, function () {});
  }

  function refreshAll() {
    if (state.inflight) return state.inflight;
    state.lastPoll = state.lastSignalsPoll = Date.now();
    var jobs = [
      loadSignals().catch(function () {}),
      loadHealth(),
      Promise.all([loadWatchlist(), loadTrends()]).then(function () {
        return Promise.all(Array.from(state.series.values()).filter(function (s) { return !s.line; }).map(loadHistory));
      }),
    ];
    state.inflight = Promise.all(jobs).then(function () {
      renderAll();
      if (state.subsDirty) { state.subsDirty = false; resubscribe(); }
      state.loadedOnce = true;
      document.body.setAttribute("data-loaded", "1");
    }).catch(function (e) { setError("render", String(e)); }).then(function () {
      state.inflight = null;
    });
    return state.inflight;
  }

  // ---------------------------------------------------------------- WebSocket
  function handleMessage(msg) {
    if (Array.isArray(msg)) { msg.forEach(handleMessage); return; }
    if (!msg || typeof msg !== "object") return;
    var kind = String(first(msg.type, msg.kind, msg.event, msg.action, "") || "").toLowerCase();
    if (kind === "batch" && Array.isArray(msg.messages)) { msg.messages.forEach(handleMessage); return; }
    var payload = [msg.data, msg.payload, msg.signal, msg.prediction].filter(function (v) {
      return v && typeof v === "object";
    })[0];
    if (kind.indexOf("signal") >= 0 || kind === "ifd") {
      var sigs = Array.isArray(msg.signals) ? msg.signals : Array.isArray(payload) ? payload : [payload || msg];
      addSignals(sigs);
      renderFlow(); renderSignals();
      return;
    }
    if (kind.indexOf("sweep") >= 0 || kind.indexOf("confidence") >= 0 || kind.indexOf("prediction") >= 0) {
      var rows = Array.isArray(msg.predictions) ? msg.predictions : Array.isArray(msg.results) ? msg.results :
        Array.isArray(payload) ? payload : [payload || msg];
      rows.forEach(function (r) {
        if (!r) return;
        var trade = r.trade && typeof r.trade === "object" ? r.trade : r;
        var symbol = first(r.symbol, trade.symbol, msg.symbol);
        var strategy = first(r.strategy, trade.strategy, msg.strategy);
        if (!symbol || !strategy) return;
        var pt = Object.assign({}, r);
        if (first(pt.ts, pt.timestamp, pt.sweep_at) === undefined) pt.ts = first(msg.sweep_at, msg.ts, msg.timestamp, Date.now());
        // a watched trade's pushed point joins its own line (the identity history names)
        var parent = ensureSeries(symbol, strategy);
        var ident = tradeIdentity(typeof r.trade === "string" ? r : trade, strategy);
        addPoint(ident ? ensureTradeSeries(parent, ident) : parent, pt);
      });
      renderConfidence();
      return;
    }
    if (kind.indexOf("health") >= 0 || kind.indexOf("gateway") >= 0) {
      loadHealth().then(renderHealth);
    }
  }

  /** Subscription symbols: "NQ" for IFD signals plus every watched symbol (at most 16). */
  function subscribeSymbols() {
    var set = new Set(["NQ"]);
    state.series.forEach(function (s) { set.add(s.symbol); });
    if (set.size < 2) ["SPX", "NDX"].forEach(function (x) { set.add(x); });
    return Array.from(set).slice(0, 16);
  }
  function resubscribe() {
    if (state.ws && state.wsLive) {
      try { state.ws.send(JSON.stringify({ action: "subscribe", symbols: subscribeSymbols() })); } catch (e) {}
    }
  }

  function connectWs() {
    if (!CFG.wsUrl || typeof WebSocket === "undefined") { setConn(); return; }
    var ws;
    try { ws = new WebSocket(CFG.wsUrl); } catch (e) { setConn(); return; }
    state.ws = ws;
    ws.onopen = function () {
      state.wsLive = true;
      state.wsRetryMs = 1000;
      ws.send(JSON.stringify({ action: "subscribe", symbols: subscribeSymbols() }));
      setConn();
    };
    ws.onmessage = function (ev) {
      try { handleMessage(JSON.parse(ev.data)); } catch (e) { /* non-JSON frames are ignored */ }
      stamp();
    };
    ws.onclose = function () {
      state.wsLive = false;
      state.ws = null;
      setConn();
      setTimeout(connectWs, state.wsRetryMs);
      state.wsRetryMs = Math.min(state.wsRetryMs * 2, 30000);
    };
    ws.onerror = function () { /* onclose follows */ };
  }

  function setConn() {
    var c = document.getElementById("conn");
    if (state.wsLive) {
      c.textContent = "live · WebSocket";
      c.className = "conn conn-live";
      c.setAttribute("data-mode", "websocket");
    } else {
      c.textContent = "polling every " + CFG.pollSeconds + " s";
      c.className = "conn conn-poll";
      c.setAttribute("data-mode", "polling");
    }
  }
  function stamp() {
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString("en-US", { hour12: false });
  }

  function tick() {
    var now = Date.now();
    var period = (state.wsLive ? CFG.livePollSeconds : CFG.pollSeconds) * 1000;
    if (now - state.lastPoll >= period) { refreshAll(); return; }
    var signalPeriod = (state.wsLive ? CFG.signalPollSeconds : CFG.pollSeconds) * 1000;
    if (!state.inflight && !state.signalsInflight && now - state.lastSignalsPoll >= signalPeriod) {
      state.lastSignalsPoll = now;
      state.signalsInflight = true;
      loadSignals().then(function () { renderFlow(); renderSignals(); stamp(); }, function () {})
        .then(function () { state.signalsInflight = false; });
    }
  }

  // ---------------------------------------------------------------- rendering: NQ flow chart
  function renderFlow() {
    var host = document.getElementById("flow-chart");
    var sigs = sortedSignals();
    host.innerHTML = "";
    host.setAttribute("data-signal-count", String(sigs.length));
    var W = 1100, H = 300, m = { l: 56, r: 16, t: 16, b: 34 };
    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "NQ options flow chart" }, host);
    if (!sigs.length) {
      svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, root, "No IFD signals yet — waiting for NQ option flow");
      return;
    }
    // One slot per 5-minute window that has signals (sessions span days: gaps are collapsed).
    var buckets = new Map();
    sigs.forEach(function (s) {
      var k = Math.floor(s.start.getTime() / WINDOW_MS) * WINDOW_MS;
      var b = buckets.get(k);
      if (!b) { b = { t: k, buy: 0, sell: 0, sigs: [] }; buckets.set(k, b); }
      if (!isNaN(s.buy)) b.buy += s.buy;
      if (!isNaN(s.sell)) b.sell += s.sell;
      b.sigs.push(s);
    });
    var slots = Array.from(buckets.values()).sort(function (a, b) { return a.t - b.t; }).slice(-CFG.maxWindows);
    var maxVol = 1;
    slots.forEach(function (b) { maxVol = Math.max(maxVol, b.buy, b.sell); });
    var pw = W - m.l - m.r, ph = H - m.t - m.b, mid = m.t + ph / 2;
    var markerRoom = 34; // px above/below the bars reserved for markers
    var half = ph / 2 - markerRoom;
    var step = pw / slots.length, bw = Math.max(2, Math.min(28, step * 0.6));
    function y(v) { return (v / maxVol) * half; }

    // grid + axes
    [1, 0.5].forEach(function (f) {
      [-1, 1].forEach(function (sgn) {
        var yy = mid - sgn * f * half;
        svg("line", { x1: m.l, x2: W - m.r, y1: yy, y2: yy, class: "grid" }, root);
        svg("text", { x: m.l - 6, y: yy + 4, "text-anchor": "end" }, root, fmtNum(Math.round(f * maxVol)));
      });
    });
    svg("line", { x1: m.l, x2: W - m.r, y1: mid, y2: mid, class: "axis" }, root);
    svg("text", { x: 4, y: m.t + 10 }, root, "buy");
    svg("text", { x: 4, y: H - m.b - 2 }, root, "sell");

    var labelEvery = Math.max(1, Math.ceil(slots.length / 12));
    var prevDay = "";
    slots.forEach(function (b, i) {
      var cx = m.l + step * (i + 0.5);
      var d = new Date(b.t);
      svg("rect", { x: cx - bw / 2, y: mid - y(b.buy), width: bw, height: Math.max(0, y(b.buy)), class: "bar-buy", "data-testid": "flow-bar-buy" }, root);
      svg("rect", { x: cx - bw / 2, y: mid, width: bw, height: Math.max(0, y(b.sell)), class: "bar-sell", "data-testid": "flow-bar-sell" }, root);
      if (i % labelEvery === 0) {
        var day = fmtTime(d, true).split(",")[0];
        svg("text", { x: cx, y: H - m.b + 14, "text-anchor": "middle" }, root, fmtTime(d));
        if (day !== prevDay) { svg("text", { x: cx, y: H - m.b + 27, "text-anchor": "middle" }, root, day); prevDay = day; }
      }
      // markers: LONG above the buy bar, SHORT below the sell bar, stacked by confidence
      var up = 0, down = 0;
      b.sigs.slice().sort(function (a, c) { return (c.confidence || 0) - (a.confidence || 0); }).forEach(function (s) {
        var conf = isNaN(s.confidence) ? 0.5 : s.confidence;
        var r = 4 + 4 * Math.max(0, Math.min(1, conf));
        var cls, pathD, my;
        if (s.direction === "SHORT") {
          my = mid + y(b.sell) + 8 + r + Math.min(down, 2) * 9; down++; // stacked, at most 3 deep
          pathD = "M" + (cx - r) + "," + (my - r) + " L" + (cx + r) + "," + (my - r) + " L" + cx + "," + (my + r) + " Z";
          cls = "marker-short";
        } else {
          my = mid - y(b.buy) - 8 - r - Math.min(up, 2) * 9; up++;
          pathD = "M" + (cx - r) + "," + (my + r) + " L" + (cx + r) + "," + (my + r) + " L" + cx + "," + (my - r) + " Z";
          cls = s.direction === "LONG" ? "marker-long" : "marker-neutral";
        }
        var mk = svg("path", {
          d: pathD, class: cls, "data-testid": "signal-marker", "data-signal-id": s.id,
          "data-direction": s.direction, "data-confidence": isNaN(s.confidence) ? "" : s.confidence.toFixed(3),
        }, root);
        svg("title", {}, mk, signalTitle(s));
      });
    });
  }

  function optionLabel(s) {
    return s.underlying + " " + (isNaN(s.strike) ? "" : fmtNum(s.strike)) + (s.optionType ? " " + s.optionType : "");
  }
  function signalTitle(s) {
    return "IFD " + s.direction + " · " + optionLabel(s) +
      "\nconfidence " + (isNaN(s.confidence) ? "—" : s.confidence.toFixed(3)) +
      "\nwindow " + fmtTime(s.start, true) + "–" + fmtTime(s.end) + " ET" +
      "\nbuy " + fmtNum(s.buy) + " / sell " + fmtNum(s.sell) +
      (isNaN(s.pressure) ? "" : " · pressure " + s.pressure.toFixed(2));
  }

  // ---------------------------------------------------------------- rendering: signal table
  function renderSignals() {
    var tbody = document.querySelector("#signals-table tbody");
    var sigs = sortedSignals().reverse().slice(0, 200);
    tbody.innerHTML = "";
    document.getElementById("signals-empty").style.display = sigs.length ? "none" : "";
    sigs.forEach(function (s) {
      var tr = el("tr", { "data-testid": "signal-row", "data-signal-id": s.id }, tbody);
      if (state.newIds.has(s.id)) tr.className = "new";
      el("td", {}, tr, fmtTime(s.start, true) + "–" + fmtTime(s.end));
      el("td", {}, tr, optionLabel(s));
      el("td", { class: s.direction === "LONG" ? "dir-long" : s.direction === "SHORT" ? "dir-short" : "" }, tr,
        (s.direction === "LONG" ? "▲ " : s.direction === "SHORT" ? "▼ " : "") + s.direction);
      el("td", {}, tr, isNaN(s.confidence) ? "—" : s.confidence.toFixed(3));
      el("td", {}, tr, fmtNum(s.buy));
      el("td", {}, tr, fmtNum(s.sell));
      el("td", {}, tr, isNaN(s.pressure) ? "—" : s.pressure.toFixed(2));
      el("td", {}, tr, s.alerted === undefined ? "—" : s.alerted ? "yes" : "no");
    });
    state.newIds.clear();
  }

  // ---------------------------------------------------------------- rendering: confidence
  function renderConfidence() {
    var host = document.getElementById("confidence-charts");
    host.innerHTML = "";
    // one chart per symbol x strategy, one line per trade identity in it
    var all = Array.from(state.series.values());
    var list = all.filter(function (s) { return !s.line; }).map(function (s) {
      var lines = all.filter(function (c) { return c.line && c.parent === s.key && c.points.size > 0; })
        .sort(function (a, b) { return a.key < b.key ? -1 : 1; });
      if (s.points.size > 0) lines.unshift(s);
      return { series: s, lines: lines };
    }).filter(function (g) { return g.lines.length > 0; })
      .sort(function (a, b) { return a.series.key < b.series.key ? -1 : 1; });
    document.getElementById("confidence-empty").style.display = list.length ? "none" : "";
    list.forEach(function (g) { renderSeries(host, g.series, g.lines); });
  }

  function tradeText(t) {
    var tr = t.trade || {};
    var strikes = Array.isArray(tr.strikes) ? tr.strikes.join("/") : "";
    return (t.raw && t.raw.label ? t.raw.label + ": " : "") + (tr.action || "") + " " + strikes +
      (tr.premium !== undefined ? " @ " + tr.premium : "");
  }

  function renderSeries(host, s, lines) {
    lines = lines || [s];
    var sorted = lines.map(function (ln) {
      return Array.from(ln.points.values()).sort(function (a, b) { return a.t - b.t; });
    });
    var pts = [].concat.apply([], sorted).sort(function (a, b) { return a.t - b.t; });
    var last = pts[pts.length - 1];
    var th = isNaN(s.threshold) ? (isNaN(last.th) ? NaN : last.th) : s.threshold;
    var card = el("div", { class: "conf-card", "data-testid": "confidence-card", "data-series": s.key }, host);
    var h = el("h3", {}, card, s.symbol + " · " + s.strategy);
    var now = el("span", { class: "now " + (!isNaN(th) && last.v >= th ? "above" : "below") }, h, (last.v * 100).toFixed(1) + "%");
    now.setAttribute("title", "latest win probability at " + fmtTime(last.t, true) + " ET");
    el("div", { class: "meta" }, card,
      (s.trades.length ? s.trades.map(tradeText).join(" · ") : "confidence history (symbol × strategy)") +
      (isNaN(th) ? "" : " · threshold " + th.toFixed(2)) + " · " + lines.length +
      (lines.length === 1 ? " trade · " : " trades · ") + pts.length + " points");

    var W = 420, H = 150, m = { l: 34, r: 10, t: 8, b: 20 };
    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": s.key + " confidence" }, card);
    var t0 = pts[0].t.getTime(), t1 = last.t.getTime();
    if (t1 - t0 < 600000) t0 = t1 - 600000; // at least 10 minutes, the latest point at the right
    function x(t) { return m.l + ((t - t0) / (t1 - t0)) * (W - m.l - m.r); }
    function y(v) { return m.t + (1 - Math.max(0, Math.min(1, v))) * (H - m.t - m.b); }
    [0, 0.25, 0.5, 0.75, 1].forEach(function (v) {
      svg("line", { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), class: "grid" }, root);
      svg("text", { x: m.l - 4, y: y(v) + 4, "text-anchor": "end" }, root, Math.round(v * 100) + "%");
    });
    svg("text", { x: m.l, y: H - 4 }, root, fmtTime(new Date(t0), true));
    svg("text", { x: W - m.r, y: H - 4, "text-anchor": "end" }, root, fmtTime(new Date(t1), true) + " ET");
    if (!isNaN(th)) {
      svg("line", { x1: m.l, x2: W - m.r, y1: y(th), y2: y(th), class: "threshold-line", "data-testid": "threshold-line", "data-threshold": th.toFixed(4) }, root);
      svg("text", { x: W - m.r - 2, y: y(th) - 4, "text-anchor": "end", class: "label-strong" }, root, "threshold " + th.toFixed(2));
    }
    var legend = lines.length > 1 ? el("div", { class: "meta legend" }, card) : null;
    lines.forEach(function (ln, i) {
      var lp = sorted[i];
      var tail = lp[lp.length - 1];
      var hue = (i * 137) % 360; // distinct colours per trade line
      var d = lp.map(function (p, j) { return (j ? "L" : "M") + x(p.t.getTime()).toFixed(1) + "," + y(p.v).toFixed(1); }).join(" ");
      if (lp.length === 1) d += " L" + (x(tail.t.getTime()) + 0.5).toFixed(1) + "," + y(tail.v).toFixed(1);
      var path = svg("path", { d: d, class: "conf-line", "data-testid": "confidence-line", "data-series": s.key, "data-trade": ln.trade || "", "data-points": String(lp.length) }, root);
      if (i) path.setAttribute("style", "stroke: hsl(" + hue + ", 65%, 55%)");
      svg("title", {}, path, (ln.trade || "series") + " · " + (tail.v * 100).toFixed(1) + "%");
      lp.slice(-60).forEach(function (p) {
        var c = svg("circle", { cx: x(p.t.getTime()), cy: y(p.v), r: 2.5, class: "conf-dot" }, root);
        if (i) c.setAttribute("style", "fill: hsl(" + hue + ", 65%, 55%)");
        svg("title", {}, c, (ln.trade ? ln.trade + " · " : "") + fmtTime(p.t, true) + " ET · " + (p.v * 100).toFixed(1) + "%");
      });
      if (legend) {
        var item = el("span", { "data-testid": "confidence-legend" }, legend, (ln.trade || "series") + " " + (tail.v * 100).toFixed(1) + "%  ");
        if (i) item.setAttribute("style", "color: hsl(" + hue + ", 65%, 55%)");
      }
    });
  }

  // ---------------------------------------------------------------- rendering: health
  var OK = /^(ok|healthy|up|fresh|pass|connected|running|true|live|replay|seed)$/i;
  var WARN = /^(degraded|warn|warning|stale|backfilling|unknown|cached)$/i;
  var BAD = /^(down|error|fail|failed|unhealthy|disconnected|false|missing)$/i;
  function badge(parent, value) {
    var v = String(value);
    var cls = OK.test(v) ? "ok" : BAD.test(v) ? "bad" : WARN.test(v) ? "warn" : "";
    return el("span", { class: cls ? "badge " + cls : "" }, parent, v);
  }
  function fmtVal(v) {
    if (v === null || v === undefined) return "—";
    if (typeof v === "number") return Math.abs(v) < 1e9 ? String(Math.round(v * 1000) / 1000) : String(v);
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  function renderHealth() {
    var body = document.getElementById("health-body");
    body.innerHTML = "";
    var h = state.health;
    if (!h || typeof h !== "object") { el("p", { class: "empty" }, body, "Health unavailable."); return; }
    var top = el("div", { class: "health-grid" }, body);
    var sections = [];
    Object.keys(h).forEach(function (k) {
      var v = h[k];
      if (v && typeof v === "object" && !Array.isArray(v)) sections.push(k);
      else if (Array.isArray(v)) {
        el("span", { class: "k" }, top, k);
        el("span", {}, top, v.length ? v.map(fmtVal).join("; ") : "none");
      } else { el("span", { class: "k" }, top, k); badge(el("span", {}, top), fmtVal(v)); }
    });
    // gateway first: it is the only stateful part of the system
    // the gateway first (the only stateful part of the system), then the data it writes;
    // service internals (stats, config) fold away
    function rank(k) { return /gateway/i.test(k) ? 3 : /market/i.test(k) ? 2 : /^(stats|config)$/i.test(k) ? 0 : 1; }
    sections.sort(function (a, b) { return rank(b) - rank(a); });
    var more = null;
    sections.forEach(function (k) {
      var host = body;
      if (rank(k) === 0) {
        if (!more) { more = el("details", { class: "more" }, body); el("summary", {}, more, "service internals"); }
        host = more;
      }
      renderHealthSection(host, k, h[k], 0);
    });
    if (!sections.some(function (k) { return /gateway/i.test(k); })) {
      el("p", { class: "empty", "data-testid": "gateway-heartbeat-missing" }, body,
        "No gateway heartbeat in /health/detailed; market data freshness above is what the gateway writes.");
    }
  }
  /** {"SPX": {...}, "NDX": {...}}: every value an object -> one table, a row per key. */
  function isTableOfObjects(obj) {
    var keys = Object.keys(obj);
    return keys.length > 1 && keys.every(function (k) {
      var v = obj[k];
      return v && typeof v === "object" && !Array.isArray(v) &&
        Object.keys(v).every(function (c) { return v[c] === null || typeof v[c] !== "object"; });
    });
  }
  function renderHealthTable(body, name, obj) {
    el("div", { class: "health-sec", "data-testid": /gateway|market/i.test(name) ? "gateway-health" : "health-section" }, body,
      /^market$/i.test(name) ? "market data (written by the gateway)" : name);
    var cols = [];
    Object.keys(obj).forEach(function (k) {
      Object.keys(obj[k]).forEach(function (c) { if (cols.indexOf(c) < 0) cols.push(c); });
    });
    var table = el("table", { class: "health-table" }, body);
    var head = el("tr", {}, el("thead", {}, table));
    el("th", {}, head, "");
    cols.forEach(function (c) { el("th", {}, head, c); });
    var tb = el("tbody", {}, table);
    Object.keys(obj).forEach(function (k) {
      var tr = el("tr", {}, tb);
      el("td", {}, tr, k);
      cols.forEach(function (c) {
        var v = obj[k][c];
        var td = el("td", {}, tr);
        if (typeof v === "number") td.textContent = fmtVal(Math.round(v * 10) / 10);
        else badge(td, fmtVal(v));
      });
    });
  }
  function renderHealthSection(body, name, obj, depth) {
    if (isTableOfObjects(obj)) { renderHealthTable(body, name, obj); return; }
    var isGateway = /gateway/i.test(name);
    el("div", { class: "health-sec", "data-testid": isGateway ? "gateway-health" : "health-section" }, body, name);
    var grid = el("div", { class: "health-grid" }, body);
    var nested = [];
    Object.keys(obj).forEach(function (k) {
      var v = obj[k];
      if (v && typeof v === "object" && !Array.isArray(v) && depth < 1) { nested.push(k); return; }
      el("span", { class: "k" }, grid, k);
      var cell = el("span", {}, grid);
      var b = badge(cell, fmtVal(v));
      if (isGateway && /^(status|state)$/i.test(k)) b.setAttribute("data-testid", "gateway-status");
    });
    var when = toDate(first(obj.updated_at, obj.last_beat, obj.heartbeat_at));
    if (isGateway && when) {
      el("span", { class: "k" }, grid, "heartbeat age");
      el("span", { "data-testid": "gateway-heartbeat-age" }, grid, Math.max(0, Math.round((Date.now() - when.getTime()) / 1000)) + " s");
    }
    nested.forEach(function (k) { renderHealthSection(body, name + " › " + k, obj[k], depth + 1); });
  }

  function renderAll() {
    renderFlow();
    renderSignals();
    renderConfidence();
    renderHealth();
    setConn();
    stamp();
  }

  // ---------------------------------------------------------------- boot
  function loadConfig() {
    if (window.MAGIC8_CONFIG) return Promise.resolve(window.MAGIC8_CONFIG);
    return fetch("config.json", { cache: "no-store" }).then(function (r) { return r.ok ? r.json() : {}; })
      .catch(function () { return {}; });
  }

  function boot() {
    loadConfig().then(function (cfg) {
      CFG = Object.assign({}, DEFAULTS, cfg || {});
      if (!cfg || (!cfg.apiBase && cfg.apiUrl)) CFG.apiBase = (cfg && cfg.apiUrl) || DEFAULTS.apiBase;
      // a key in the config, or a same-origin proxy that adds it: never ask the user for one
      state.configKey = !!CFG.apiKey || !!CFG.apiKeyViaProxy;
      if (!CFG.apiKey) {
        try { CFG.apiKey = localStorage.getItem(KEY_STORE) || ""; } catch (e) {}
      }
      setConn();
      connectWs();
      return refreshAll();
    }).then(function () {
      setInterval(tick, 1000);
    });
  }

  window.magic8 = { state: state, refreshAll: refreshAll, normSignal: normSignal, handleMessage: handleMessage, config: function () { return CFG; } };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
