// The documents view (being built for issue 16).
import { registerView } from "./core.js";

async function refresh() {}

registerView("documents", { show: refresh, refresh });
