// The overview: upload, queue tiles, live workers, the latest jobs with live progress, search,
// and the dead letters.
import {
  $, api, authHeaders, el, formatSeconds, nameCell, plural, registerView, servicesLabel, showBanner,
  TERMINAL,
} from "./core.js";

const MAX_STREAMS = 4; // browsers allow ~6 connections per host; keep some for the API calls
const STAT_ORDER = ["queued", "processing", "retrying", "completed", "failed", "dead", "cancelled"];
const streams = new Map(); // job id -> AbortController of its event stream

// -- upload ---------------------------------------------------------------------------------

function clearFieldErrors(form) {
  form.querySelectorAll("[aria-invalid]").forEach((input) => input.removeAttribute("aria-invalid"));
  form.querySelectorAll(".field-error").forEach((node) => node.remove());
}

function showFieldErrors(form, fields) {
  for (const [name, message] of Object.entries(fields)) {
    const input = form.elements.namedItem(name);
    if (!input || !input.closest) continue;
    const id = `${input.id}-error`;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", id);
    input.closest(".field").append(el("span", { class: "field-error", id, text: message }));
  }
}

async function upload(event) {
  event.preventDefault();
  const form = event.target;
  const status = $("upload-status");
  clearFieldErrors(form);
  if (!$("file").files.length) {
    showFieldErrors(form, { file: "choose a file first" });
    return;
  }
  const data = new FormData();
  for (const [name, value] of new FormData(form)) {
    if (value instanceof File || String(value).trim() !== "") data.append(name, value);
  }
  $("upload-button").disabled = true;
  status.className = "status";
  status.textContent = "Uploading…";
  try {
    const job = await api("/api/documents/upload", { method: "POST", body: data });
    status.className = "status ok";
    status.textContent = `Queued ${job.filename} (job ${job.job_id.slice(0, 8)}).`;
    form.elements.namedItem("file").value = "";
    await refreshJobs();
    follow(job.job_id);
  } catch (error) {
    status.className = "status error";
    status.textContent = error.message;
    showFieldErrors(form, error.fields || {});
  } finally {
    $("upload-button").disabled = false;
  }
}

// -- jobs -----------------------------------------------------------------------------------

function jobRow(job) {
  let row = document.querySelector(`tr[data-job-id="${CSS.escape(job.id)}"]`);
  if (!row) {
    const name = job.payload?.filename || job.type;
    row = el("tr", { "data-job-id": job.id },
      el("td", { class: "name" }, el("a", { class: "truncate", href: `#/jobs/${encodeURIComponent(job.id)}`,
        title: name, text: name })),
      el("td", {}, el("span", { class: "badge" })),
      el("td", {}, el("progress", { max: "100", value: "0", "aria-label": `Progress of ${name}` }),
        el("span", { class: "percent" })),
      el("td", { class: "message" }),
      el("td", { class: "row-actions" }));
  }
  updateRow(row, job);
  return row;
}

function updateRow(row, job) {
  const changed = row.dataset.status !== job.status;
  const badge = row.querySelector(".badge");
  badge.textContent = job.status;
  badge.className = `badge ${job.status}`;
  row.dataset.status = job.status;
  row.querySelector("progress").value = job.progress;
  row.querySelector(".percent").textContent = `${job.progress}%`;
  const message = job.error ? `${job.error.code}: ${job.error.message}` : job.message;
  row.querySelector(".message").textContent = message || "";
  if (!changed) return; // keep the buttons (and keyboard focus) while the status holds
  const actions = row.querySelector(".row-actions");
  const name = row.querySelector(".name a").textContent;
  const buttons = [];
  if (!TERMINAL.has(job.status)) {
    buttons.push(el("button", { type: "button", class: "small", text: "Cancel",
      "aria-label": `Cancel job for ${name}`, onclick: () => act(`/api/jobs/${job.id}/cancel`) }));
  } else if (job.status !== "completed") {
    buttons.push(el("button", { type: "button", class: "small", text: "Retry",
      "aria-label": `Retry job for ${name}`, onclick: () => act(`/api/jobs/${job.id}/retry`) }));
  }
  actions.replaceChildren(...buttons);
}

async function act(path, method = "POST") {
  try {
    const result = await api(path, { method });
    await refresh();
    const id = result?.id || result?.job_id;
    if (id) follow(id);
  } catch (error) {
    showBanner(error.message);
  }
}

async function refreshJobs() {
  const { jobs } = await api("/api/jobs?limit=20");
  const body = $("jobs");
  body.replaceChildren(...jobs.map(jobRow));
  $("no-jobs").hidden = jobs.length > 0;
  jobs.filter((job) => !TERMINAL.has(job.status)).forEach((job) => follow(job.id));
}

