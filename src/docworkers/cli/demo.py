"""``docworkers demo``: ingest the sample documents with live progress, then search them.

Runs on whatever the settings say; with none set that is the local stack of ``.docworkers``
(its valkey and Chroma server, started if needed), so the searchable chunks and the jobs stay
for ``docworkers search --collection demo`` and ``docworkers jobs list`` afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from docworkers.cli.context import EXIT_FAILURE, CliState, UsageError, state_of, with_runtime
from docworkers.cli.documents import pages
from docworkers.cli.files import discover
from docworkers.cli.ingest import IngestOptions, Outcome, announce, ingest_documents, print_summary
from docworkers.cli.render import esc, snippet

if TYPE_CHECKING:
    from docworkers.ingest.vector_repository import SearchHit
    from docworkers.runtime import Runtime

QUERIES = (
    "What are the duties of a chapter 13 standing trustee?",
    "deep learning toolkit for document image layout analysis",
    "Are all human beings born free and equal?",
)
# examples/docs of a source checkout (src/docworkers/cli/demo.py -> the repository root).
DEFAULT_DOCS = Path(__file__).resolve().parents[3] / "examples" / "docs"


def _where(state: CliState) -> str:
    s = state.settings
    local = f"the local stack in {Path(s.home).resolve()} (see `docworkers status`)"
    redis = s.redis_url or local
    chroma = s.chroma_url or (f"embedded Chroma in {Path(s.chroma_path).resolve()}"
                              if s.chroma_path else local)
    return esc(f"Redis: {redis}\nChroma: {chroma}")


def _print_hits(state: CliState, query: str, hits: list[SearchHit]) -> None:
    from rich.panel import Panel
    from rich.text import Text

    state.out.print(Text.assemble(("\nQ: ", "bold"), (query, "bold cyan")))
    if not hits:
        state.out.print("  [dim]no results[/]")
    for hit in hits:
        page = pages(hit)
        where = f"{hit.filename or hit.document_id}" + (f", page {page}" if page != "-" else "")
        state.out.print(Panel(esc(snippet(hit.text, 320)),
                              title=f"{hit.score:.2f} · {esc(where)}",
                              title_align="left", subtitle=f"document {hit.document_id}",
                              subtitle_align="right", border_style="dim"))


def demo_command(
    ctx: typer.Context,
    docs: Annotated[Path | None, typer.Option(
        help="Folder of documents to use instead of the bundled samples.")] = None,
    collection: Annotated[str, typer.Option(help="Collection to fill.")] = "demo",
    k: Annotated[int, typer.Option("-k", "--top", min=1, max=10,
                                   help="Passages shown per question.")] = 2,
) -> None:
    """Try docworkers in one command: ingest sample documents, then search them."""
    from rich.panel import Panel

    state = state_of(ctx)
    folder = docs or DEFAULT_DOCS
    if not folder.is_dir():
        raise UsageError(f"the sample documents are not at {folder} (they ship with the source "
                         "checkout, in examples/docs); pass --docs FOLDER")
    discovery = discover([folder], exclude=("LICENSE",))
    options = IngestOptions(collection=collection)
    options.validate(state.settings)
    state.out.print(Panel(f"Ingesting the documents in {esc(folder)} into collection "
                          f"{collection!r}.\n{_where(state)}", title="docworkers demo",
                          title_align="left", border_style="cyan"))
    announce(state, discovery)
    started = time.monotonic()

    async def action(runtime: Runtime) -> tuple[list[Outcome], list[list[SearchHit]]]:
        outcomes = await ingest_documents(runtime, state, discovery, options, wait=True)
        search = runtime.search_service()
        return outcomes, [await search.search(collection, q, k) for q in QUERIES]

    outcomes, results = with_runtime(state.settings, action)
    print_summary(state, outcomes, discovery, collection, time.monotonic() - started)
    state.out.rule("Searching the demo collection")
    for query, hits in zip(QUERIES, results, strict=True):
        _print_hits(state, query, hits)
    state.out.print(
        f"\nNext: [bold]docworkers search \"your question\" --collection {collection}[/], "
        "[bold]docworkers ingest PATH[/] for your own files, [bold]docworkers worker[/] and "
        "[bold]docworkers serve[/] for the queue and the dashboard.")
    if state.settings.local_redis or state.settings.local_chroma:
        state.out.print("The local servers keep running for them: [bold]docworkers status[/] "
                        "shows them, [bold]docworkers down[/] stops them.")
    if any(not o.ok for o in outcomes):
        raise typer.Exit(EXIT_FAILURE)
