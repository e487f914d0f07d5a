// The documents view: collections with their document and chunk counts (reindex, delete), the
// documents paged and filtered by collection and status, and one document with its status,
// error, pages and chunks (delete). Routes: #/documents, #/documents/collection/<name> (also
// #/collections/<name>), #/documents/<id>. A delete or reindex says what it did; a reindex
// links to its job.
import {
  $, api, badge, button, el, navigate, plural, postJson, refreshCurrent, registerView, renderOnce,
} from "./core.js";

const PAGE = 25; // documents per page
const CHUNK_PAGE = 20; // chunks per page
const STATUSES = ["pending", "processing", "completed", "failed", "cancelled"];
const WHY_NO_CHUNKS = { pending: "it waits to be ingested", processing: "it is being ingested",
  failed: "its ingestion failed", cancelled: "its ingestion was cancelled",
  completed: "it had no text to store" };
const root = () => $("view-documents");

// What the view shows now, kept across the 2-second refreshes.
const state = { route: "", collection: "", status: "", offset: 0, chunkOffset: 0,
  document: null, config: null, outcome: null };

// -- small parts ----------------------------------------------------------------------------

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1048576) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function pagesLabel(count) {
  return count == null ? "–" : String(count);
}

// A link that stays on one line, cut with an ellipsis, the whole text in its tooltip.
function truncLink(text, href, props = {}) {
  return el("a", { class: "truncate", href, title: text, text, ...props });
}

function documentHref(id) {
  return `#/documents/${encodeURIComponent(id)}`;
}

function collectionHref(name) {
  return `#/documents/collection/${encodeURIComponent(name)}`;
}

// "1–25 of 60" with Previous / Next; onPage(newOffset).
function pager(id, offset, count, total, limit, onPage) {
  const node = $(id);
  if (!node) return;
  node.hidden = total <= limit && offset === 0;
  const first = total ? offset + 1 : 0;
  renderOnce(node, [offset, count, total], () => [
    button("Previous", () => onPage(Math.max(0, offset - limit)),
      { disabled: offset === 0 ? "" : null }),
    el("span", { class: "range", text: `${first}–${offset + count} of ${total}` }),
    button("Next", () => onPage(offset + limit), { disabled: offset + count >= total ? "" : null }),
  ]);
}

// -- outcome of an action ---------------------------------------------------------------------

function setOutcome(text, kind = "ok", jobId = null) {
  state.outcome = { text, kind, jobId, jobStatus: null };
  showOutcome();
}

function showOutcome() {
  const node = $("documents-outcome");
  if (!node) return;
  const outcome = state.outcome;
  if (!outcome) {
    node.replaceChildren();
    return;
  }
  node.className = `status outcome ${outcome.kind}`;
  const parts = [el("span", { text: outcome.text })];
  if (outcome.jobId) {
    parts.push(" ", el("a", { href: `#/jobs/${encodeURIComponent(outcome.jobId)}`,
      text: `job ${outcome.jobId.slice(0, 8)}` }));
    if (outcome.jobStatus) parts.push(" ", badge(outcome.jobStatus));
  }
  node.replaceChildren(...parts);
}

async function followOutcomeJob() {
  const outcome = state.outcome;
  if (!outcome?.jobId) return;
  try {
    const job = await api(`/api/jobs/${encodeURIComponent(outcome.jobId)}`);
    outcome.jobStatus = job.status;
  } catch (error) {
    if (error.status !== 404) throw error;
    outcome.jobStatus = "deleted";
  }
  showOutcome();
}

// A question under the table instead of a modal: "Delete x? [Delete] [Keep]". The name it is
// about stands on its own line, cut with a tooltip like everywhere else.
function ask(name, question, label, action) {
  const node = $("documents-confirm");
  const keep = () => { node.hidden = true; node.replaceChildren(); };
  node.replaceChildren(el("strong", { class: "truncate", title: name, text: name }),
    el("p", { text: question }), el("div", { class: "actions" },
    el("button", { type: "button", class: "danger", text: label, onclick: async () => {
      keep();
      await action();
    } }),
    button("Keep", keep, { class: "secondary" })));
  node.hidden = false;
  node.querySelector("button.danger").focus();
}

async function run(action) {
  try {
    await action();
  } catch (error) {
    setOutcome(error.message, "error");
  }
  await refreshCurrent();
}

// -- actions --------------------------------------------------------------------------------

function deleteDocument(doc) {
  ask(doc.filename, `Delete this document and its ${plural(doc.chunk_count, "chunk")}? ` +
      "Searches stop finding it at once; this cannot be undone.", "Delete document",
  () => run(async () => {
    const result = await api(`/api/documents/${encodeURIComponent(doc.document_id)}`,
      { method: "DELETE" });
    setOutcome(`Deleted ${doc.filename}: ${plural(result.chunks_deleted, "chunk")} removed.`);
    if (state.document === doc.document_id) navigate("#/documents");
  }));
}

