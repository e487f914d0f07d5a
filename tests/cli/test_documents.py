"""``docworkers search``, ``documents …`` and ``collections …`` on real Redis and Chroma.

The chunks are written straight into Chroma with embeddings from the real model, so these tests
need no parser and stay fast; ``test_ingest`` and ``test_demo`` cover the path through a worker.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from seeding import seed
from typer.testing import Result

from docworkers.ingest.vector_store import ChromaVectorRepository

PASSAGES = {
    "report.pdf": ["Quarterly revenue grew by twelve percent thanks to strong exports.",
                   "The board approved a new dividend policy for shareholders."],
    "recipes [v2].md": ["Knead the dough for ten minutes, then let it rise for an hour.",
                        "Bake the bread at 220 degrees until the crust is golden."],
}


@pytest.fixture
def seeded(cli_env: dict[str, str], embedder: Any) -> dict[str, str]:
    return seed(cli_env, embedder, "library", PASSAGES)


def chunk_count(env: dict[str, str], collection: str, document_id: str) -> int:
    with ChromaVectorRepository.from_path(env["DOCWORKERS_CHROMA_PATH"]) as vectors:
        return vectors.count_document_chunks(collection, document_id)


def test_search_prints_score_document_filename_page_and_snippet(
        seeded: dict[str, str], cli: Callable[..., Result]) -> None:
    result = cli("search", "how long should bread dough rise?", "--collection", "library",
                 "-k", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    first = next(n for n, line in enumerate(lines) if line.startswith("│ 1 "))
    assert seeded["recipes [v2].md"] in lines[first] and "Knead the dough" in lines[first]
    assert "│    1 │" in lines[first]  # page 1
    assert "recipes [v2].md" in lines[first + 1]  # the file name, printed literally
    hits = json.loads(cli("search", "dividend for shareholders", "--collection", "library",
                          "--json").stdout)
    assert hits[0]["filename"] == "report.pdf" and hits[0]["page_start"] == 2
    assert len(hits) == 4 and hits[0]["score"] > hits[-1]["score"]
    empty = cli("search", "anything", "--collection", "nothing-here")
    assert empty.exit_code == 0 and "No results" in empty.stdout
    assert cli("search", "   ", "--collection", "library").exit_code == 2


def test_documents_list_show_and_delete(seeded: dict[str, str], cli_env: dict[str, str],
                                        cli: Callable[..., Result]) -> None:
    listed = cli("documents", "list")
    assert listed.exit_code == 0, listed.output
    assert all(document_id in listed.stdout for document_id in seeded.values())
    report = seeded["report.pdf"]
    shown = cli("documents", "show", report)
    assert shown.exit_code == 0 and "About report.pdf" in shown.stdout
    assert json.loads(cli("documents", "show", report, "--json").stdout)["chunk_count"] == 2
    assert chunk_count(cli_env, "library", report) == 2

    kept = cli("documents", "delete", report, input="n\n")
    assert kept.exit_code == 1 and chunk_count(cli_env, "library", report) == 2
    deleted = cli("documents", "delete", report, "--yes")
    assert deleted.exit_code == 0 and "2 chunks removed" in deleted.stdout
    assert chunk_count(cli_env, "library", report) == 0
    gone = cli("documents", "show", report)
    assert gone.exit_code == 1 and gone.stderr == f"error: document {report!r} not found\n"
    remaining = json.loads(cli("documents", "list", "--json").stdout)
    assert [d["filename"] for d in remaining] == ["recipes [v2].md"]
    missing = cli("documents", "delete", report, "--yes")
    assert missing.exit_code == 1 and f"error: document {report!r} not found" in missing.stderr


def test_collections_list_and_delete(seeded: dict[str, str], cli_env: dict[str, str],
                                     cli: Callable[..., Result]) -> None:
    listed = cli("collections", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == [{"name": "library", "chunks": 4, "documents": 2}]
    assert "library" in cli("collections", "list").stdout
    deleted = cli("collections", "delete", "library", "--yes")
    assert deleted.exit_code == 0 and "2 document record(s)" in deleted.stdout
    assert json.loads(cli("collections", "list", "--json").stdout) == []
    assert json.loads(cli("documents", "list", "--json").stdout) == []
    again = cli("collections", "delete", "library", "--yes")
    assert again.exit_code == 1 and again.stderr == "error: collection 'library' not found\n"
