// doproxy dashboard: polls the admin API every few seconds and draws the pool, its latency and
// what the autoscaler did. Plain browser JavaScript and uPlot, all served by doproxy itself.
(() => {
  "use strict";
  const WINDOWS = { "15m": { ms: 15 * 60e3, step: "5s" }, "1h": { ms: 60 * 60e3, step: "20s" }, "24h": { ms: 24 * 60 * 60e3, step: "8m" } };
  const REFRESH_MS = 3000;
  const EVENT_COLORS = { "scale.up": "#1f8a4c", "scale.floor": "#1f8a4c", "scale.reclaim": "#1f8a4c", "scale.down": "#b5471e", "scale.replace": "#c28a00", "scale.error": "#d0021b" };
  const state = { window: "15m", token: sessionStorage.getItem("doproxy-token") || "", charts: {}, backends: [], points: [], events: [] };
  window.__doproxy = state; // for tests and curious operators

  const $ = (selector) => document.querySelector(selector);

  async function api(path) {
    const headers = state.token ? { authorization: `Bearer ${state.token}` } : {};
    const response = await fetch(path, { headers });
    if (response.status === 401) {
      $("#login").hidden = false;
      throw new Error("unauthorized");
    }
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  const fmtMs = (v) => (v === null || v === undefined ? "-" : v < 10 ? `${v.toFixed(1)}ms` : `${Math.round(v)}ms`);
  function fmtAge(ms) {
    const s = Math.round(ms / 1000);
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.round(s / 60)}m`;
    if (s < 86400) return `${Math.round(s / 3600)}h`;
    return `${Math.round(s / 86400)}d`;
  }
  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function renderBackends(rows) {
    const body = $("#backends tbody");
    const fragment = document.createDocumentFragment();
    for (const b of rows) {
      const tr = document.createElement("tr");
      tr.dataset.id = String(b.id);
      const stateCell = document.createElement("td");
      const badge = document.createElement("span");
      badge.className = `state state-${b.state}`;
      badge.textContent = b.state;
      stateCell.append(badge);
      if (b.ejected) {
        // Outlier detection holds it out of rotation although its health path may pass.
        const ejected = document.createElement("span");
        ejected.className = "state state-ejected";
        ejected.textContent = "ejected";
        ejected.title = b.ejectedUntil
          ? `ejected until ${new Date(b.ejectedUntil).toLocaleTimeString()} (ejection ${b.ejections} in a row)`
          : "on trial: its next request decides whether it returns";
        stateCell.append(" ", ejected);
      }
      tr.append(
        cell(String(b.id)),
        cell(b.name || (b.dropletId ? String(b.dropletId) : "-")),
        cell(b.address || "-"),
        stateCell,
        cell(b.health),
        cell(String(b.weight ?? 1), "num"),
        cell(String(b.inFlight), "num"),
        cell(fmtMs(b.p95Ms), "num"),
        cell(b.requestsPerSecond.toFixed(1), "num"),
        cell(fmtAge(b.ageMs), "num"),
      );
      fragment.append(tr);
    }
    body.replaceChildren(fragment);
    $("#pool-count").textContent = `(${rows.length})`;
  }

  function renderEvents(events) {
    const list = $("#events");
    const fragment = document.createDocumentFragment();
    for (const e of [...events].reverse().slice(0, 200)) {
      const li = document.createElement("li");
      const time = document.createElement("time");
      time.textContent = new Date(e.ts).toLocaleTimeString();
      const kind = document.createElement("span");
      kind.className = `kind kind-${e.kind.replace(".", "-")}`;
      kind.textContent = e.kind;
      li.append(time, kind, document.createTextNode(e.message));
      fragment.append(li);
    }
    list.replaceChildren(fragment);
  }

  // Draws scaling events as vertical lines on a chart's time axis.
  function eventMarkers() {
    return {
      hooks: {
        draw: [
          (u) => {
            const { ctx } = u;
            const { top, height } = u.bbox;
            for (const e of state.events) {
              const color = EVENT_COLORS[e.kind];
              if (!color) continue;
              const x = Math.round(u.valToPos(e.ts / 1000, "x", true));
              if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
              ctx.save();
              ctx.strokeStyle = color;
              ctx.lineWidth = 1.5 * devicePixelRatio;
              ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
              ctx.beginPath();
              ctx.moveTo(x, top);
              ctx.lineTo(x, top + height);
              ctx.stroke();
              ctx.restore();
            }
          },
        ],
      },
    };
  }

  function makeChart(id, series) {
    const el = $(`#${id}`);
    const width = Math.max(300, el.clientWidth || 440);
    const opts = {
      width,
      height: 200,
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, spanGaps: false, value: (_, v) => (v === null ? "-" : v.toFixed(1)) }))],
      axes: [{}, { size: 50 }],
      scales: { x: { time: true } },
      legend: { live: true },
      plugins: [eventMarkers()],
    };
    return new uPlot(opts, [[], ...series.map(() => [])], el);
  }

  function ensureCharts() {
    if (state.charts.latency) return;
    state.charts.latency = makeChart("chart-latency", [
      { label: "p95", color: "#2b5cb8" },
      { label: "p99", color: "#b5471e" },
    ]);
    state.charts.rps = makeChart("chart-rps", [{ label: "req/s", color: "#1f8a4c" }]);
    state.charts.errors = makeChart("chart-errors", [{ label: "errors %", color: "#d0021b" }]);
    state.charts.pool = makeChart("chart-pool", [{ label: "backends", color: "#6b3fa0" }]);
  }

  function renderCharts(all) {
    ensureCharts();
    // Start at the first bucket with anything in it: before that doproxy was not running here.
    const first = all.findIndex((p) => p.requestsPerSecond > 0 || p.poolSize > 0);
    const points = first > 0 ? all.slice(first) : all;
    const xs = points.map((p) => p.ts / 1000);
    state.charts.latency.setData([xs, points.map((p) => p.p95Ms), points.map((p) => p.p99Ms)]);
    state.charts.rps.setData([xs, points.map((p) => p.requestsPerSecond)]);
    state.charts.errors.setData([xs, points.map((p) => (p.requestsPerSecond > 0 ? p.errorRate * 100 : null))]);
    state.charts.pool.setData([xs, points.map((p) => p.poolSize)]);
  }

  async function refresh() {
    const win = WINDOWS[state.window];
    const since = Date.now() - win.ms;
    try {
      const [status, backends, events, samples] = await Promise.all([
        api("/api/status"),
        api("/api/backends"),
        api(`/api/events?since=${since}`),
        api(`/api/samples?since=${since}&step=${win.step}`),
      ]);
      $("#login").hidden = true;
      state.backends = backends;
      state.events = events;
      state.points = samples.points;
      const s = status.pool.byState;
      const auto = status.autoscale.enabled ? `autoscale ${status.autoscale.min}..${status.autoscale.max}${status.autoscale.dryRun ? " (dry run)" : ""}` : "autoscale off";
      const reload = status.config.lastReload.ok ? "" : ` · config reload failed: ${status.config.lastReload.error}`;
      const held = status.autoscale.backoff
        ? ` · creates held: ${status.autoscale.backoff.reason === "droplet-limit" ? "droplet limit reached" : status.autoscale.backoff.reason} (retry ${new Date(status.autoscale.backoff.retryAt).toLocaleTimeString()})`
        : "";
      // A safety hold an operator must act on (README, "Money invariants").
      const hold = status.autoscale.hold;
      const safety = !hold
        ? ""
        : hold.code === "replacements-failing"
          ? ` · HELD: replacements-failing (${hold.streak} replacements never became healthy; unhealthy droplets kept for inspection; run doproxy autoscale resume)`
          : ` · HELD: identity-conflict (droplets ${hold.droplets.map((d) => d.id).join(", ")} carry this pool's tag but this inventory never created them)`;
      // Cost: what the pool costs per hour now and cost over the last 24 h (absent without a price).
      const cost =
        status.cost && status.cost.perHour !== null
          ? ` · $${status.cost.perHour.toFixed(3)}/h now, $${status.cost.last24h.toFixed(2)} last 24 h`
          : "";
      // Several serves on one inventory: how many, which one leads (it scales for all), whether this
      // one keeps the reserved IP, and each one's traffic.
      const instances = status.instances ?? [];
      const roles = [
        instances.find((i) => i.self)?.leader ? "leads" : null,
        status.reservedIp?.holder ? `holds ${status.reservedIp.ip}` : null,
      ].filter(Boolean);
      const proxies =
        instances.length > 1
          ? ` · ${instances.length} proxies: ${instances
              .map((i) =>
                i.self
                  ? `this one ${i.requestsPerSecond} req/s (${roles.length ? roles.join(", ") : "follows"})`
                  : `${i.hostname}/${i.pid} ${i.requestsPerSecond} req/s${i.leader ? " (leads)" : ""}`,
              )
              .join(", ")}`
          : "";
      $("#summary").textContent = `v${status.version} · pool ${status.pool.id} · up ${fmtAge(status.uptimeSeconds * 1000)} · ${s.active} active, ${s.joining + s.provisioning} booting, ${s.unhealthy} unhealthy, ${s.draining} draining · ${auto}${proxies}${cost}${held}${safety}${reload}`;
      renderBackends(backends);
      renderEvents(events);
      renderCharts(samples.points);
      state.lastRefresh = Date.now();
    } catch (error) {
      if (error.message !== "unauthorized") $("#summary").textContent = `cannot reach doproxy: ${error.message}`;
    }
  }

  for (const button of document.querySelectorAll("#windows button")) {
    button.addEventListener("click", () => {
      state.window = button.dataset.window;
      for (const b of document.querySelectorAll("#windows button")) b.classList.toggle("selected", b === button);
      void refresh();
    });
  }
  $("#login").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("#token").value;
    sessionStorage.setItem("doproxy-token", state.token);
    void refresh();
  });
  window.addEventListener("resize", () => {
    for (const [name, chart] of Object.entries(state.charts)) chart.setSize({ width: $(`#chart-${name}`).clientWidth, height: 200 });
  });

  void refresh();
  setInterval(refresh, REFRESH_MS);
})();
