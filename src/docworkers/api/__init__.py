"""The HTTP API and dashboard (FastAPI): ``create_app(runtime)`` or ``create_app_from_env()``."""

from docworkers.extras import require_extra

require_extra("docworkers.api", "api")

from docworkers.api.app import create_app, create_app_from_env  # noqa: E402

__all__ = ["create_app", "create_app_from_env"]
