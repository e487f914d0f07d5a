"""``docworkers search``, ``documents …`` and ``collections …``: what has been ingested.

Search and collections need only Chroma and the model, so they work without a shared Redis
(after ``docworkers demo``, for instance). The document registry lives in Redis, so the
``documents`` commands need DOCWORKERS_REDIS_URL.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer

from docworkers.cli.context import (
    EXIT_FAILURE,
    CliState,
    command_group,
    state_of,
    with_runtime,
)
from docworkers.cli.options import JsonOption
from docworkers.cli.render import (
    duration,
    echo_json,
    esc,
    key_value_table,
    not_found,
    print_error,
    short_when,
    size,
    snippet,
    status_text,
    styled_status,
    when,
    with_name,
)
from docworkers.ingest.defaults import DEFAULT_SEARCH_MODE, SEARCH_MODES

if TYPE_CHECKING:
    from rich.table import Table

    from docworkers.ingest.document_repository import DocumentRecord
    from docworkers.ingest.vector_repository import SearchHit
    from docworkers.runtime import Runtime

documents_app = command_group("Ingested documents (the registry in Redis).")
collections_app = command_group("Collections of chunks in the vector store.")

YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


# -- search -----------------------------------------------------------------------------------


def pages(hit: SearchHit) -> str:
    if hit.page_start is None:
        return "-"
    if hit.page_end is None or hit.page_end == hit.page_start:
        return str(hit.page_start)
    return f"{hit.page_start}-{hit.page_end}"


def pages_read(hit: SearchHit) -> str:
    """The hit's pages, and under them "OCR 96%" when its text came from OCR (with the
    page's mean confidence)."""
    if not hit.ocr:
        return pages(hit)
    confidence = "" if hit.ocr_confidence is None else f" {hit.ocr_confidence:.0f}%"
    return f"{pages(hit)}\nOCR{confidence}"


def found_by(hit: SearchHit) -> str:
    """Which side found the hit, at which rank, one line per side: "d1" (dense, rank 1),
    "k3" (keyword, rank 3); narrow, so the table still fits 80 columns."""
    ranks = {"dense": hit.dense_rank, "keyword": hit.keyword_rank}
    return "\n".join(f"{side[0]}{ranks.get(side) or ''}" for side in hit.found_by) or "-"


def hits_table(hits: list[SearchHit], title: str) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left", caption_justify="left",
                  caption="By: the rank on the d(ense) and k(eyword) side of the search.")
    table.add_column("#", justify="right")
    table.add_column("Score", justify="right")
    table.add_column("By", no_wrap=True)
    table.add_column("Document / filename", no_wrap=True)
    table.add_column("Page", justify="right")
    table.add_column("Snippet", overflow="fold", ratio=1, min_width=14)
    for rank, hit in enumerate(hits, start=1):
        table.add_row(str(rank), f"{hit.score:.3f}", found_by(hit),
                      with_name(hit.document_id, hit.filename), pages_read(hit),
                      esc(snippet(hit.text, 240)))
    return table


def hit_dict(hit: SearchHit) -> dict[str, Any]:
    return {"score": hit.score, "found_by": list(hit.found_by), "dense_rank": hit.dense_rank,
            "keyword_rank": hit.keyword_rank, "document_id": hit.document_id,
            "filename": hit.filename, "page_start": hit.page_start, "page_end": hit.page_end,
            "ocr": hit.ocr, "ocr_confidence": hit.ocr_confidence,
            "chunk_index": hit.chunk_index, "chunk_id": hit.chunk_id, "text": hit.text}