function deleteCollection(info) {
  ask(info.name, `Delete this collection with its ${plural(info.document_count, "document")} ` +
      `and ${plural(info.chunk_count, "chunk")}? This cannot be undone.`, "Delete collection",
  () => run(async () => {
    const result = await api(`/api/collections/${encodeURIComponent(info.name)}`,
      { method: "DELETE" });
    setOutcome(`Deleted collection ${info.name}: ` +
      `${plural(result.documents_deleted, "document")} removed.`);
    if (state.collection === info.name) navigate("#/documents");
  }));
}

// The reindex form for one collection: its new chunking, then a vector_reindex job.
function reindexForm(info) {
  const node = $("documents-confirm");
  const config = state.config || {};
  const strategies = config.chunking_strategies || ["recursive"];
  const form = el("form", { class: "reindex", "aria-label": `Reindex ${info.name}` },
    el("p", { text: `Re-chunk and re-embed the ${plural(info.document_count, "document")} of ` +
      `${info.name}. Searches keep working and switch to the new version when it is ready.` }),
    el("div", { class: "fields" },
      el("div", { class: "field" }, el("label", { for: "reindex-strategy", text: "Chunking" }),
        el("select", { id: "reindex-strategy", name: "chunking_strategy" },
          ...strategies.map((name) => el("option", { value: name, text: name })))),
      el("div", { class: "field" }, el("label", { for: "reindex-size", text: "Chunk size" }),
        el("input", { id: "reindex-size", name: "chunk_size", type: "number", min: "1",
          max: config.max_chunk_size, value: config.max_chunk_size || 256 })),
      el("div", { class: "field" }, el("label", { for: "reindex-overlap", text: "Overlap" }),
        el("input", { id: "reindex-overlap", name: "chunk_overlap", type: "number", min: "0",
          value: "0" }))),
    el("div", { class: "actions" },
      el("button", { type: "submit", text: "Start reindex" }),
      button("Keep as is", () => { node.hidden = true; node.replaceChildren(); },
        { class: "secondary" })));
  form.elements.namedItem("chunking_strategy").value =
    config.default_chunking_strategy || strategies[0];
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const payload = { collection: info.name,
      chunking_strategy: form.elements.namedItem("chunking_strategy").value,
      chunk_size: Number(form.elements.namedItem("chunk_size").value),
      chunk_overlap: Number(form.elements.namedItem("chunk_overlap").value) };
    node.hidden = true;
    node.replaceChildren();
    run(async () => {
      const job = await postJson("/api/jobs", { type: "vector_reindex", payload });
      setOutcome(`Reindex of ${info.name} queued:`, "ok", job.job_id);
    });
  });
  node.replaceChildren(form);
  node.hidden = false;
  form.elements.namedItem("chunk_size").focus();
}

// -- the list -------------------------------------------------------------------------------

function listSkeleton() {
  const status = el("select", { id: "documents-status", name: "status" },
    el("option", { value: "", text: "any status" }),
    ...STATUSES.map((name) => el("option", { value: name, text: name })));
  status.value = state.status;
  status.addEventListener("change", () => {
    state.status = status.value;
    state.offset = 0;
    refreshCurrent();
  });
  const collection = el("select", { id: "documents-collection", name: "collection" });
  collection.addEventListener("change", () => {
    navigate(collection.value ? collectionHref(collection.value) : "#/documents");
  });
  return [
    el("p", { id: "documents-outcome", class: "status outcome", role: "status",
      "aria-live": "polite" }),
    el("div", { id: "documents-confirm", class: "confirm card", hidden: "" }),
    el("section", { class: "card", "aria-labelledby": "collections-title" },
      el("h2", { id: "collections-title", text: "Collections" }),
      el("table", { class: "table stack collections" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Collection" }),
          el("th", { scope: "col", text: "Documents" }), el("th", { scope: "col", text: "Chunks" }),
          el("th", { scope: "col" }, el("span", { class: "sr-only", text: "Actions" })))),
        el("tbody", { id: "collections-rows" })),
      el("p", { id: "no-collections", class: "empty", hidden: "",
        text: "No collections yet: upload a document to make one." })),
    el("section", { class: "card", "aria-labelledby": "documents-title" },
      el("h2", { id: "documents-title", text: "Documents" }),
      el("div", { class: "filters" },
        el("div", { class: "field" },
          el("label", { for: "documents-collection", text: "Collection" }), collection),
        el("div", { class: "field" }, el("label", { for: "documents-status", text: "Status" }),
          status)),
      el("table", { class: "table stack documents" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Document" }),
          el("th", { scope: "col", text: "Status" }), el("th", { scope: "col", text: "Chunks" }),
          el("th", { scope: "col", text: "Pages" }),
          el("th", { scope: "col", class: "when", text: "Updated" }),
          el("th", { scope: "col" }, el("span", { class: "sr-only", text: "Actions" })))),
        el("tbody", { id: "documents-rows" })),
      el("p", { id: "no-documents", class: "empty", hidden: "" }),
      el("div", { id: "documents-pager", class: "pager", hidden: "" })),
  ];
}

