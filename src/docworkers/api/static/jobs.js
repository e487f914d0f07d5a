// The jobs view: every retained job, filtered (type, status, queue, collection, user, tag,
// text in the filename or id) and paged with the total; and one job's page (#/jobs/<id>) with
// its payload, result, error and traceback, attempts, timeline and the actions that apply.
import { $, api, badge, el, nameCell, plural, registerView } from "./core.js";

const PAGE = 50;
const STATUSES = ["pending", "queued", "processing", "retrying", "completed", "failed", "dead",
  "cancelled"];
const FILTERS = ["text", "type", "status", "queue", "collection", "user", "tag"];

const state = { jobId: null, offset: 0, built: false, choices: false, confirmDelete: false,
  shown: "" }; // shown: the JSON last rendered, so an unchanged refresh leaves the page alone

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const seconds = (ms) => `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
const jobName = (job) => job.payload?.filename || job.payload?.document_id
  || job.payload?.collection || job.type;

// -- skeleton ---------------------------------------------------------------------------------

function field(id, label, control) {
  return el("div", { class: "field" }, el("label", { for: id, text: label }), control);
}

function select(id, first) {
  return el("select", { id, name: id.slice(3) }, el("option", { value: "", text: first }));
}

function build() {
  const root = $("view-jobs");
  const status = select("jf-status", "any status");
  for (const name of STATUSES) status.append(el("option", { value: name, text: name }));
  const form = el("form", { id: "jobs-filter", class: "card jobs-filter", role: "search",
    onsubmit: (event) => { event.preventDefault(); state.offset = 0; loadList(); } },
  field("jf-text", "Filename or id contains",
    el("input", { id: "jf-text", name: "text", type: "search", autocomplete: "off" })),
  field("jf-type", "Type", select("jf-type", "any type")),
  field("jf-status", "Status", status),
  field("jf-queue", "Queue", select("jf-queue", "any queue")),
  field("jf-collection", "Collection",
    el("input", { id: "jf-collection", name: "collection", autocomplete: "off" })),
  field("jf-user", "User", el("input", { id: "jf-user", name: "user", autocomplete: "off" })),
  field("jf-tag", "Tag", el("input", { id: "jf-tag", name: "tag", autocomplete: "off" })),
  el("div", { class: "actions" },
    el("button", { type: "submit", id: "jf-apply", text: "Filter" }),
    el("button", { type: "button", class: "secondary", id: "jf-clear", text: "Clear",
      onclick: () => { form.reset(); state.offset = 0; loadList(); } })));
  const list = el("section", { id: "jobs-list", class: "card", "aria-labelledby": "jobs-list-title" },
    el("div", { class: "list-head" },
      el("h2", { id: "jobs-list-title", text: "Jobs" }),
      el("p", { id: "jobs-range", class: "status", role: "status", "aria-live": "polite" }),
      el("div", { class: "pager" },
        el("button", { type: "button", class: "small", id: "jobs-prev", text: "← Previous",
          onclick: () => { state.offset = Math.max(0, state.offset - PAGE); loadList(); } }),
        el("button", { type: "button", class: "small", id: "jobs-next", text: "Next →",
          onclick: () => { state.offset += PAGE; loadList(); } }))),
    el("div", { class: "scroll" },
      el("table", { class: "table jobs-all" },
        el("thead", {}, el("tr", {}, ...["Job", "Type", "Queue", "Status", "Progress",
          "Created", "Tries"].map((text) => el("th", { scope: "col", text })))),
        el("tbody", { id: "jobs-rows" }))),
    el("p", { id: "jobs-none", class: "empty", hidden: "", text: "No job matches." }));
  const detail = el("section", { id: "job-detail", class: "job-detail", hidden: "" });
  root.append(form, list, detail);
  state.built = true;
}

// -- the list ---------------------------------------------------------------------------------

function query() {
  const params = new URLSearchParams({ limit: String(PAGE), offset: String(state.offset) });
  for (const name of FILTERS) {
    const value = $(`jf-${name}`).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

function fillChoices(id, values) {
  const box = $(id);
  for (const value of values) box.append(el("option", { value, text: value }));
}

function row(job) {
  const name = jobName(job);
  const link = el("a", { class: "truncate", href: `#/jobs/${encodeURIComponent(job.id)}`,
    title: `${name} (${job.id})`, text: name });
  const cell = nameCell(name);
  cell.replaceChildren(link);
  const progress = job.message ? `${job.progress}% · ${job.message}` : `${job.progress}%`;
  return el("tr", { "data-job-id": job.id }, cell,
    el("td", { class: "nowrap", text: job.type }),
    nameCell(job.queue),
    el("td", {}, badge(job.status)),
    nameCell(progress, { class: "name message" }),
    el("td", { class: "nowrap", text: when(job.created_at) }),
    el("td", { class: "num", text: String(job.retry_count + (job.started_at ? 1 : 0)) }));
}

