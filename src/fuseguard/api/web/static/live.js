// fuseguard live page: Server-Sent Events from /live/stream update the server-rendered page.
// No framework; values are written with textContent only (never as HTML).
(function () {
  "use strict";
  var conn = document.getElementById("conn");
  var lastMessage = Date.now();
  var lastStatus = null;
  var reloads = 0;
  var WINDOW_S = 300;
  var series = [[], [], [], [], []]; // time, L1, L2, L3, limit (max of phases)
  var plot = null;

  function setConn(kind, text) {
    if (conn.className !== "conn " + kind) { conn.className = "conn " + kind; }
    if (conn.textContent !== text) { conn.textContent = text; }
  }

  function setText(root, sel, value) {
    var el = root.querySelector(sel);
    var text = value === null || value === undefined ? "-" : String(value);
    if (el && el.textContent !== text) { el.textContent = text; }
  }

  function updateCircuits(circuits) {
    circuits.forEach(function (c) {
      var box = document.querySelector('[data-circuit="' + CSS.escape(c.id) + '"]');
      if (!box) { return reload(); }
      c.phases.forEach(function (ph) {
        var row = box.querySelector('[data-phase="' + ph.phase + '"]');
        if (!row) { return; }
        row.querySelector(".seg.nonev").style.width = ph.non_ev_pct + "%";
        row.querySelector(".seg.ev").style.width = ph.ev_pct + "%";
        row.querySelector(".limit").style.left = ph.limit_pct + "%";
        var bar = row.querySelector(".bar");
        bar.classList.toggle("over", ph.over);
        bar.setAttribute("aria-label", ph.phase + ": " + ph.current_a + " A of " + ph.limit_a + " A");
        ["current_a", "limit_a", "ev_a", "non_ev_a", "headroom_a"].forEach(function (k) {
          setText(row, '[data-f="' + k + '"]', ph[k]);
        });
      });
    });
  }

  function updatePlugs(plugs) {
    plugs.forEach(function (p) {
      var card = document.querySelector('[data-plug="' + CSS.escape(p.id) + '"]');
      if (!card) { return reload(); }
      card.className = "plug card status-" + p.status;
      setText(card, '[data-f="status_words"]', p.status_words);
      setText(card, '[data-f="current_a"]', p.current_a.join(" / "));
      setText(card, '[data-f="setpoint_a"]', p.setpoint_a);
      setText(card, '[data-f="power_w"]', p.power_w);
      setText(card, '[data-f="energy_kwh"]', p.energy_kwh);
      setText(card, '[data-f="mode_words"]', p.mode_words);
      setText(card, '[data-f="priority"]', p.priority);
      setText(card, '[data-f="departure_words"]', p.departure_words);
      setText(card, '[data-f="reason"]', p.reason);
    });
  }

  function reload() {
    if (reloads++ === 0) { window.location.reload(); }
  }

  function updateChart(site) {
    var main = site.circuits[0];
    if (!main || typeof uPlot === "undefined") { return; }
    var t = Date.parse(site.time) / 1000;
    var n = series[0].length;
    if (n && t <= series[0][n - 1]) { return; }
    series[0].push(t);
    for (var i = 0; i < 3; i++) { series[i + 1].push(main.phases[i].current_a); }
    series[4].push(Math.max.apply(null, main.phases.map(function (p) { return p.limit_a; })));
    while (series[0].length && series[0][0] < t - WINDOW_S) { series.forEach(function (s) { s.shift(); }); }
    var el = document.getElementById("chart");
    if (!plot) {
      plot = new uPlot({
        width: Math.max(280, el.clientWidth), height: 220,
        series: [{}, { label: "L1 A", stroke: "#6b3fa0" }, { label: "L2 A", stroke: "#0b57d0" },
          { label: "L3 A", stroke: "#1f7a3d" }, { label: "limit A", stroke: "#b3261e", dash: [6, 4] }],
        axes: [{}, { label: "A" }],
      }, series, el);
      window.addEventListener("resize", function () { plot.setSize({ width: Math.max(280, el.clientWidth), height: 220 }); });
    } else {
      plot.setData(series);
    }
  }

  function onStatus(ev) {
    lastMessage = Date.now();
    var site = JSON.parse(ev.data);
    lastStatus = site;
    setText(document, '[data-site="limit_source_words"]', site.limit_source_words);
    setText(document, '[data-site="main_limit"]', site.main_limit_a.join(" / ") + " A");
    setText(document, '[data-site="grid_power"]', site.grid_power_w + " W");
    setText(document, '[data-site="time"]', site.time_text);
    updateCircuits(site.circuits);
    updatePlugs(site.plugs);
    updateChart(site);
    if (site.stale) {
      setConn("stale", site.stale_text || "Data is stale: no new control cycle");
    } else {
      setConn("ok", "Live");
    }
  }

  function onPing(ev) {
    lastMessage = Date.now();
    var now = Date.parse(JSON.parse(ev.data).time);
    if (lastStatus) {
      var age = Math.round((now - Date.parse(lastStatus.time)) / 1000);
      setConn("stale", "Data is stale: last control cycle " + age + " s ago");
    } else {
      setConn("stale", "Data is stale: no control cycle yet");
    }
  }

  var source = new EventSource(conn.getAttribute("data-stream") || "/live/stream");
  source.addEventListener("status", onStatus);
  source.addEventListener("ping", onPing);
  source.onerror = function () {
    setConn("lost", "Connection lost: reconnecting…");
  };
  source.onopen = function () { lastMessage = Date.now(); };
  window.setInterval(function () {
    if (Date.now() - lastMessage > 8000 && source.readyState !== EventSource.CLOSED) {
      setConn("lost", "Connection silent: no data for " + Math.round((Date.now() - lastMessage) / 1000) + " s");
    }
    if (source.readyState === EventSource.CLOSED) {
      setConn("lost", "Connection lost: reload the page");
    }
  }, 1000);
  window.addEventListener("beforeunload", function () { source.close(); });
}());
