// The history view (being built for issue 16).
import { registerView } from "./core.js";

async function refresh() {}

registerView("history", { show: refresh, refresh });