async function loadList() {
  const page = await api(`/api/jobs?${query()}`);
  const seen = JSON.stringify([state.offset, page]);
  if (seen === state.shown) return;
  state.shown = seen;
  if (!state.choices) {
    fillChoices("jf-type", page.types);
    fillChoices("jf-queue", page.queues);
    state.choices = true;
  }
  if (page.count === 0 && state.offset > 0 && page.total !== null) {
    state.offset = Math.max(0, Math.floor((page.total - 1) / PAGE) * PAGE); // past the end
    return loadList();
  }
  $("jobs-rows").replaceChildren(...page.jobs.map(row));
  $("jobs-none").hidden = page.count > 0;
  const first = page.count ? state.offset + 1 : 0;
  const last = state.offset + page.count;
  const of = page.total === null ? "" : ` of ${page.total}`;
  $("jobs-range").textContent = page.count
    ? `Showing ${first}–${last}${of} ${page.total === 1 ? "job" : "jobs"}`
    : (page.total === 0 ? "No jobs" : "");
  $("jobs-prev").disabled = state.offset === 0;
  $("jobs-next").disabled = page.total === null ? page.count < PAGE : last >= page.total;
}

// -- one job ----------------------------------------------------------------------------------

function errorText(event) {
  const parts = [event.code, event.message].filter(Boolean);
  return parts.length ? ` (${parts.join(": ")})` : "";
}

function describe(event, attempt) {
  switch (event.kind) {
    case "enqueued": return `Enqueued with priority ${event.priority}`;
    case "reserved": return `Attempt ${attempt} started on ${event.worker}; lease until ${when(event.lease_until)}`;
    case "progress": return `${event.progress}% · ${event.message}`;
    case "retry": return `Attempt failed${errorText(event)}; retry in ${seconds(event.delay_ms)}, at ${when(event.run_at)}`;
    case "deferred": return `Deferred${errorText(event)}; runs again in ${seconds(event.delay_ms)}, at ${when(event.run_at)}`;
    case "failed": return `Failed for good${errorText(event)}`;
    case "dead": return `Out of retries: dead-lettered${errorText(event)}`;
    case "cancelled": return `Cancelled${errorText(event)}`;
    case "completed": return "Completed";
    case "lease_expired": return `The lease of ${event.worker} ran out (worker gone or stalled); job ${event.outcome}`;
    case "released": return `Handed back by ${event.worker} at shutdown`;
    case "requeued": return `Queued again by hand (it was ${event.previous})`;
    case "cancel_requested": return "Cancellation requested; the worker stops at its next step";
    default: return event.kind;
  }
}

function timeline(job) {
  let attempt = 0;
  const items = job.timeline.map((event) => {
    if (event.kind === "reserved") attempt += 1;
    return el("li", { class: `event ${event.kind}`, "data-kind": event.kind },
      el("time", { datetime: event.at, text: when(event.at) }),
      el("span", { class: "what", text: describe(event, attempt) }));
  });
  const list = el("ol", { id: "job-timeline", class: "timeline" }, ...items);
  const note = job.timeline.length - 1 >= job.events_cap
    ? el("p", { class: "hint", text: `Only the latest ${job.events_cap} events are kept.` }) : null;
  return [list, note];
}

function attemptsTable(job) {
  if (!job.attempts.length) return el("p", { class: "empty", text: "Not run yet." });
  return el("div", { class: "scroll" }, el("table", { id: "job-attempts", class: "table" },
    el("thead", {}, el("tr", {}, ...["#", "Worker", "Started", "Lease until", "Ended",
      "Outcome", "Error"].map((text) => el("th", { scope: "col", text })))),
    el("tbody", {}, ...job.attempts.map((a) => el("tr", {},
      el("td", { class: "num", text: String(a.number) }),
      nameCell(a.worker || "—"),
      el("td", { class: "nowrap", text: when(a.started_at) }),
      el("td", { class: "nowrap", text: when(a.lease_until) }),
      el("td", { class: "nowrap", text: when(a.ended_at) }),
      el("td", { text: a.outcome || "running" }),
      nameCell(a.error ? `${a.error.code}: ${a.error.message}` : ""))))));
}

async function act(job, action) {
  const id = encodeURIComponent(job.id);
  const calls = {
    cancel: [`/api/jobs/${id}/cancel`, "POST"],
    retry: [`/api/jobs/${id}/retry`, "POST"],
    requeue: [`/api/dlq/${id}/requeue`, "POST"],
    delete: [`/api/jobs/${id}`, "DELETE"],
  };
  const [path, method] = calls[action];
  const status = $("job-action-status");
  try {
    await api(path, { method });
    if (action === "delete") {
      location.hash = "#/jobs";
      return;
    }
    status.className = "status ok";
    status.textContent = { cancel: "Cancelled (or asked to stop).", retry: "Queued again.",
      requeue: "Queued again with a fresh retry budget." }[action];
    await loadJob(job.id, false);
  } catch (error) {
    status.className = "status error";
    status.textContent = error.message;
  }
}

