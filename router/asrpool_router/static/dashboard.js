// The dashboard page: polls /stats/live about once a second and draws every pool and pod.
//
// The data is the router's: /stats/live is /stats (built by the same function) plus live
// sessions, OOM answers per pod and the last minutes of each pool, sampled by the router.
// The words, numbers and plot paths come from dashboard-view.js (pure); this file holds the
// shell: the poll loop, the key, and the DOM (elements are kept by pool and pod and updated
// in place, so nothing flickers and a phone is not asked to rebuild the page every second).
// All state lives in one Dashboard object made by main(): nothing mutable at module level.

import {
  budgetBar,
  countsText,
  formatNumber,
  formatSeconds,
  plotPaths,
  podName,
  podState,
  pollError,
  queueText,
  spanText,
} from "./dashboard-view.js";
import { KEY_STORAGE, Remembered, browserStorage } from "./storage.js";

const PERIOD_MS = 1000;
const RETRY_MS = 3000; // after an error: slower, until it clears
const FETCH_TIMEOUT_MS = 5000;
const SPAN_S = 300; // the plots show the router's whole history: five minutes
const PLOT = Object.freeze({ width: 300, height: 60 });

function field(root, name) {
  return root.querySelector(`[data-field="${name}"]`);
}

function setText(el, text) {
  if (el && el.textContent !== text) el.textContent = text;
}

class Dashboard {
  constructor(doc, remembered) {
    this.doc = doc;
    this.remembered = remembered; // the key: the recorder page's entry, one for both pages
    this.ui = {
      apiKey: doc.getElementById("api-key"),
      conn: doc.getElementById("conn"),
      error: doc.getElementById("error"),
      summary: doc.getElementById("summary"),
      pools: doc.getElementById("pools"),
      noPools: doc.getElementById("no-pools"),
      poolTemplate: doc.getElementById("pool-template"),
      podTemplate: doc.getElementById("pod-template"),
    };
    this.poolViews = new Map(); // model → {root, pods: Map(pod id → element)}
    this.timer = null;
    this.polls = 0;
  }

  start() {
    const key = this.remembered.get(KEY_STORAGE);
    if (key) this.ui.apiKey.value = key;
    this.ui.apiKey.addEventListener("input", () => {
      this.remembered.set(KEY_STORAGE, this.ui.apiKey.value.trim());
      this.schedule(0); // a new key is tried at once
    });
    this.doc.addEventListener("visibilitychange", () => {
      if (!this.doc.hidden) this.schedule(0);
    });
    this.schedule(0);
  }

