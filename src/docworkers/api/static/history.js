// The history view: jobs processed and failed per minute over the last 24 hours and per day
// over the last 30 days (GET /api/history), drawn as inline SVG built with DOM calls (no
// library; the page's CSP allows no inline styles, so the look is in history.css), each chart
// with a title, a description and a table equivalent; and p50/p95 processing time per job type.
import { $, api, card, el, plural, registerView } from "./core.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 1000;
const HEIGHT = 220;
const PAD = { left: 46, right: 10, top: 12, bottom: 26 };
const root = () => $("view-history");
const state = { built: false, keys: {} };

// -- SVG --------------------------------------------------------------------------------------

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// 1, 2, 5, 10, 20, 50, ...: the smallest at least `value`.
function niceCeiling(value) {
  const power = 10 ** Math.floor(Math.log10(Math.max(value, 1)));
  return [1, 2, 5, 10].map((m) => m * power).find((n) => n >= value);
}

// A stacked bar per bucket: completed (processed - failed) below, failed above. Buckets with
// nothing are not drawn. `label(i)` names bucket i; `tick(i)` is its axis label or null.
function barChart({ id, title, description, series, label, tick }) {
  const count = series.processed.length;
  const top = niceCeiling(Math.max(...series.processed, 1));
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const step = plotWidth / count;
  const y = (value) => PAD.top + plotHeight - (value / top) * plotHeight;
  const height = (value) => (value > 0 ? Math.max((value / top) * plotHeight, 1.5) : 0);

  const chart = svg("svg", { id, class: "chart", viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img", "aria-labelledby": `${id}-title ${id}-desc` },
  svg("title", { id: `${id}-title` }, title),
  svg("desc", { id: `${id}-desc` }, description));

  const grid = svg("g", { class: "grid", "aria-hidden": "true" });
  for (const value of [0, top / 2, top]) {
    grid.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(value), y2: y(value) }),
      svg("text", { x: PAD.left - 6, y: y(value) + 4, class: "y-label" }, String(value)));
  }
  for (let i = 0; i < count; i += 1) {
    const text = tick(i);
    if (text === null) continue;
    const x = PAD.left + (i + 0.5) * step;
    grid.append(svg("line", { x1: x, x2: x, y1: PAD.top + plotHeight, y2: PAD.top + plotHeight + 4,
      class: "tick" }),
    svg("text", { x, y: HEIGHT - 6, class: "x-label" }, text));
  }
  chart.append(grid);

  const bars = svg("g", { class: "bars" });
  const width = Math.max(step * 0.8, 1.6); // a minute is under a pixel wide: keep it visible
  series.processed.forEach((processed, i) => {
    if (!processed) return;
    const failed = series.failed[i];
    const completed = processed - failed;
    const x = PAD.left + i * step + (step - width) / 2;
    const bar = svg("g", { class: "bar" },
      svg("title", {}, `${label(i)}: ${processed} processed, ${failed} failed`));
    const completedHeight = height(completed);
    if (completed) {
      bar.append(svg("rect", { class: "completed", x, width, y: y(0) - completedHeight,
        height: completedHeight }));
    }
    if (failed) {
      const failedHeight = height(failed);
      bar.append(svg("rect", { class: "failed", x, width,
        y: y(0) - completedHeight - failedHeight, height: failedHeight }));
    }
    bars.append(bar);
  });
  chart.append(bars);
  return chart;
}

// -- formatting -------------------------------------------------------------------------------

const timeOfDay = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const utcDay = (ms) => new Date(ms).toLocaleDateString([], { month: "short", day: "numeric",
  timeZone: "UTC" });