function collectionRow(info) {
  return el("tr", { "data-collection": info.name },
    el("td", { class: "name" }, truncLink(info.name, collectionHref(info.name),
      state.collection === info.name ? { "aria-current": "true" } : {})),
    el("td", { class: "count", "data-unit": info.document_count === 1 ? "document" : "documents",
      text: String(info.document_count) }),
    el("td", { class: "count", "data-unit": info.chunk_count === 1 ? "chunk" : "chunks",
      text: String(info.chunk_count) }),
    el("td", { class: "row-actions" },
      button("Reindex", () => reindexForm(info), { "aria-label": `Reindex ${info.name}` }),
      button("Delete", () => deleteCollection(info),
        { class: "small danger", "aria-label": `Delete collection ${info.name}` })));
}

function documentRow(doc) {
  const problem = doc.error_message ? `${doc.error_code}: ${doc.error_message}` : "";
  return el("tr", { "data-document-id": doc.document_id },
    el("td", { class: "name" },
      truncLink(doc.filename, documentHref(doc.document_id)),
      el("span", { class: problem ? "truncate detail error" : "truncate detail",
        title: problem || doc.collection,
        text: problem || `${doc.collection} · ${size(doc.file_size)}` })),
    el("td", { class: "state" }, badge(doc.status)),
    el("td", { class: "count", "data-unit": doc.chunk_count === 1 ? "chunk" : "chunks",
      text: String(doc.chunk_count) }),
    el("td", { class: doc.page_count == null ? "count none" : "count",
      "data-unit": doc.page_count === 1 ? "page" : "pages", text: pagesLabel(doc.page_count) }),
    el("td", { class: "when", text: when(doc.updated_at) }),
    el("td", { class: "row-actions" },
      button("Delete", () => deleteDocument(doc),
        { class: "small danger", "aria-label": `Delete ${doc.filename}` })));
}

async function refreshList() {
  const query = new URLSearchParams({ limit: PAGE, offset: state.offset });
  if (state.collection) query.set("collection", state.collection);
  if (state.status) query.set("status", state.status);
  const [{ collections }, listing] = await Promise.all([
    api("/api/collections"), api(`/api/documents?${query}`)]);
  if (!listing.documents.length && listing.total && state.offset) {
    state.offset = Math.max(0, Math.floor((listing.total - 1) / PAGE) * PAGE);
    return refreshList(); // the last page emptied (a delete): show the one before
  }
  renderOnce($("collections-rows"), [collections, state.collection],
    () => collections.map(collectionRow));
  $("no-collections").hidden = collections.length > 0;
  const select = $("documents-collection");
  const names = collections.map((c) => c.name);
  if (state.collection && !names.includes(state.collection)) names.push(state.collection);
  renderOnce(select, names, () => [el("option", { value: "", text: "all collections" }),
    ...names.map((name) => el("option", { value: name, text: name }))]);
  select.value = state.collection;
  renderOnce($("documents-rows"), listing.documents, () => listing.documents.map(documentRow));
  const empty = $("no-documents");
  empty.hidden = listing.total > 0;
  empty.textContent = state.collection || state.status
    ? "No documents match these filters." : "No documents yet: upload one on the overview.";
  pager("documents-pager", state.offset, listing.count, listing.total, PAGE, (offset) => {
    state.offset = offset;
    refreshCurrent();
  });
}

// -- one document ---------------------------------------------------------------------------

function detailSkeleton() {
  return [
    el("p", {}, el("a", { href: "#/documents", text: "← Documents" })),
    el("p", { id: "documents-outcome", class: "status outcome", role: "status",
      "aria-live": "polite" }),
    el("div", { id: "documents-confirm", class: "confirm card", hidden: "" }),
    el("section", { class: "card", "aria-labelledby": "document-title" },
      el("h2", { id: "document-title", class: "truncate" }),
      el("dl", { id: "document-facts", class: "facts" }),
      el("div", { id: "document-error", class: "problem", role: "note", hidden: "" }),
      el("div", { id: "document-actions", class: "actions" })),
    el("section", { class: "card", "aria-labelledby": "chunks-title" },
      el("h2", { id: "chunks-title", text: "Chunks" }),
      el("ol", { id: "document-chunks", class: "chunks" }),
      el("p", { id: "no-chunks", class: "empty", hidden: "" }),
      el("div", { id: "chunks-pager", class: "pager", hidden: "" })),
  ];
}