function actionButtons(job) {
  const labels = { cancel: "Cancel", retry: "Retry", requeue: "Requeue", delete: "Delete" };
  return job.actions.map((action) => {
    if (action !== "delete") {
      return el("button", { type: "button", class: "small", id: `job-${action}`,
        text: labels[action], onclick: () => act(job, action) });
    }
    const label = state.confirmDelete ? "Really delete?" : "Delete";
    return el("button", { type: "button", class: "small danger-inline", id: "job-delete",
      text: label, onclick: () => {
        if (state.confirmDelete) act(job, "delete");
        else { state.confirmDelete = true; $("job-delete").textContent = "Really delete?"; }
      } });
  });
}

function facts(job) {
  const rows = [
    ["Id", job.id], ["Type", job.type], ["Queue", job.queue],
    ["Priority", String(job.priority)],
    ["Progress", job.message ? `${job.progress}% · ${job.message}` : `${job.progress}%`],
    ["Tries", `${plural(job.attempts.length, "attempt")}, ${plural(job.retry_count, "retry", "retries")}`
      + (job.max_retries === null ? "" : ` of ${job.max_retries}`)],
    ["Worker", job.worker_id || "—"], ["User", job.user_id || "—"],
    ["Tags", job.tags.length ? job.tags.join(", ") : "—"],
    ["Created", when(job.created_at)], ["Started", when(job.started_at)],
    ["Finished", when(job.completed_at)],
  ];
  if (job.run_at && !job.completed_at) rows.push(["Due", when(job.run_at)]);
  return el("dl", { class: "facts" }, ...rows.map(([term, value]) => el("div", {},
    el("dt", { text: term }), el("dd", {}, el("span", { class: "truncate", title: value, text: value })))));
}

function json(value) {
  return el("pre", { class: "json", text: JSON.stringify(value, null, 2) });
}

function renderJob(job) {
  const name = jobName(job);
  const parts = [
    el("p", {}, el("a", { href: "#/jobs", id: "job-back", text: "← All jobs" })),
    el("header", { class: "card job-head" },
      el("h2", { id: "job-title" }, el("span", { class: "truncate", title: name, text: name })),
      badge(job.status),
      el("div", { class: "actions", id: "job-actions" }, ...actionButtons(job)),
      el("p", { id: "job-action-status", class: "status", role: "status", "aria-live": "polite" }),
      facts(job)),
  ];
  if (job.error) {
    parts.push(el("section", { class: "card", id: "job-error", "aria-labelledby": "job-error-title" },
      el("h3", { id: "job-error-title", text: "Error" }),
      el("p", { class: "error-line", text: `${job.error.code}: ${job.error.message}`
        + (job.error.stage ? ` (stage ${job.error.stage})` : "") }),
      job.error.traceback
        ? el("pre", { id: "job-traceback", class: "traceback", text: job.error.traceback })
        : el("p", { class: "hint", text: "No traceback (the job failed outside its code)." })));
  }
  const [list, note] = timeline(job);
  parts.push(
    el("section", { class: "card", "aria-labelledby": "job-timeline-title" },
      el("h3", { id: "job-timeline-title", text: "Timeline" }), list, note),
    el("section", { class: "card", "aria-labelledby": "job-attempts-title" },
      el("h3", { id: "job-attempts-title", text: "Attempts" }), attemptsTable(job)),
    el("section", { class: "card two" },
      el("div", {}, el("h3", { text: "Payload" }), json(job.payload)),
      el("div", {}, el("h3", { text: "Result" }), job.result === null
        ? el("p", { class: "empty", text: "No result yet." }) : json(job.result))));
  const status = $("job-action-status")?.cloneNode(true);
  $("job-detail").replaceChildren(...parts);
  if (status) $("job-action-status").replaceWith(status); // keep the last action's outcome
}

async function loadJob(id, fresh = true) {
  if (fresh) state.confirmDelete = false;
  try {
    const job = await api(`/api/jobs/${encodeURIComponent(id)}`);
    const seen = JSON.stringify([state.confirmDelete, job]);
    if (!fresh && seen === state.shown) return;
    state.shown = seen;
    renderJob(job);
  } catch (error) {
    if (error.status !== 404) throw error;
    $("job-detail").replaceChildren(
      el("p", {}, el("a", { href: "#/jobs", text: "← All jobs" })),
      el("p", { class: "empty", id: "job-missing", text: `No job ${id}: it was deleted or has expired.` }));
  }
}

// -- routing ----------------------------------------------------------------------------------

async function show(params) {
  if (!state.built) build();
  state.jobId = params[0] || null;
  state.shown = "";
  $("jobs-filter").hidden = Boolean(state.jobId);
  $("jobs-list").hidden = Boolean(state.jobId);
  $("job-detail").hidden = !state.jobId;
  if (state.jobId) {
    $("job-detail").replaceChildren();
    await loadJob(state.jobId);
  } else {
    await loadList();
  }
}

async function refresh() {
  if (!state.built) return show([]);
  if (state.jobId) return loadJob(state.jobId, false);
  return loadList();
}

registerView("jobs", { show, refresh });