def search_command(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for, in plain words.")],
    collection: Annotated[str, typer.Option(help="Collection to search.")] = "documents",
    k: Annotated[int, typer.Option("-k", "--top", min=1, max=1000,
                                   help="Number of passages.")] = 5,
    mode: Annotated[str, typer.Option(
        help=f"{' | '.join(SEARCH_MODES)}: by meaning and keywords fused, by meaning only, "
             "or by keywords only (exact terms, codes).")] = DEFAULT_SEARCH_MODE,
    group_by_document: Annotated[bool, typer.Option(
        "--group-by-document", help="Each document once, by its best passage.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Search: the passages that best match QUERY, by meaning and by keywords."""
    state = state_of(ctx)

    async def action(runtime: Runtime) -> list[SearchHit]:
        return await runtime.search_service().search(collection, query, k, mode=mode,
                                                     group_by_document=group_by_document)

    hits = with_runtime(state.settings, action)
    if as_json:
        echo_json([hit_dict(hit) for hit in hits])
    elif not hits:
        state.out.print(f"No results: collection {collection!r} is empty or does not exist "
                        "(see `docworkers collections list`).")
    else:
        state.out.print(hits_table(hits, esc(f"{query!r} in {collection!r}")))


# -- documents --------------------------------------------------------------------------------


def _registry(ctx: typer.Context, what: str) -> CliState:
    state = state_of(ctx)
    return state


@documents_app.command("list")
def documents_list(
    ctx: typer.Context,
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most N documents.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List documents, newest first."""
    from rich.table import Table

    state = _registry(ctx, "documents list")

    async def action(runtime: Runtime) -> list[DocumentRecord]:
        return await runtime.documents.list_documents(collection, limit=limit)

    records = with_runtime(state.settings, action)
    if as_json:
        echo_json([r.to_dict() for r in records])
        return
    if not records:
        state.out.print("No documents" + (f" in collection {collection!r}." if collection
                                          else " yet: try `docworkers ingest PATH`."))
        return
    table = Table(title="Documents", title_justify="left")
    table.add_column("Document / filename", no_wrap=True)
    table.add_column("Collection", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Chunks", justify="right")
    table.add_column("Updated", no_wrap=True)
    errors = any(r.error_code for r in records)
    if errors:
        table.add_column("Error", overflow="fold", ratio=1, min_width=12)
    for r in records:
        row = [with_name(r.document_id, r.filename), r.collection,
               styled_status(r.status.value), str(r.chunk_count), short_when(r.updated_at)]
        if errors:
            row.append(esc(f"{r.error_code}: {snippet(r.error_message or '', 80)}"
                           if r.error_code else ""))
        table.add_row(*row)
    state.out.print(table)


@documents_app.command("show")
def documents_show(
    ctx: typer.Context,
    document_id: Annotated[str, typer.Argument(help="The document id.")],
    as_json: JsonOption = False,
) -> None:
    """Show one document: status, chunks, metadata, timings and error."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.syntax import Syntax

    state = _registry(ctx, "documents show")

    async def action(runtime: Runtime) -> DocumentRecord | None:
        return await runtime.documents.get(document_id)

    r = with_runtime(state.settings, action)
    if r is None:
        print_error(state.err, not_found("document", document_id))
        raise typer.Exit(EXIT_FAILURE)
    if as_json:
        echo_json(r.to_dict())
        return
    rows: list[tuple[str, Any]] = [
        ("id", r.document_id), ("filename", r.filename), ("collection", r.collection),
        ("status", status_text(r.status.value)), ("chunks", r.chunk_count),
        ("pages", r.page_count), ("size", size(r.file_size)), ("sha256", r.content_hash),
        ("job", r.job_id), ("created", when(r.created_at)), ("updated", when(r.updated_at)),
        ("timings", ", ".join(f"{k} {duration(v / 1000)}" for k, v in r.timings_ms.items())),
    ]
    parts: list[Any] = [key_value_table(rows)]
    if r.metadata:
        parts.append(Panel(Syntax(json.dumps(r.metadata, indent=2, default=str,
                                             ensure_ascii=False), "json", word_wrap=True),
                           title="metadata", title_align="left"))
    if r.error_code:
        parts.append(Panel(f"[bold red]{esc(r.error_code)}[/] (stage: "
                           f"{esc(r.failed_stage or '?')})\n{esc(r.error_message or '')}",
                           title="error", title_align="left", border_style="red"))
    if r.enrichment_errors:
        parts.append(Panel(esc("\n".join(r.enrichment_errors)), title="enrichment problems",
                           title_align="left", border_style="yellow"))
    state.out.print(Group(*parts))


@documents_app.command("delete")
def documents_delete(
    ctx: typer.Context,
    document_ids: Annotated[list[str], typer.Argument(help="Document ids.",
                                                      show_default=False)],
    yes: YesOption = False,
) -> None:
    """Delete documents: their chunks from the vector store and their registry entries."""
    state = _registry(ctx, "documents delete")
    if not yes:
        typer.confirm(f"Delete {len(document_ids)} document(s) and their chunks?", abort=True)

    async def action(runtime: Runtime) -> int:
        from docworkers.ingest.jobs.document_delete import delete_document

        missing = 0
        for document_id in document_ids:
            record = await runtime.documents.get(document_id)
            if record is None:
                missing += 1
                print_error(state.err, not_found("document", document_id))
                continue
            result = await delete_document(runtime.documents, runtime.vectors, document_id)
            state.out.print(f"Deleted {esc(record.filename)} ({document_id}) from "
                            f"{record.collection!r}: {result.chunks_deleted} chunks removed.")
        return missing

    if with_runtime(state.settings, action):
        raise typer.Exit(EXIT_FAILURE)


# -- collections ------------------------------------------------------------------------------


@collections_app.command("list")
def collections_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List collections with their chunk and document counts."""
    from rich.table import Table

    state = state_of(ctx)

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        from docworkers.ingest.aliases import CollectionAliases

        infos = {c.name: c.count for c in await asyncio.to_thread(
            runtime.vectors.list_collections)}
        documents: dict[str, int] = {}
        aliases = CollectionAliases.for_documents(runtime.documents)
        for name in await runtime.documents.collections():
            documents[name] = len(await runtime.documents.list_documents(name, limit=1_000_000))
            physical = await aliases.resolve(name)
            if physical != name:  # reindexed: show the version searches use
                infos[name] = infos.pop(physical, 0)
        return [{"name": name, "chunks": infos.get(name, 0), "documents": documents.get(name)}
                for name in sorted(set(infos) | set(documents))]

    rows = with_runtime(state.settings, action)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        state.out.print("No collections yet: try `docworkers ingest PATH` or `docworkers demo`.")
        return
    table = Table(title="Collections", title_justify="left")
    table.add_column("Collection")
    table.add_column("Chunks", justify="right")
    table.add_column("Documents", justify="right")
    for row in rows:
        table.add_row(row["name"], str(row["chunks"]),
                      "-" if row["documents"] is None else str(row["documents"]))
    state.out.print(table)


@collections_app.command("delete")
def collections_delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The collection.")],
    yes: YesOption = False,
) -> None:
    """Delete a collection: all its chunks and its documents' registry entries."""
    state = state_of(ctx)
    if not yes:
        typer.confirm(f"Delete collection {name!r} with all its chunks?", abort=True)

    async def action(runtime: Runtime) -> tuple[bool, int]:
        from docworkers.ingest.jobs.collection_delete import delete_collection

        # Every physical version, the registry entries and the alias, under the lock.
        result = await delete_collection(runtime.documents, runtime.vectors, name,
                                         owner=f"cli-{uuid.uuid4().hex}")
        return bool(result.dropped), result.documents_deleted

    existed, documents = with_runtime(state.settings, action)
    if not existed and not documents:
        print_error(state.err, not_found("collection", name))
        raise typer.Exit(EXIT_FAILURE)
    state.out.print(f"Deleted collection {name!r} and {documents} document record(s).")
