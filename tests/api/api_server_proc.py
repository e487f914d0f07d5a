"""The API as a real server process for the end-to-end tests: ``python api_server_proc.py PORT
WORKERS``, configured from DOCWORKERS_* variables like any deployment and served like
``docworkers serve`` does (docworkers.api.server)."""

from __future__ import annotations

import sys

import uvicorn

from docworkers.api import create_app_from_env
from docworkers.api.server import ServerLimits, server_config

if __name__ == "__main__":
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    app = create_app_from_env(with_workers=workers, env_file=None)
    config = server_config(app, host="127.0.0.1", port=port, limits=ServerLimits(),
                           log_level="warning")
    config.timeout_graceful_shutdown = 20
    uvicorn.Server(config).run()
