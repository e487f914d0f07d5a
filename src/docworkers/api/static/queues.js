// The queues view: every queue of the deployment with its depth by state and pause / resume,
// the live workers (host, process, running jobs, concurrency and scaling, circuit breakers,
// outcomes, how old their numbers are), the scheduled jobs (delayed and retrying) with
// "run now", and the dead jobs filtered by type, error code and text, retried or deleted in
// bulk. Routes: #/queues, #/queues/dead (scrolls to the dead jobs).
import {
  $, api, badge, button, card, el, formatSeconds, nameCell, plural, postJson, registerView, renderOnce,
  servicesLabel,
} from "./core.js";

const DEPTH = ["ready", "delayed", "retrying", "processing", "failed", "dead"];
const DEAD_PAGE = 25;
const LIVE_MS = 1000; // queues and workers are read this often while the view is shown
const root = () => $("view-queues");

// Kept across the 2-second refreshes.
const state = { built: false, deadOffset: 0, filter: { type: "", code: "", text: "" },
  deadTotal: 0, outcome: null, queues: [], liveTimer: null };

// -- small parts ----------------------------------------------------------------------------

function jobLink(job, text) {
  const label = text || job.payload?.filename || job.type;
  return el("a", { class: "truncate", href: `#/jobs/${encodeURIComponent(job.id)}`,
    title: `${label} (${job.id})`, text: label });
}

// "in 12 min", "2 s ago".
function relative(iso) {
  if (!iso) return "";
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  return seconds >= 0 ? `in ${formatSeconds(seconds)}` : `${formatSeconds(-seconds)} ago`;
}

function table(headers, bodyId, className = "") {
  return el("table", { class: `table ${className}` },
    el("thead", {}, el("tr", {}, ...headers.map(([text, title]) =>
      el("th", { scope: "col", title, text })))),
    el("tbody", { id: bodyId }));
}

function setOutcome(text, kind = "ok") {
  state.outcome = { text, kind };
  const node = $("queues-outcome");
  node.className = `status ${kind}`;
  node.textContent = text;
}

async function act(work, done) {
  try {
    const result = await work();
    if (done) setOutcome(done(result));
  } catch (error) {
    setOutcome(error.message, "error");
  }
  await refresh();
}

// -- the page's skeleton, built once -------------------------------------------------------

