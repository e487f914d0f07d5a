"""The HTTP API and dashboard (FastAPI): ``create_app(runtime)`` or ``create_app_from_env()``."""

from docworkers.api.app import create_app, create_app_from_env

__all__ = ["create_app", "create_app_from_env"]
