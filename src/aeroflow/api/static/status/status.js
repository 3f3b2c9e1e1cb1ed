// aeroflow status page: polls data.json and draws the SLO cards and four uPlot charts.
// No framework, no build step, no third-party origin: the page works under a strict CSP.
(function () {
  "use strict";

  const body = document.body;
  const dataUrl = body.dataset.dataUrl;
  const charts = {};
  const colours = {
    stored: "#1a7f37", duplicate: "#6e7781", rejected: "#b35900", failed: "#c62828",
    p50: "#0969da", p99: "#8250df", rps: "#0969da", errors: "#c62828",
  };

  function pct(value, digits) {
    return value === null || value === undefined ? "no data" : (value * 100).toFixed(digits) + " %";
  }

  function seconds(value) {
    if (value === null || value === undefined) return "no data";
    return value < 1 ? (value * 1000).toFixed(0) + " ms" : value.toFixed(2) + " s";
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderSlos(slos) {
    const box = document.getElementById("slos");
    box.replaceChildren();
    slos.forEach((slo) => {
      const card = el("article", { class: "card", "data-state": slo.state, "data-slo": slo.name });
      card.appendChild(el("h3", {}, slo.title));
      card.appendChild(el("div", { class: "sli" }, pct(slo.sli, 3)));
      card.appendChild(el("div", { class: "detail" },
        "objective " + pct(slo.objective, 1) + " · " + slo.state));
      const bar = el("div", { class: "budget", title: "error budget left" });
      const left = slo.error_budget_remaining;
      const fill = el("div");
      fill.style.width = (left === null ? 0 : Math.max(0, Math.min(1, left)) * 100) + "%";
      bar.appendChild(fill);
      card.appendChild(bar);
      card.appendChild(el("div", { class: "detail" },
        "error budget left: " + pct(left, 1) + " · " +
        Math.round(slo.good) + " good of " + Math.round(slo.total)));
      box.appendChild(card);
    });
  }

  function chart(id, series, data, yLabel) {
    const target = document.getElementById(id);
    const width = Math.max(target.clientWidth, 320);
    if (charts[id]) {
      charts[id].setData(data);
      return;
    }
    charts[id] = new uPlot({
      width: width,
      height: 220,
      series: [{}].concat(series.map((s) => ({
        label: s.label, stroke: s.colour, width: 2, spanGaps: false,
        scale: s.scale || "y", value: s.format ? (u, v) => s.format(v) : undefined,
      }))),
      axes: [{}, { label: yLabel }].concat(
        series.some((s) => s.scale === "ratio") ? [{ scale: "ratio", side: 1, grid: { show: false },
          values: (u, vals) => vals.map((v) => (v * 100).toFixed(1) + "%") }] : []),
      scales: { x: { time: true }, ratio: { range: [0, 1] } },
    }, data, target);
  }

  function render(report) {
    const s = report.series;
    document.getElementById("meta").textContent =
      "version " + report.version + " · " + report.window + " (" +
      Math.round(report.uptime_seconds) + " s) · updated " + report.generated_at;
    renderSlos(report.slos);
    const ingest = s.ingest_messages_per_second;
    chart("chart-ingest",
      Object.keys(ingest).map((k) => ({ label: k, colour: colours[k] })),
      [s.t].concat(Object.keys(ingest).map((k) => ingest[k])), "msg/s");
    chart("chart-freshness",
      [{ label: "p50", colour: colours.p50, format: seconds },
       { label: "p99", colour: colours.p99, format: seconds }],
      [s.t, s.ingest_freshness_p50_seconds, s.ingest_freshness_p99_seconds], "seconds");
    chart("chart-traffic",
      [{ label: "requests/s", colour: colours.rps },
       { label: "5xx share", colour: colours.errors, scale: "ratio", format: (v) => pct(v, 2) }],
      [s.t, s.api_requests_per_second, s.api_error_ratio], "req/s");
    chart("chart-latency",
      [{ label: "p50", colour: colours.p50, format: seconds },
       { label: "p99", colour: colours.p99, format: seconds }],
      [s.t, s.api_latency_p50_seconds, s.api_latency_p99_seconds], "seconds");
    body.dataset.points = String(s.t.length);
    body.dataset.ready = "true";
  }

  function refresh() {
    fetch(dataUrl, { headers: { accept: "application/json" }, cache: "no-store" })
      .then((response) => {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then((report) => {
        render(report);
        const next = report.series.t.length < 2 ? 1 : report.sample_interval_seconds;
        setTimeout(refresh, Math.min(Math.max(next, 1), 15) * 1000);
      })
      .catch((error) => {
        document.getElementById("meta").textContent = "cannot load " + dataUrl + ": " + error;
        body.dataset.error = String(error);
        setTimeout(refresh, 5000);
      });
  }

  refresh();
})();
