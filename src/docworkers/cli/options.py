"""Command-line options shared by several commands, declared once so their help agrees."""

from __future__ import annotations

from typing import Annotated

import typer

from docworkers.ingest.defaults import CHUNKING_STRATEGIES, OCR_MODES

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
PriorityOption = Annotated[int, typer.Option(help="Job priority (higher runs first).")]
WaitOption = Annotated[bool, typer.Option(
    "--wait/--no-wait", help="See the job done: by a running worker, else here (--no-wait: "
    "only queue it for `docworkers worker`).")]
CollectionOption = Annotated[str, typer.Option(help="Collection to store the chunks in.")]
StrategyOption = Annotated[str, typer.Option(
    help=f"How to cut documents into chunks: {', '.join(CHUNKING_STRATEGIES)}.")]
# None: the embedder's window (254 tokens for onnx-minilm), read when the command runs.
ChunkSizeOption = Annotated[int | None, typer.Option(
    min=1, show_default=False, help="Chunk size in model tokens (default: the embedding "
    "model's window, its maximum).")]
ChunkOverlapOption = Annotated[int, typer.Option(min=0, help="Tokens shared by neighbours.")]
ExtractMetadataOption = Annotated[bool, typer.Option(
    "--extract-metadata", help="Store keywords and document metadata on chunks.")]
OcrOption = Annotated[str, typer.Option(
    help=f"Which PDF pages OCR reads: {', '.join(OCR_MODES)} (auto: pages without text).")]
