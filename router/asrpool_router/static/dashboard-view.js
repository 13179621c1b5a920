// The dashboard's pure part: /stats/live data in, words, numbers and SVG paths out. No DOM,
// no fetch, no clock: dashboard.js draws what these return, and the browser test calls them.

// The queue's priority classes, in the order they are served (logic/request.py Priority).
export const PRIORITIES = Object.freeze(["realtime", "interactive", "batch"]);

/** A pod's state for the eye: `state` (a CSS/data hook), a short `label`, a longer `detail`. */
export function podState(pod) {
  if (pod.ejected) {
    const left = Number(pod.ejected_for_s) || 0;
    const when = left > 0 ? `back in ${left.toFixed(0)} s` : "probing with one request";
    const why = pod.ejection_reason || "faults";
    return {
      state: "ejected",
      label: "ejected",
      detail: `Out of rotation after ${why}; ${when} (ejected ${pod.ejections} time(s)).`,
    };
  }
  if (pod.terminating) {
    return { state: "terminating", label: "terminating", detail: "Draining: no new work." };
  }
  if (!pod.ready) {
    return {
      state: "unready",
      label: "unreachable",
      detail: "Not ready: its health check fails, so it gets no new work.",
    };
  }
  const failures = Number(pod.consecutive_failures) || 0;
  return {
    state: "ready",
    label: "ready",
    detail: failures > 0 ? `${failures} failure(s) in a row.` : "Taking work.",
  };
}

/** Widths in percent of the pod's ceiling: its budget now (after OOM cuts) and its busy slots. */
export function budgetBar(pod) {
  const ceiling = Math.max(1, Number(pod.max_budget) || 0, Number(pod.budget) || 0);
  const pct = (n) => Math.min(100, Math.max(0, (100 * (Number(n) || 0)) / ceiling));
  return { budget: pct(pod.budget), inUse: pct(pod.in_flight), cut: pod.budget < pod.max_budget };
}

/** "realtime 0 · interactive 2 · batch 5": every class, always in serving order. */
export function queueText(byPriority) {
  return PRIORITIES.map((p) => `${p} ${(byPriority && byPriority[p]) || 0}`).join(" · ");
}

/** "oom 3 · reset 1", largest first; `none` when empty. */
export function countsText(counts, none = "none") {
  const entries = Object.entries(counts || {}).filter(([, n]) => n > 0);
  if (!entries.length) return none;
  entries.sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return entries.map(([k, n]) => `${k.replaceAll("_", " ")} ${n}`).join(" · ");
}

/** A number as people read it on a dashboard: 0, 0.42, 3.1, 12, 1.2k. */
export function formatNumber(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const v = Number(value);
  const a = Math.abs(v);
  if (a >= 10000) return `${(v / 1000).toFixed(0)}k`;
  if (a >= 1000) return `${(v / 1000).toFixed(1)}k`;
  if (a >= 10 || Number.isInteger(v)) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1);
  return v.toFixed(2);
}

/** Seconds as a latency: "340 ms", "2.1 s", "–" for none. */
export function formatSeconds(value) {
  if (value === null || value === undefined) return "–";
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${formatNumber(value)} s`;
}

/** A pod's id as a card title: a URL without its scheme (the card's tooltip has it all). */
export function podName(id) {
  return String(id).replace(/^https?:\/\//, "");
}

/** A plot's time axis: "1 min ago", "5 min ago", "45 s ago". */
export function spanText(seconds) {
  return seconds >= 60 ? `${Math.round(seconds / 60)} min ago` : `${Math.round(seconds)} s ago`;
}

/**
 * SVG path data for each series in `lines`, on one scale, in a width × height box.
 * x follows `agoS` (seconds before the newest point) over `spanS`; y runs from 0 at the
 * bottom to `top` (the largest value, at least `minTop`). A null value breaks the line; a
 * point alone between breaks is drawn as a dot.
 */
export function plotPaths(agoS, lines, { width, height, spanS, minTop = 1 }) {
  let top = minTop;
  for (const values of lines) {
    for (const v of values) if (v !== null && v > top) top = v;
  }
  const x = (ago) => width - (Math.min(ago, spanS) / spanS) * width;
  const y = (v) => height - (v / top) * height;
  const paths = lines.map((values) => {
    const pieces = [];
    let piece = null;
    values.forEach((v, i) => {
      if (v === null || v === undefined || agoS[i] > spanS) {
        piece = null;
        return;
      }
      if (piece === null) pieces.push((piece = []));
      piece.push(`${x(agoS[i]).toFixed(1)} ${y(v).toFixed(1)}`);
    });
    // A lone point between gaps gets a dot (a zero-length stroke with round caps).
    return pieces.map((p) => `M${p.join("L")}${p.length === 1 ? "h0" : ""}`).join("");
  });
  return { paths, top };
}

/** What a failed /stats/live poll tells the person looking. */
export function pollError(status, body) {
  const message = body && body.error && body.error.message;
  if (status === 401 || status === 403) {
    return `${message || "Missing or wrong API key."} Enter the router's API key above.`;
  }
  if (status === 0) return "Cannot reach the router; retrying every few seconds.";
  return `The router answered HTTP ${status}${message ? `: ${message}` : ""}; retrying.`;
}
