"""Documents stored the way an upload stores them, without a parser or a worker: each file
registered as a completed document, its passages in Chroma (embedded by the real model) and in
the keyword index. The search and documents commands are tested on them."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from docworkers.ingest.document import Chunk
from docworkers.ingest.document_repository import (
    DocumentRecord,
    DocumentRepository,
    DocumentStatus,
)
from docworkers.ingest.keyword_side import keyword_chunks
from docworkers.ingest.lexical.index import LexicalIndex
from docworkers.ingest.vector_store import ChromaVectorRepository


def seed(env: dict[str, str], embedder: Any, collection: str,
         passages: dict[str, list[str]]) -> dict[str, str]:
    """Store ``{filename: [passage, ...]}`` (one passage per page); {filename: document id}."""

    async def main() -> dict[str, str]:
        client = aioredis.Redis.from_url(env["DOCWORKERS_REDIS_URL"], decode_responses=True)
        documents = DocumentRepository(client)
        keywords = LexicalIndex.for_documents(documents)
        vectors = ChromaVectorRepository.from_path(env["DOCWORKERS_CHROMA_PATH"])
        ids: dict[str, str] = {}
        try:
            for number, (filename, texts) in enumerate(passages.items()):
                document_id = f"{number:032x}"
                chunks = [Chunk(index=i, text=t, start_char=0, end_char=len(t), token_count=9,
                                page_start=i + 1, page_end=i + 1) for i, t in enumerate(texts)]
                vectors.replace_document(collection, document_id, chunks, embedder.embed(texts),
                                         [{"filename": filename}] * len(chunks))
                await keywords.replace_document(collection, document_id,
                                                keyword_chunks(document_id, chunks))
                await documents.register(DocumentRecord(
                    document_id=document_id, collection=collection, filename=filename,
                    status=DocumentStatus.PROCESSING, file_size=1234))
                await documents.update(document_id, status=DocumentStatus.COMPLETED,
                                       chunk_count=len(chunks), page_count=len(chunks),
                                       metadata={"title": f"About {filename}"})
                ids[filename] = document_id
        finally:
            vectors.close()  # releases the writer lock for the command under test
            await client.aclose()
        return ids

    return asyncio.run(main())