// Follow one job's progress over Server-Sent Events. fetch() rather than EventSource, because
// EventSource cannot send the Authorization header.
async function follow(jobId) {
  if (streams.has(jobId) || streams.size >= MAX_STREAMS) return;
  const controller = new AbortController();
  streams.set(jobId, controller);
  try {
    const response = await fetch(`/api/jobs/${encodeURIComponent(jobId)}/events`,
      { headers: authHeaders({ Accept: "text/event-stream" }), signal: controller.signal });
    if (!response.ok || !response.body) return;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        handleEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  } catch (error) {
    if (error.name !== "AbortError") console.warn("event stream failed", error);
  } finally {
    streams.delete(jobId);
  }
}

function handleEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (name !== "job" || !data.length) return;
  const job = JSON.parse(data.join("\n"));
  const row = document.querySelector(`tr[data-job-id="${CSS.escape(job.id)}"]`);
  if (row) updateRow(row, job);
  else $("jobs").prepend(jobRow(job));
  $("no-jobs").hidden = true;
}

// -- queue and workers ----------------------------------------------------------------------

async function refreshStats() {
  const stats = await api("/api/jobs/stats");
  const tiles = STAT_ORDER.map((status) =>
    el("div", {}, el("dt", { text: status }), el("dd", { text: String(stats.by_status[status] ?? 0) })));
  tiles.unshift(el("div", {}, el("dt", { text: "workers" }), el("dd", { text: String(stats.active_workers) })));
  $("stats").replaceChildren(...tiles);
  // A worker's attempts by the status they left the job in: the tiles' words, so its Failed
  // counts jobs failed for good like the failed tile (a retried attempt is not one).
  $("workers").replaceChildren(...stats.workers.map((w) => el("tr", { "data-worker": w.worker_name },
    nameCell(w.worker_name),
    el("td", { text: `${w.in_flight} / ${w.concurrency}` }),
    ...["completed", "retrying", "failed", "dead"].map((status) =>
      el("td", { class: `outcome ${status}`, text: String(w.outcomes?.[status] || 0) })),
    el("td", { class: "services", text: servicesLabel(w) }),
    el("td", { text: formatSeconds(w.uptime) }))));
  $("no-workers").hidden = stats.workers.length > 0;
  const dead = stats.by_status.dead ?? 0;
  $("dlq-summary").textContent = dead ? `${plural(dead, "job")} failed every retry.`
    : "No job is dead-lettered.";
}

// -- search ---------------------------------------------------------------------------------

// Which side found the hit, at which rank: "dense #2 + keyword #1".
function foundBy(hit) {
  const ranks = { dense: hit.dense_rank, keyword: hit.keyword_rank };
  return (hit.found_by || []).map((side) => (ranks[side] ? `${side} #${ranks[side]}` : side))
    .join(" + ");
}

function pages(hit) {
  if (hit.page_start == null) return "";
  return hit.page_end != null && hit.page_end !== hit.page_start
    ? `pages ${hit.page_start}–${hit.page_end}` : `page ${hit.page_start}`;
}

async function search(event) {
  event.preventDefault();
  const status = $("search-status");
  const results = $("search-results");
  const body = {
    query: $("query").value,
    collection: $("search-collection").value.trim() || "documents",
    k: Number($("k").value) || 5,
    mode: $("search-mode").value || "hybrid",
  };
  status.className = "status";
  status.textContent = "Searching…";
  try {
    const { hits } = await api("/api/search", {
      method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" },
    });
    results.replaceChildren(...hits.map((hit) => el("li", {},
      el("strong", { text: hit.filename || hit.document_id }),
      el("span", { class: "where", text: ` · ${[pages(hit), `score ${hit.score.toFixed(3)}`]
        .filter(Boolean).join(" · ")}` }),
      el("span", { class: "found-by", text: foundBy(hit) ? ` · found by ${foundBy(hit)}` : "" }),
      el("p", { class: "passage", text: hit.text }))));
    status.textContent = hits.length ? `${plural(hits.length, "passage")} found.` : "Nothing found.";
  } catch (error) {
    results.replaceChildren();
    status.className = "status error";
    status.textContent = error.message;
  }
}

// -- view -------------------------------------------------------------------------------------

async function refresh() {
  await Promise.all([refreshStats(), refreshJobs()]);
}

export async function loadConfig() {
  const config = await api("/api/config");
  const select = $("chunking_strategy");
  select.replaceChildren(...config.chunking_strategies.map((name) =>
    el("option", { value: name, text: name })));
  select.value = config.default_chunking_strategy;
  if (config.max_chunk_size) {
    $("chunk_size").max = config.max_chunk_size;
    $("chunk_size").placeholder = `default ${config.max_chunk_size}`;
  }
  const mib = (config.max_upload_bytes / 1048576).toFixed(0);
  $("file-hint").textContent = `PDF, Office, e-mail, HTML, Markdown or text, up to ${mib} MiB`;
  if (config.extensions) $("file").accept = config.extensions.join(",");
  const labels = { auto: "auto (pages without text)" };
  $("ocr").replaceChildren(...(config.ocr_modes || []).map((mode) =>
    el("option", { value: mode, text: labels[mode] || mode })));
  $("ocr").value = config.default_ocr;
}

$("upload-form").addEventListener("submit", upload);
$("search-form").addEventListener("submit", search);
registerView("overview", { show: refresh, refresh });
