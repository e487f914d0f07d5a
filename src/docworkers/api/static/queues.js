// The queues view (being built for issue 16).
import { registerView } from "./core.js";

async function refresh() {}

registerView("queues", { show: refresh, refresh });