function build() {
  const filter = el("form", { id: "dead-filter", class: "dead-filter", role: "search",
    onsubmit: (event) => { event.preventDefault(); applyFilter(); } },
  el("div", { class: "field" }, el("label", { for: "dead-type", text: "Type" }),
    el("select", { id: "dead-type", name: "type" }, el("option", { value: "", text: "any" }))),
  el("div", { class: "field" }, el("label", { for: "dead-code", text: "Error code" }),
    el("input", { id: "dead-code", name: "code", autocomplete: "off", placeholder: "any" })),
  el("div", { class: "field grow" }, el("label", { for: "dead-text", text: "Text" }),
    el("input", { id: "dead-text", name: "text", type: "search", autocomplete: "off",
      placeholder: "in the id, error or file name" })),
  el("button", { type: "submit", text: "Filter" }));
  root().replaceChildren(
    el("p", { id: "queues-outcome", class: "status", role: "status", "aria-live": "polite" }),
    card("queues-card", "Queues",
      el("p", { class: "hint", text: "A paused queue keeps and accepts its jobs, but no worker "
        + "takes one until it is resumed; running jobs finish." }),
      el("div", { class: "scroll" }, table([["Queue"], ["State"],
        ["Ready", "waiting for a worker"], ["Delayed", "waiting for their time"],
        ["Retrying", "waiting for their next attempt"], ["Processing"], ["Failed"], ["Dead"],
        ["Workers"], ["", ""]], "queue-rows", "queues"))),
    card("workers-card", "Workers",
      el("p", { class: "hint", text: "Live workers, as their heartbeat published them every "
        + "second. Done, Retried, Failed and Dead count a worker's attempts by the status "
        + "they left the job in, the words of the queue counts above." }),
      el("div", { class: "scroll" }, table([["Worker"], ["Host / pid"], ["Queue"],
        ["Busy", "running jobs / concurrency"], ["Running jobs"],
        ["Scaling", "concurrency bounds and the last scaling decision"],
        ["Services", "circuit breakers of the worker's process"],
        ["Done", "attempts that completed their job"],
        ["Retried", "failed attempts whose job will run again"],
        ["Failed", "attempts that failed their job for good"],
        ["Dead", "attempts after which the job was dead-lettered"],
        ["Seen", "how old these numbers are"]], "worker-rows", "workers-live"))),
    el("p", { id: "no-live-workers", class: "empty", hidden: "",
      text: "No live workers: jobs wait until one starts." }),
    card("scheduled-card", "Scheduled",
      el("p", { class: "hint", text: "Delayed jobs and retries waiting for their time, "
        + "soonest first. Run now moves one to its queue's ready jobs." }),
      el("div", { class: "field kind" }, el("label", { for: "scheduled-kind", text: "Show" }),
        el("select", { id: "scheduled-kind", onchange: () => refreshScheduled(state.queues)
          .catch((error) => setOutcome(error.message, "error")) },
        el("option", { value: "", text: "delayed and retrying" }),
        el("option", { value: "delayed", text: "delayed" }),
        el("option", { value: "retrying", text: "retrying" }))),
      el("div", { class: "scroll" }, table([["Job"], ["Type"], ["Queue"], ["Kind"], ["Due"],
        ["Retries"], ["Last error"], ["", ""]], "scheduled-rows", "scheduled")),
      el("p", { id: "no-scheduled", class: "empty", text: "No delayed or retrying jobs." })),
    card("dead-card", "Dead",
      el("p", { class: "hint", text: "Jobs that used up their retries. Filter them, then "
        + "retry or delete every match at once." }),
      filter,
      el("div", { class: "actions bulk" },
        el("span", { id: "dead-count", class: "status" }),
        el("button", { type: "button", id: "dead-retry", class: "secondary",
          text: "Retry all matching", onclick: () => bulk("retry") }),
        el("button", { type: "button", id: "dead-delete", class: "danger",
          text: "Delete all matching", onclick: () => bulk("delete") })),
      el("div", { class: "scroll" }, table([["Job"], ["Type"], ["Queue"], ["Error"],
        ["Retries"], ["Died"], ["", ""]], "dead-rows", "dead")),
      el("p", { id: "no-dead", class: "empty", text: "No dead jobs match." }),
      el("nav", { id: "dead-pager", class: "pager", "aria-label": "Dead job pages" })));
  state.built = true;
}

// -- queues -----------------------------------------------------------------------------------

function renderQueues(queues) {
  renderOnce($("queue-rows"), queues, () => queues.map((q) => el("tr",
    { "data-queue": q.name, class: q.paused ? "paused" : "" },
    nameCell(q.name),
    el("td", {}, badge(q.paused ? "paused" : "running"),
      q.paused_since ? el("span", { class: "since", title: new Date(q.paused_since).toLocaleString(),
        text: ` since ${new Date(q.paused_since).toLocaleTimeString()}` }) : null),
    ...DEPTH.map((name) => el("td", { class: "num", text: String(q.depth[name] ?? 0) })),
    el("td", { class: "num", text: String(q.workers) }),
    el("td", { class: "row-actions" }, q.paused
      ? button("Resume", () => act(() => postJson(`/api/queues/${encodeURIComponent(q.name)}/resume`, {}),
        () => `Resumed ${q.name}: workers take its jobs again.`), { "aria-label": `Resume ${q.name}` })
      : button("Pause", () => act(() => postJson(`/api/queues/${encodeURIComponent(q.name)}/pause`, {}),
        () => `Paused ${q.name}: no worker takes its jobs until it is resumed.`),
      { "aria-label": `Pause ${q.name}` })))));
  const types = $("dead-type");
  const known = new Set([...types.options].map((o) => o.value));
  for (const type of queues.flatMap((q) => q.job_types || [])) {
    if (!known.has(type)) types.append(el("option", { value: type, text: type }));
    known.add(type);
  }
}

// -- workers ----------------------------------------------------------------------------------

