// fuseguard history chart: fetches /history/data once and draws it with uPlot (drag to zoom,
// double-click to zoom out). Values are numbers only; nothing is written as HTML.
(function () {
  "use strict";
  var el = document.getElementById("history-chart");
  var note = document.getElementById("history-status");
  if (!el || typeof uPlot === "undefined") { return; }

  function maxOf(a, b, c) {
    return a.map(function (v, i) { return Math.max(v, b[i], c[i]); });
  }
  function minOf(a, b, c) {
    return a.map(function (v, i) { return Math.min(v, b[i], c[i]); });
  }

  fetch(el.getAttribute("data-url"), { credentials: "same-origin" })
    .then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    })
    .then(function (d) {
      var n = d.t.length;
      note.textContent = n ? n + " points" : "No data recorded in this span.";
      var data = [d.t, d.grid_l1, d.grid_l2, d.grid_l3,
        minOf(d.limit_l1, d.limit_l2, d.limit_l3),
        maxOf(d.ev_l1, d.ev_l2, d.ev_l3),
        maxOf(d.non_ev_l1, d.non_ev_l2, d.non_ev_l3),
        (d.pv_w || d.t.map(function () { return null; })).map(function (w) { return w === null ? null : w / 1000; })];
      new uPlot({
        width: Math.max(280, el.clientWidth), height: 320,
        scales: { x: { time: true, min: n ? undefined : d.start, max: n ? undefined : d.end } },
        cursor: { drag: { x: true, y: false } },
        series: [{},
          { label: "L1 A", stroke: "#6b3fa0" }, { label: "L2 A", stroke: "#0b57d0" },
          { label: "L3 A", stroke: "#1f7a3d" },
          { label: "limit A", stroke: "#b3261e", dash: [6, 4] },
          { label: "EV A (max phase)", stroke: "#c26401" },
          { label: "non-EV A (max phase)", stroke: "#5f6368" },
          { label: "PV kW", stroke: "#8a6d00", fill: "rgba(232, 185, 35, 0.15)", scale: "kW" }],
        axes: [{}, { label: "A" }, { label: "PV kW", scale: "kW", side: 1, grid: { show: false } }]
      }, data, el);
    })
    .catch(function (e) { note.textContent = "Could not load the history: " + e.message; });
})();
