// The docworkers dashboard's entry point: loads every view, then routes on the URL's hash
// (#/jobs, #/jobs/<id>, #/queues, #/history, #/documents; the overview by default) and
// refreshes the visible view every REFRESH_MS while the tab is visible.
import { REFRESH_MS, refreshCurrent, setupToken, showBanner, showRoute } from "./core.js";
import { loadConfig } from "./overview.js";
import "./jobs.js";
import "./queues.js";
import "./history.js";
import "./documents.js";

let refreshTimer = null;

async function start() {
  clearInterval(refreshTimer);
  try {
    await loadConfig();
  } catch (error) {
    if (error.status !== 401) showBanner(`Cannot reach the API: ${error.message}`);
    return;
  }
  await showRoute();
  refreshTimer = setInterval(() => { if (!document.hidden) refreshCurrent(); }, REFRESH_MS);
}

window.addEventListener("hashchange", showRoute);
setupToken(start);
start();