function duration(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

const sum = (values) => values.reduce((a, b) => a + b, 0);

function busiest(series, label) {
  let best = -1;
  series.processed.forEach((n, i) => { if (n > 0 && (best < 0 || n > series.processed[best])) best = i; });
  return best < 0 ? "" : ` The busiest, ${label(best)}, had ${series.processed[best]}.`;
}

function describe(series, span, label) {
  const processed = sum(series.processed);
  const failed = sum(series.failed);
  return `${span}: ${plural(processed, "job")} processed, ${failed} of them failed.`
    + busiest(series, label);
}

// -- the view ---------------------------------------------------------------------------------

function legend() {
  return el("p", { class: "legend" },
    el("span", { class: "swatch completed", "aria-hidden": "true" }), "completed ",
    el("span", { class: "swatch failed", "aria-hidden": "true" }), "failed (attempts that "
      + "failed: retried, dead-lettered, failed for good, or whose lease expired)");
}

function build() {
  root().replaceChildren(
    el("dl", { id: "history-totals", class: "stats history-totals" }),
    card("history-minutes-card", "Last 24 hours, per minute", legend(),
      el("div", { id: "history-minutes", class: "chart-box" }),
      el("details", {}, el("summary", { text: "As a table, per hour" }),
        el("div", { id: "history-hours-table", class: "scroll" }))),
    card("history-days-card", "Last 30 days, per day (UTC)",
      el("div", { id: "history-days", class: "chart-box" }),
      el("details", {}, el("summary", { text: "As a table" }),
        el("div", { id: "history-days-table", class: "scroll" }))),
    card("history-types-card", "Processing time by job type",
      el("p", { class: "hint", id: "history-bound" }),
      el("div", { class: "scroll" }, el("table", { class: "table", id: "history-types" },
        el("thead", {}, el("tr", {},
          ...["Job type", "Completed 24 h", "p50 24 h", "p95 24 h", "Completed 30 d",
            "p50 30 d", "p95 30 d", "Failed 30 d"].map((text) => el("th", { scope: "col", text })))),
        el("tbody", {}))),
      el("p", { id: "history-no-types", class: "empty", text: "No job finished in the last 30 days." })),
  );
  state.built = true;
}

// Re-render a part only when its data changed (keeps focus, an open <details>, a tooltip).
function renderOnce(name, data, render) {
  const key = JSON.stringify(data);
  if (state.keys[name] === key) return;
  state.keys[name] = key;
  render();
}

function countsTable(caption, rows) {
  return el("table", { class: "table counts" },
    el("caption", { text: caption }),
    el("thead", {}, el("tr", {}, ...["When", "Processed", "Failed"].map((text) =>
      el("th", { scope: "col", text })))),
    el("tbody", {}, ...rows.map(([when, processed, failed]) => el("tr", {},
      el("th", { scope: "row", text: when }), el("td", { class: "num", text: String(processed) }),
      el("td", { class: "num", text: String(failed) })))));
}

function renderTotals(history) {
  const minutes = history.per_minute;
  const processed = sum(minutes.processed);
  const failed = sum(minutes.failed);
  const days = history.per_day;
  const tiles = [
    ["processed 24 h", processed], ["failed 24 h", failed],
    ["failure rate 24 h", processed ? `${((100 * failed) / processed).toFixed(1)} %` : "–"],
    ["processed 30 d", sum(days.processed)], ["failed 30 d", sum(days.failed)],
  ];
  $("history-totals").replaceChildren(...tiles.map(([name, value]) =>
    el("div", {}, el("dt", { text: name }), el("dd", { text: String(value) }))));
}

function renderMinutes(minutes) {
  const at = (i) => minutes.start_ms + i * minutes.step_ms;
  const label = (i) => timeOfDay(at(i));
  const tick = (i) => {
    const date = new Date(at(i));
    return date.getMinutes() === 0 && date.getHours() % 3 === 0 ? label(i) : null;
  };
  const span = `Per minute from ${label(0)} to ${label(minutes.processed.length - 1)}`;
  $("history-minutes").replaceChildren(barChart({ id: "history-minutes-chart",
    title: "Jobs processed and failed per minute, last 24 hours",
    description: describe(minutes, span, label), series: minutes, label, tick }));
  const hours = new Map(); // the hour's first minute -> [processed, failed]
  minutes.processed.forEach((n, i) => {
    const hour = at(i) - (at(i) % 3_600_000);
    const row = hours.get(hour) || [0, 0];
    row[0] += n;
    row[1] += minutes.failed[i];
    hours.set(hour, row);
  });
  const rows = [...hours].reverse().map(([hour, [p, f]]) => [`${timeOfDay(hour)}–${timeOfDay(hour + 3_600_000)}`, p, f]);
  $("history-hours-table").replaceChildren(countsTable("Per hour, newest first", rows));
}

function renderDays(days) {
  const at = (i) => days.start_ms + i * days.step_ms;
  const label = (i) => utcDay(at(i));
  const count = days.processed.length;
  const tick = (i) => ((count - 1 - i) % 5 === 0 ? label(i) : null);
  const span = `Per day from ${label(0)} to ${label(count - 1)}`;
  $("history-days").replaceChildren(barChart({ id: "history-days-chart",
    title: "Jobs processed and failed per day, last 30 days",
    description: describe(days, span, label), series: days, label, tick }));
  const rows = days.processed.map((p, i) => [label(i), p, days.failed[i]]).reverse();
  $("history-days-table").replaceChildren(countsTable("Per day (UTC), newest first", rows));
}

function renderTypes(history) {
  const bound = Math.round(history.error_bound * 100);
  $("history-bound").textContent = `Percentiles of completed jobs, within ±${bound} % (durations `
    + "are counted in bins); 24 h covers the hours that overlap the last 24 hours.";
  const types = Object.entries(history.by_type);
  root().querySelector("#history-types tbody").replaceChildren(...types.map(([type, row]) =>
    el("tr", { "data-type": type },
      el("th", { scope: "row", class: "name" }, el("span", { class: "truncate", title: type, text: type })),
      el("td", { class: "num", text: String(row.last_24h.completed) }),
      el("td", { class: "num", text: duration(row.last_24h.p50_ms) }),
      el("td", { class: "num", text: duration(row.last_24h.p95_ms) }),
      el("td", { class: "num", text: String(row.last_30d.completed) }),
      el("td", { class: "num", text: duration(row.last_30d.p50_ms) }),
      el("td", { class: "num", text: duration(row.last_30d.p95_ms) }),
      el("td", { class: "num", text: String(row.failed_30d) }))));
  $("history-no-types").hidden = types.length > 0;
}

async function refresh() {
  const history = await api("/api/history");
  if (!state.built) build();
  renderOnce("totals", [history.per_minute, history.per_day.processed, history.per_day.failed],
    () => renderTotals(history));
  renderOnce("minutes", history.per_minute, () => renderMinutes(history.per_minute));
  renderOnce("days", history.per_day, () => renderDays(history.per_day));
  renderOnce("types", [history.by_type, history.error_bound], () => renderTypes(history));
}

registerView("history", { show: refresh, refresh });