function fact(term, ...value) {
  return el("div", {}, el("dt", { text: term }), el("dd", {}, ...value));
}

function chunkPages(chunk) {
  if (chunk.page_start == null) return "";
  return chunk.page_end != null && chunk.page_end !== chunk.page_start
    ? `pages ${chunk.page_start}–${chunk.page_end}` : `page ${chunk.page_start}`;
}

async function refreshDocument() {
  const id = state.document;
  let doc;
  try {
    doc = await api(`/api/documents/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error.status !== 404) throw error;
    $("document-title").textContent = "No such document";
    $("document-title").title = "";
    renderOnce($("document-facts"), null, () => [el("p", { class: "empty",
      text: `There is no document ${id} (any more).` })]);
    $("document-actions").replaceChildren();
    return;
  }
  $("document-title").textContent = doc.filename;
  $("document-title").title = doc.filename;
  renderOnce($("document-facts"), doc, () => [
    fact("Status", badge(doc.status)),
    fact("Collection", truncLink(doc.collection, collectionHref(doc.collection))),
    fact("Chunks", String(doc.chunk_count)),
    fact("Pages", pagesLabel(doc.page_count)),
    fact("Size", size(doc.file_size)),
    fact("Added", when(doc.created_at)),
    fact("Updated", when(doc.updated_at)),
    fact("Ingested by", doc.job_id ? el("a", { href: `#/jobs/${encodeURIComponent(doc.job_id)}`,
      class: "truncate", title: doc.job_id, text: `job ${doc.job_id.slice(0, 8)}` }) : "–"),
  ]);
  const problem = $("document-error");
  const errors = doc.enrichment_errors || [];
  problem.hidden = !doc.error_message && !errors.length;
  renderOnce(problem, [doc.error_code, doc.error_message, doc.failed_stage, errors], () => [
    ...(doc.error_message ? [el("strong", { text: `${doc.error_code}` }),
      el("span", { text: doc.failed_stage ? ` (while ${doc.failed_stage})` : "" }),
      el("p", { text: doc.error_message })] : []),
    ...errors.map((text) => el("p", { class: "enrichment", text }))]);
  renderOnce($("document-actions"), [doc.document_id, doc.chunk_count], () => [
    button("Delete document", () => deleteDocument(doc),
      { class: "small danger", "aria-label": `Delete ${doc.filename}` })]);
  const chunks = await api(`/api/documents/${encodeURIComponent(id)}/chunks?` +
    `limit=${CHUNK_PAGE}&offset=${state.chunkOffset}`);
  renderOnce($("document-chunks"), chunks.chunks, () => chunks.chunks.map((chunk) =>
    el("li", { value: String(chunk.chunk_index + 1) },
      el("span", { class: "where", text: [`chunk ${chunk.chunk_index + 1}`, chunkPages(chunk)]
        .filter(Boolean).join(" · ") }),
      el("p", { class: "passage", text: chunk.text }))));
  $("document-chunks").start = state.chunkOffset + 1;
  const none = $("no-chunks");
  none.hidden = chunks.total > 0;
  none.textContent = `No chunks stored: ${WHY_NO_CHUNKS[doc.status] || doc.status}.`;
  pager("chunks-pager", state.chunkOffset, chunks.count, chunks.total, CHUNK_PAGE, (offset) => {
    state.chunkOffset = offset;
    refreshCurrent();
  });
}

// -- view -------------------------------------------------------------------------------------

async function show(params) {
  const route = params.join("/");
  const [first, name] = params;
  const isCollection = first === "collection" && name;
  state.document = !isCollection && first ? first : null;
  const collection = isCollection ? name : "";
  if (collection !== state.collection) state.offset = 0;
  state.collection = collection;
  if (route !== state.route || !root().childElementCount) {
    state.chunkOffset = 0;
    root().replaceChildren(...(state.document ? detailSkeleton() : listSkeleton()));
    state.route = route;
    showOutcome();
  }
  if (!state.config) state.config = await api("/api/config");
  await refresh();
}

async function refresh() {
  if (!root().childElementCount) return;
  await Promise.all([state.document ? refreshDocument() : refreshList(), followOutcomeJob()]);
}

// #/collections and #/collections/<name> are other names for #/documents and
// #/documents/collection/<name> (links other views may use): rewritten in place, before the
// router reads the hash (this module's listener is added before app.js's).
function collectionAlias() {
  const match = location.hash.match(/^#\/collections(?:\/(.+))?$/);
  if (match) {
    history.replaceState(null, "", match[1] ? `#/documents/collection/${match[1]}` : "#/documents");
  }
}

collectionAlias();
window.addEventListener("hashchange", collectionAlias);
registerView("documents", { show, refresh });
