// Shared by every view of the dashboard: DOM and API helpers, the API token, the banner, and
// the view registry with its hash router. Plain ES modules, no build step. Everything the
// server sends is inserted as text (never as HTML); the API token lives in localStorage.

const TOKEN_KEY = "docworkers.apiToken";
export const REFRESH_MS = 2000;
export const TERMINAL = new Set(["completed", "failed", "cancelled", "dead"]);

export const $ = (id) => document.getElementById(id);

export class ApiError extends Error {
  constructor(status, message, fields) {
    super(message);
    this.status = status;
    this.fields = fields || {};
  }
}

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

export function authHeaders(extra = {}) {
  const headers = new Headers(extra);
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  return headers;
}

export async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: authHeaders(options.headers) });
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : null;
  if (response.status === 401) {
    setAuth("needed");
    askForToken(body?.error?.message);
  }
  if (!response.ok) {
    const error = body?.error || {};
    throw new ApiError(response.status, error.message || response.statusText, error.fields);
  }
  return body;
}

export function postJson(path, body, method = "POST") {
  return api(path, { method, body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" } });
}

export function showBanner(message) {
  $("banner").textContent = message;
  $("banner").hidden = !message;
}

// Nothing the API returns is shown until a request has succeeded: behind the token dialog the
// views stay hidden rather than claim "no jobs" (body[data-auth] drives the CSS).
export function setAuth(state) {
  document.body.dataset.auth = state;
}

// Bumped whenever the token changes: a request sent with the old token that succeeds after the
// change must not reveal the views again (see refreshCurrent).
let tokenEpoch = 0;

// -- token ----------------------------------------------------------------------------------

export function askForToken(message) {
  const dialog = $("token-dialog");
  if (dialog.open) return;
  showBanner(message || "This server needs an API token.");
  $("token").value = localStorage.getItem(TOKEN_KEY) || "";
  dialog.showModal();
}

export function setupToken(onChange) {
  $("token-button").addEventListener("click", () => askForToken("Enter the API token."));
  $("signin-button").addEventListener("click", () => askForToken("Enter the API token."));
  $("token-dialog").addEventListener("close", () => {
    const choice = $("token-dialog").returnValue;
    tokenEpoch += 1;
    if (choice === "save" && $("token").value.trim()) {
      localStorage.setItem(TOKEN_KEY, $("token").value.trim());
    } else if (choice === "clear") {
      localStorage.removeItem(TOKEN_KEY);
    }
    showBanner("");
    onChange();
  });
}

// -- formatting -----------------------------------------------------------------------------

export function formatSeconds(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// "1 passage", "3 passages".
export function plural(count, word, many = `${word}s`) {
  return `${count} ${count === 1 ? word : many}`;
}

// A table cell for a name that may be very long: one line, cut with an ellipsis, the whole
// name in a tooltip.
export function nameCell(text, props = {}) {
  return el("td", { class: "name", ...props }, el("span", { class: "truncate", title: text, text }));
}

export function badge(status) {
  return el("span", { class: `badge ${status}`, text: status });
}

export function button(text, onclick, props = {}) {
  return el("button", { type: "button", class: "small", text, onclick, ...props });
}

// A card of a view: a section titled by its heading.
export function card(id, title, ...children) {
  return el("section", { class: "card wide", id, "aria-labelledby": `${id}-title` },
    el("h2", { id: `${id}-title`, text: title }), ...children);
}

// Replace a container's children only when the data behind them changed, so a refresh keeps
// keyboard focus and an open tooltip.
export function renderOnce(container, data, build) {
  const key = JSON.stringify(data);
  if (container.dataset.key === key) return;
  container.dataset.key = key;
  container.replaceChildren(...build());
}

// A worker's circuit breakers that are not closed, "ok" when all are, "–" when it has none.
export function servicesLabel(worker) {
  const entries = Object.entries(worker.breakers || {});
  if (!entries.length) return "–";
  const trouble = entries.filter(([, state]) => state !== "closed");
  return trouble.length ? trouble.map(([name, state]) => `${name}: ${state}`).join(", ") : "ok";
}

// -- views ----------------------------------------------------------------------------------

// name -> { show(params), refresh(), hide() }; each view renders into <section id="view-NAME">.
const views = new Map();
let current = null;

export function registerView(name, view) {
  views.set(name, view);
}

export function currentView() {
  return current;
}

// "#/jobs/abc" -> ["jobs", ["abc"]]; unknown or empty -> overview.
function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean)
    .map(decodeURIComponent);
  const name = views.has(parts[0]) ? parts[0] : "overview";
  return [name, parts.slice(1)];
}

export function navigate(hash) {
  if (location.hash === hash) showRoute();
  else location.hash = hash;
}

export async function showRoute() {
  const [name, params] = route();
  for (const [other, view] of views) {
    const section = $(`view-${other}`);
    if (section) section.hidden = other !== name;
    if (other !== name && current === other) view.hide?.();
  }
  document.querySelectorAll(".tabs a").forEach((link) => {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  });
  current = name;
  await refreshCurrent(params);
}

export async function refreshCurrent(params) {
  const view = views.get(current);
  if (!view) return;
  try {
    const epoch = tokenEpoch;
    if (params) await view.show(params);
    else await view.refresh();
    if (epoch !== tokenEpoch) return;  // the token changed meanwhile: this answer is stale
    setAuth("ok");
    if (!$("token-dialog").open) showBanner("");
  } catch (error) {
    if (error.status !== 401) showBanner(`Cannot reach the API: ${error.message}`);
  }
}