function scalingLabel(w) {
  const how = w.scaling || "fixed";
  return how === "fixed" ? how : `${w.min_concurrency}-${w.max_concurrency} ${how}`;
}

function renderWorkers(workers) {
  const rows = workers.map((w) => {
    const outcomes = w.outcomes || {};
    const jobs = w.current_jobs || [];
    const more = (w.in_flight || 0) - jobs.length;
    return el("tr", { "data-worker": w.worker_name },
      nameCell(w.worker_name),
      el("td", { class: "name" }, el("span", { class: "truncate", title: `${w.host} (pid ${w.pid})`,
        text: `${w.host} / ${w.pid}` })),
      el("td", { class: "name" }, el("span", { class: "truncate", title: w.queue, text: w.queue })),
      el("td", { class: "num busy", text: `${w.in_flight} / ${w.concurrency}` }),
      el("td", { class: "running" }, ...jobs.map((job) => el("div", {},
        jobLink(job, job.type))), more > 0 ? el("div", { class: "hint", text: `+${more} more` }) : null),
      el("td", { text: scalingLabel(w) }),
      el("td", { text: servicesLabel(w) }),
      el("td", { class: "num done", text: String(outcomes.completed || 0) }),
      el("td", { class: "num retried", text: String(outcomes.retrying || 0) }),
      el("td", { class: "num failed", text: String(outcomes.failed || 0) }),
      el("td", { class: "num dead", text: String(outcomes.dead || 0) }),
      el("td", { class: "num seen", text: w.age_seconds == null ? "–" : `${w.age_seconds.toFixed(1)} s` }));
  });
  $("worker-rows").replaceChildren(...rows);
  $("no-live-workers").hidden = workers.length > 0;
}

// -- scheduled --------------------------------------------------------------------------------

async function refreshScheduled(queues) {
  const kind = $("scheduled-kind").value;
  const query = `limit=50${kind ? `&kind=${kind}` : ""}`;
  const pages = await Promise.all(queues.map((q) =>
    api(`/api/queues/${encodeURIComponent(q.name)}/scheduled?${query}`)
      .then((body) => body.jobs.map((job) => ({ ...job, queue: q.name })))));
  const jobs = pages.flat().sort((a, b) => (a.run_at || "").localeCompare(b.run_at || ""))
    .slice(0, 50);
  renderOnce($("scheduled-rows"), jobs.map((j) => [j.id, j.status, j.run_at, j.retries]), () =>
    jobs.map((job) => el("tr", { "data-scheduled-id": job.id },
      el("td", { class: "name" }, jobLink(job)),
      el("td", { text: job.type }),
      nameCell(job.queue),
      el("td", {}, badge(job.status === "retrying" ? "retrying" : "delayed")),
      el("td", { class: "due", title: job.run_at ? new Date(job.run_at).toLocaleString() : "",
        text: relative(job.run_at) }),
      el("td", { class: "num", text: String(job.retries) }),
      el("td", { class: "name" }, job.error ? el("span", { class: "truncate",
        title: `${job.error.code}: ${job.error.message}`, text: `${job.error.code}: ${job.error.message}` }) : null),
      el("td", { class: "row-actions" }, button("Run now", () => act(
        () => postJson(`/api/queues/${encodeURIComponent(job.queue)}/jobs/${encodeURIComponent(job.id)}/run-now`, {}),
        () => `Queued ${job.payload?.filename || job.type} to run now.`),
      { "aria-label": `Run ${job.payload?.filename || job.id} now` })))));
  $("no-scheduled").hidden = jobs.length > 0;
  $("no-scheduled").textContent = { "": "No delayed or retrying jobs.", delayed: "No delayed jobs.",
    retrying: "No retrying jobs." }[kind];
}

// -- dead -------------------------------------------------------------------------------------

function filterQuery() {
  const params = new URLSearchParams();
  const { type, code, text } = state.filter;
  if (type) params.append("type", type);
  if (code) params.append("code", code);
  if (text) params.set("text", text);
  return params;
}

function filterBody() {
  const { type, code, text } = state.filter;
  return { types: type ? [type] : [], codes: code ? [code] : [], text };
}

