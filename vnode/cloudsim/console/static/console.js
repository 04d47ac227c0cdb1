// The cloudsim console: polls two small JSON endpoints once a second and redraws.
// No framework and no build step; every value is written with textContent (never innerHTML).
"use strict";

(function () {
  const POLL_MS = 1000;
  const PAGE = 50;
  const GROUP_OF = {
    Scheduling: "pending", Pending: "pending", Restarting: "pending",
    Running: "running", Succeeded: "succeeded",
    Failed: "failed", Expired: "failed", ScheduleFailed: "failed",
    Terminating: "terminating",
  };
  const GROUPS = ["running", "pending", "succeeded", "failed", "terminating"];
  const COLOURS = {
    running: "var(--running)", pending: "var(--pending)", succeeded: "var(--succeeded)",
    failed: "var(--failed)", terminating: "var(--terminating)",
  };

  const state = { offset: 0, status: "", q: "", total: 0, lastOk: 0 };
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "style") node.style.cssText = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const int = (n) => Number(n).toLocaleString("en-US");
  const num = (n) => Number(n).toLocaleString("en-US", { maximumFractionDigits: 2 });

  function usd(value) {
    if (value === 0) return "$0.00";
    if (value < 0.01) return "$" + value.toFixed(6);
    if (value < 100) return "$" + value.toFixed(4);
    return "$" + value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  function age(seconds) {
    const s = Math.floor(seconds);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }

  function meter(used, capacity) {
    const share = capacity > 0 ? Math.min(1, used / capacity) : 1;
    const kind = share >= 0.95 ? "meter full" : share >= 0.75 ? "meter warn" : "meter";
    return el("div", { class: kind }, el("i", { style: `width:${(share * 100).toFixed(1)}%` }));
  }

  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function setLink(kind) {
    const link = $("link");
    link.dataset.state = kind;
    link.textContent = kind === "live" ? "live" : kind === "down" ? "disconnected" : "connecting";
  }

  async function getJSON(url) {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return response.json();
  }

  function renderSummary(s) {
    $("region").textContent = "region " + s.region;
    $("profile").textContent = "profile " + s.profile;
    const scale = s.clock_scale === 0 ? "paused" : s.clock_scale === 1 ? "real time" : `×${num(s.clock_scale)}`;
    $("clock").textContent = new Date(s.now * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC · " + scale;

    $("t-live").textContent = int(s.live);
    $("t-deleted").textContent = int(s.deleted) + " deleted";
    for (const group of GROUPS) $("t-" + group).textContent = int(s.groups[group] || 0);
    $("t-cpu").textContent = num(s.used_cpu);
    $("t-quota").textContent = "of " + int(s.max_cpu) + " quota";
    const cost = $("t-cost");
    cost.textContent = usd(s.cost_usd);
    cost.dataset.usd = String(s.cost_usd);

    const bar = $("statusbar");
    const total = GROUPS.reduce((sum, g) => sum + (s.groups[g] || 0), 0);
    bar.replaceChildren(...GROUPS.filter((g) => s.groups[g]).map((g) =>
      el("span", { title: `${g}: ${s.groups[g]}`, style: `width:${(100 * s.groups[g]) / total}%;background:${COLOURS[g]}` })));

    fill($("zones"), s.zones.map((z) => {
      const limits = Object.entries(z.limits);
      const stock = limits.length === 0
        ? el("span", { class: "small" }, "plenty")
        : el("span", {}, ...limits.map(([spec, v]) =>
            el("span", { class: v.left === 0 ? "tag" : "small" }, `${spec === "*" ? "all specs" : spec}: ${v.left} left `)));
      return el("tr", {}, el("td", {}, z.zone), el("td", { class: "num" }, int(z.in_use)), el("td", {}, stock));
    }));

    fill($("vswitches"), s.vswitches.map((v) => el("tr", {},
      el("td", {}, el("div", { class: "mono trunc", title: v.id }, v.id), el("div", { class: "small" }, v.cidr)),
      el("td", {}, v.zone),
      el("td", {},
        el("div", { class: "small" }, `${int(v.used)} / ${int(v.capacity)}`, v.exhausted ? el("span", { class: "tag" }, "exhausted") : null),
        meter(v.exhausted ? v.capacity : v.used, v.capacity)))));

    fill($("limits"), s.rate_limits.map((r) => el("tr", {},
      el("td", {}, r.operation),
      el("td", {}, el("div", { class: "small" }, `${Math.floor(r.tokens)} / ${int(r.burst)}`), meter(r.burst - r.tokens, r.burst)),
      el("td", { class: "num" }, `${num(r.rate)}/s`))));
    const faults = Object.entries(s.faults);
    $("faults").replaceChildren(...faults.map(([op, f]) => el("div", { class: "small" },
      el("span", { class: "tag" }, "fault"), ` ${op}: error ${Math.round(f.error_rate * 100)}%` +
      `, throttle ${Math.round(f.throttle_rate * 100)}%, +${num(f.latency_ms)} ms`)));

    const nodes = Object.entries(s.nodes);
    fill($("nodes"), nodes.length === 0
      ? [el("tr", {}, el("td", { class: "small", colspan: "2" }, "no instance is tagged with a node"))]
      : nodes.map(([node, count]) => el("tr", {}, el("td", {}, node), el("td", { class: "num" }, int(count)))));
    fill($("namespaces"), s.namespaces.length === 0
      ? [el("tr", {}, el("td", { class: "small", colspan: "3" }, "no instance is tagged with a namespace yet"))]
      : s.namespaces.map((n) => el("tr", {},
          el("td", {}, n.namespace), el("td", { class: "num" }, int(n.live)),
          el("td", { class: "num", "data-usd": String(n.cost_usd) }, usd(n.cost_usd)))));
    fill($("groups"), s.security_groups.map((g) => el("tr", {},
      el("td", {}, el("div", { class: "mono trunc", title: g.id }, g.id), el("div", { class: "small" }, g.kind)),
      el("td", {}, el("div", { class: "small" }, `${int(g.members)} / ${int(g.cap)}`), meter(g.members, g.cap)))));
  }

  function renderInstances(page) {
    state.total = page.total;
    $("count").textContent = `${int(page.total)}${state.status || state.q ? " matching" : ""}`;
    fill($("rows"), page.items.map((i) => {
      const group = GROUP_OF[i.status] || "pending";
      return el("tr", { "data-id": i.id },
        el("td", {}, el("span", { class: "name" }, i.name), el("span", { class: "id mono" }, `${i.id} · ${i.dialect}`)),
        el("td", {}, el("span", { class: `pill ${group}`, "data-status": i.status }, i.status)),
        el("td", {}, `${num(i.cpu)} vCPU · ${num(i.memory)} GiB`),
        el("td", {}, i.zone),
        el("td", { class: "mono" }, i.ip),
        el("td", { class: "num" }, age(i.age)),
        el("td", {}, i.node || "–"),
        el("td", {}, i.pod || "–"),
        el("td", { class: "num" }, int(i.restarts)),
        el("td", { class: "num" }, usd(i.cost)));
    }));
    $("empty").hidden = page.total > 0;
    const last = Math.min(page.offset + page.items.length, page.total);
    $("range").textContent = page.total ? `${int(page.offset + 1)}–${int(last)} of ${int(page.total)}` : "";
    $("prev").disabled = page.offset === 0;
    $("next").disabled = last >= page.total;
  }

  async function refresh() {
    const params = new URLSearchParams({ offset: state.offset, limit: PAGE, status: state.status, q: state.q });
    try {
      const [summary, page] = await Promise.all([
        getJSON("/console/api/summary"),
        getJSON("/console/api/instances?" + params),
      ]);
      renderSummary(summary);
      renderInstances(page);
      state.lastOk = Date.now();
      setLink("live");
    } catch (error) {
      setLink(Date.now() - state.lastOk > 5000 ? "down" : "connecting");
    }
  }

  let timer = null;
  async function loop() {
    clearTimeout(timer);
    await refresh();
    timer = setTimeout(loop, POLL_MS);
  }

  $("tabs").addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    for (const b of $("tabs").querySelectorAll("button")) b.classList.toggle("active", b === button);
    state.status = button.dataset.status;
    state.offset = 0;
    loop();
  });
  let typing = null;
  $("search").addEventListener("input", (event) => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.q = event.target.value.trim(); state.offset = 0; loop(); }, 250);
  });
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loop(); });
  $("next").addEventListener("click", () => { state.offset += PAGE; loop(); });

  loop();
})();
