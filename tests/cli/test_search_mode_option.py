"""``docworkers search --mode``: keyword, dense and hybrid search from the command line, with
who found each hit in the table (in 80 columns) and in the JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from seeding import seed
from typer.testing import CliRunner, Result

from docworkers.cli import app

CODE = "ZX-4471-Q"
PASSAGES = {
    "parts.txt": [f"Spare part {CODE} fits the left hinge of the cabinet door.",
                  "Every cabinet ships with two shelves and four screws."],
    "bread.md": ["Knead the dough for ten minutes, then let it rise for an hour."],
}


@pytest.fixture
def seeded(cli_env: dict[str, str], embedder: Any) -> dict[str, str]:
    return seed(cli_env, embedder, "library", PASSAGES)


def test_search_modes_from_the_command_line(seeded: dict[str, str],
                                            cli: Callable[..., Result]) -> None:
    parts = f"{seeded['parts.txt']}:0"
    keyword = cli("search", CODE, "--collection", "library", "--mode", "keyword", "--json")
    assert keyword.exit_code == 0, keyword.output
    hits = json.loads(keyword.stdout)
    assert [hit["chunk_id"] for hit in hits] == [parts]
    assert hits[0]["found_by"] == ["keyword"] and hits[0]["keyword_rank"] == 1
    assert hits[0]["dense_rank"] is None

    hybrid = json.loads(cli("search", CODE, "--collection", "library", "--json").stdout)
    assert len(hybrid) == 3 and hybrid[0]["chunk_id"] == parts  # hybrid is the default
    assert hybrid[0]["found_by"] == ["dense", "keyword"] and hybrid[0]["keyword_rank"] == 1
    # every chunk is a dense candidate; the keyword side (the query expanded by the best first
    # results) may find the others too
    assert all("dense" in hit["found_by"] for hit in hybrid[1:])
    grouped = json.loads(cli("search", CODE, "--collection", "library", "--group-by-document",
                             "--json").stdout)
    assert [hit["document_id"] for hit in grouped] == [seeded["parts.txt"], seeded["bread.md"]]
    assert grouped[0]["chunk_id"] == parts  # each document by its best passage

    dense = json.loads(cli("search", CODE, "--collection", "library", "--mode", "dense",
                           "--json").stdout)
    assert [hit["dense_rank"] for hit in dense] == [1, 2, 3]
    assert {hit["keyword_rank"] for hit in dense} == {None}

    table = CliRunner().invoke(app, ["search", CODE, "--collection", "library"],
                               env={"COLUMNS": "80"}, terminal_width=80)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80  # the "By" column keeps it in 80 columns
    first = next(line for line in lines if line.startswith("│ 1 "))
    assert "│ d1 │" in first and seeded["parts.txt"] in first
    assert "│ k1 │" in lines[lines.index(first) + 1]
    assert "By: the rank on the d(ense) and k(eyword) side" in table.stdout


def test_a_bad_mode_is_one_line_naming_it(cli: Callable[..., Result],
                                          cli_env: dict[str, str]) -> None:
    result = cli("search", CODE, "--collection", "library", "--mode", "sparse")
    assert result.exit_code == 2
    assert "mode" in result.output and "hybrid, dense, keyword" in result.output
    assert "Traceback" not in result.output