function applyFilter() {
  state.filter = { type: $("dead-type").value, code: $("dead-code").value.trim(),
    text: $("dead-text").value.trim() };
  state.deadOffset = 0;
  refreshDead().catch((error) => setOutcome(error.message, "error"));
}

async function refreshDead() {
  const params = filterQuery();
  params.set("limit", String(DEAD_PAGE));
  params.set("offset", String(state.deadOffset));
  const body = await api(`/api/dead?${params}`);
  state.deadTotal = body.total;
  const filtered = Boolean(state.filter.type || state.filter.code || state.filter.text);
  $("dead-count").textContent = filtered ? `${plural(body.total, "dead job")} match`
    : plural(body.total, "dead job");
  $("dead-retry").disabled = body.total === 0;
  $("dead-delete").disabled = body.total === 0;
  $("dead-retry").textContent = filtered ? `Retry ${body.total} matching` : `Retry all ${body.total}`;
  $("dead-delete").textContent = filtered ? `Delete ${body.total} matching` : `Delete all ${body.total}`;
  renderOnce($("dead-rows"), body.jobs.map((j) => j.id), () => body.jobs.map((job) => {
    const error = job.error ? `${job.error.code}: ${job.error.message}` : "";
    const name = job.payload?.filename || job.type;
    return el("tr", { "data-dead-id": job.id },
      el("td", { class: "name" }, jobLink(job)),
      el("td", { text: job.type }),
      nameCell(job.queue),
      el("td", { class: "name" }, el("span", { class: "truncate", title: error, text: error })),
      el("td", { class: "num", text: String(job.retries) }),
      el("td", { text: relative(job.completed_at) }),
      el("td", { class: "row-actions" }, button("Retry", () => act(
        () => api(`/api/dlq/${encodeURIComponent(job.id)}/requeue`, { method: "POST" }),
        () => `Queued ${name} again.`), { "aria-label": `Retry ${name}` })));
  }));
  $("no-dead").hidden = body.jobs.length > 0;
  const pager = $("dead-pager");
  const last = state.deadOffset + body.jobs.length;
  pager.hidden = body.total <= DEAD_PAGE;
  renderOnce(pager, [state.deadOffset, last, body.total], () => [
    button("Previous", () => { state.deadOffset = Math.max(0, state.deadOffset - DEAD_PAGE); refreshDead(); },
      { disabled: state.deadOffset === 0 ? "" : null }),
    el("span", { class: "range", text: ` ${body.total ? state.deadOffset + 1 : 0}–${last} of ${body.total} ` }),
    button("Next", () => { state.deadOffset += DEAD_PAGE; refreshDead(); },
      { disabled: last >= body.total ? "" : null }),
  ]);
}

async function bulk(action) {
  const count = state.deadTotal;
  const what = plural(count, "dead job");
  const verb = action === "retry" ? "Queue again" : "Delete for good";
  if (!confirm(`${verb} ${what}${filterQuery().toString() ? " matching the filter" : ""}?`)) return;
  await act(() => postJson(`/api/dead/${action}`, filterBody()), (result) =>
    (action === "retry" ? `Queued ${plural(result.retried, "dead job")} again.`
      : `Deleted ${plural(result.deleted, "dead job")}.`));
}

// -- view -------------------------------------------------------------------------------------

async function refreshLive() {
  const body = await api("/api/queues");
  state.queues = body.queues;
  renderQueues(body.queues);
  renderWorkers(body.workers);
  return body;
}

async function refresh() {
  if (!state.built) build();
  const body = await refreshLive();
  await Promise.all([refreshScheduled(body.queues), refreshDead()]);
}

// The workers publish every second; reading them every second too (between the page's
// refreshes) keeps what the table shows at most about two seconds old.
function startLive() {
  clearInterval(state.liveTimer);
  state.liveTimer = setInterval(() => {
    if (!document.hidden && document.body.dataset.auth === "ok") refreshLive().catch(() => {});
  }, LIVE_MS);
}

async function show(params) {
  await refresh();
  startLive();
  if (params[0] === "dead") $("dead-card").scrollIntoView();
}

function hide() {
  clearInterval(state.liveTimer);
  state.liveTimer = null;
}

registerView("queues", { show, refresh, hide });