  schedule(delayMs) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.poll(), delayMs);
  }

  async poll() {
    this.timer = null;
    if (this.doc.hidden) return; // resumed by visibilitychange
    let delay = PERIOD_MS;
    try {
      const { status, body } = await this.fetchLive();
      if (status === 200) {
        this.render(body);
        this.showError("");
        this.setConn("live", `Live · updated ${new Date().toLocaleTimeString()}`);
      } else {
        this.showError(pollError(status, body));
        this.setConn("error", status === 401 || status === 403 ? "Key refused" : "Error");
        delay = RETRY_MS;
      }
    } catch {
      this.showError(pollError(0, null));
      this.setConn("error", "Router unreachable");
      delay = RETRY_MS;
    }
    this.polls += 1;
    this.doc.body.dataset.polls = String(this.polls);
    if (this.timer === null) this.schedule(delay); // unless a key change already did
  }

  async fetchLive() {
    const key = this.ui.apiKey.value.trim();
    const headers = key ? { Authorization: `Bearer ${key}` } : {};
    const abort = new AbortController();
    const timeout = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
    try {
      const resp = await fetch("stats/live", { headers, cache: "no-store", signal: abort.signal });
      let body = null;
      try {
        body = await resp.json();
      } catch {
        // not JSON (a proxy's page): the status says enough
      }
      return { status: resp.status, body };
    } finally {
      clearTimeout(timeout);
    }
  }

  // --- drawing ---------------------------------------------------------------------

  render(body) {
    const stats = body.stats;
    const s = this.ui.summary;
    setText(field(s, "requests"), formatNumber(stats.total_tasks));
    setText(field(s, "failed"), `${stats.failed_tasks} failed · ${stats.success_rate} ok`);
    setText(field(s, "slots"), `${stats.active_tasks} / ${stats.max_concurrent}`);
    setText(field(s, "queued"), String(stats.queue_depth));
    setText(field(s, "ooms"), String(stats.oom_errors));
    setText(field(s, "retries"), `retries: ${countsText(stats.retries)}`);
    setText(field(s, "sessions"), String(body.sessions.open));
    setText(field(s, "sessions-max"), `of ${body.sessions.max} allowed`);

    const seen = new Set();
    for (const pool of stats.pools) {
      seen.add(pool.model);
      const series = body.history.pools[pool.model] || null;
      const ooms = (body.ooms_by_pod || {})[pool.model] || {};
      this.renderPool(this.poolView(pool.model), pool, series, ooms);
    }
    for (const [model, view] of this.poolViews) {
      if (!seen.has(model)) {
        view.root.remove();
        this.poolViews.delete(model);
      }
    }
    this.ui.noPools.hidden = stats.pools.length > 0;
  }

  poolView(model) {
    let view = this.poolViews.get(model);
    if (!view) {
      const root = this.ui.poolTemplate.content.firstElementChild.cloneNode(true);
      root.dataset.pool = model;
      root.setAttribute("aria-label", `Pool ${model}`);
      setText(field(root, "model"), model);
      this.ui.pools.append(root);
      view = { root, pods: new Map() };
      this.poolViews.set(model, view);
    }
    return view;
  }

  renderPool(view, pool, series, ooms) {
    const root = view.root;
    setText(field(root, "slots"), `${pool.active_tasks} of ${pool.max_concurrent} slots in use`);
    setText(field(root, "queue"), queueText(pool.queue_by_priority));
    setText(field(root, "retries"), countsText(pool.retries));
    setText(field(root, "gave-up"), countsText(pool.gave_up));
    setText(field(root, "faults"), `${pool.oom_errors} · ${pool.ejections}`);
    if (series) this.renderPlots(root, series);

    const seen = new Set();
    for (const pod of pool.pods) {
      seen.add(pod.id);
      let el = view.pods.get(pod.id);
      if (!el) {
        el = this.ui.podTemplate.content.firstElementChild.cloneNode(true);
        el.dataset.pod = pod.id;
        setText(field(el, "id"), podName(pod.id));
        el.title = pod.id;
        root.querySelector(".pods").append(el);
        view.pods.set(pod.id, el);
      }
      this.renderPod(el, pod, ooms[pod.id] || 0);
    }
    for (const [id, el] of view.pods) {
      if (!seen.has(id)) {
        el.remove();
        view.pods.delete(id);
      }
    }
  }

  renderPod(el, pod, ooms) {
    const state = podState(pod);
    el.dataset.state = state.state;
    el.dataset.inFlight = String(pod.in_flight);
    el.dataset.budget = String(pod.budget);
    setText(field(el, "state"), state.label);
    setText(field(el, "detail"), state.detail);
    setText(field(el, "in-flight"), String(pod.in_flight));
    const cut = pod.budget < pod.max_budget ? " (cut after OOM)" : "";
    setText(field(el, "budget"), `${pod.budget} of ${pod.max_budget}${cut}`);
    setText(field(el, "audio"), `${formatNumber(pod.in_flight_audio_seconds)} s`);
    setText(field(el, "faults"), `${ooms} · ${pod.ejections}`);
    const bar = budgetBar(pod);
    el.querySelector(".bar-budget").style.width = `${bar.budget}%`;
    el.querySelector(".bar-use").style.width = `${bar.inUse}%`;
  }

  renderPlots(root, series) {
    const ago = series.ago_s;
    // The whole history once it is long enough; a minute at least, so a fresh router's few
    // points sit at the right edge of a time axis instead of stretching across it.
    const spanS = Math.min(SPAN_S, Math.max(60, ago.length ? ago[0] : 0));
    setText(field(root, "span"), spanText(spanS));
    const last = (values) => (values.length ? values[values.length - 1] : null);
    // name → [its lines, the value now (null: drawn below), how the plot's top reads]
    const plots = {
      requests: [[series.requests_per_s], (v) => formatNumber(last(v[0])), formatNumber],
      latency: [[series.p50_s, series.p95_s], null, formatSeconds],
      queue: [[series.queue_depth], (v) => formatNumber(last(v[0])), formatNumber],
      ooms: [[series.ooms_per_s], (v) => formatNumber(last(v[0])), formatNumber],
    };
    for (const [name, [lines, now, scale]] of Object.entries(plots)) {
      const figure = root.querySelector(`[data-plot="${name}"]`);
      const { paths, top } = plotPaths(ago, lines, { ...PLOT, spanS });
      figure.querySelectorAll("path").forEach((p, i) => p.setAttribute("d", paths[i] || ""));
      if (now) setText(field(figure, "now"), now(lines));
      setText(field(figure, "top"), `top ${scale(top)}`);
      figure.querySelector("svg").setAttribute("aria-label", `${name}, up to ${scale(top)}`);
      figure.dataset.points = String(ago.length);
    }
    // Latency over the last window only: "–" when nothing finished in it, not an old value.
    const latency = root.querySelector('[data-plot="latency"]');
    setText(field(latency, "p50"), `p50 ${formatSeconds(last(series.p50_s))}`);
    setText(field(latency, "p95"), `p95 ${formatSeconds(last(series.p95_s))}`);
  }

  // --- the rest of the page ----------------------------------------------------------

  showError(text) {
    setText(this.ui.error, text);
    this.ui.error.hidden = !text;
  }

  setConn(state, text) {
    this.ui.conn.dataset.state = state;
    setText(this.ui.conn, text);
  }
}

function main() {
  new Dashboard(document, new Remembered(browserStorage())).start();
  document.body.dataset.ready = "true";
}

main();
