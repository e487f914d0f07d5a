"""The API as a real server process for the end-to-end tests: ``python api_server_proc.py PORT
WORKERS``, configured from DOCWORKERS_* variables like any deployment."""

from __future__ import annotations

import sys

import uvicorn

from docworkers.api import create_app_from_env

if __name__ == "__main__":
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    app = create_app_from_env(with_workers=workers, env_file=None)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=20)
