"""The API docs page loads nothing from the internet: its script and styles are ours."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from api_support import running_api

from docworkers.settings import Settings

TOKEN = "s3cret-token"
# Every URL the page loads: src / href attributes and Swagger UI's `url:` setting.
_REFERENCES = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|\burl:\s*["']([^"']+)["']""")
_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def references(html: str) -> list[str]:
    return [a or b for a, b in _REFERENCES.findall(html)]


async def test_docs_page_loads_only_local_files(settings: Settings, embedder: Any) -> None:
    # With a token set, the docs and their files stay open, like the dashboard.
    async with running_api(replace(settings, api_token=TOKEN), embedder) as api:
        page = await api.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "http://" not in page.text and "https://" not in page.text
        urls = references(page.text)
        assert {"/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css",
                "/openapi.json"} <= set(urls)
        for url in urls:
            assert url.startswith("/"), url
            asset = await api.get(url)
            assert asset.status_code == 200, url
            if url == "/openapi.json":
                assert asset.json()["info"]["title"] == "docworkers"
                continue
            assert _TYPES[url[url.rindex("."):]] in asset.headers["content-type"], url
            assert len(asset.content) > 1000, url
        # Swagger UI's validator badge would send the schema's address to swagger.io.
        assert '"validatorUrl": null' in page.text
        # No ReDoc page: its bundle loads a logo from the internet whatever it is told.
        assert (await api.get("/redoc")).status_code == 404
        # The docs are not part of the API's own schema.
        paths = (await api.get("/openapi.json")).json()["paths"]
        assert not any(path.startswith(("/docs", "/redoc")) for path in paths)


async def test_docs_files_answer_only_to_this_server(settings: Settings, embedder: Any) -> None:
    async with running_api(settings, embedder) as api:
        for path in ("/docs", "/docs-assets/swagger-ui-bundle.js", "/openapi.json"):
            refused = await api.get(path, headers={"Host": "rebound.example"})
            assert refused.status_code == 400, path
            assert refused.json()["error"]["code"] == "invalid_host"
