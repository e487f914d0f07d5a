"""Document endpoints: upload, the document registry, collections, search, upload options."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from docworkers.api.errors import ApiError, ErrorResponse, describe_fields, field_errors
from docworkers.api.limits import MAX_TAG, MAX_TAGS, MAX_USER_ID, tag_problem
from docworkers.api.security import require_token
from docworkers.api.state import ApiState, api_state
from docworkers.api.uploads import FILE_FIELD, ReceivedUpload, receive_upload
from docworkers.errors import ConfigurationError
from docworkers.ingest.aliases import CollectionAliases
from docworkers.ingest.chunking import CHUNKING_STRATEGIES, DEFAULT_STRATEGY
from docworkers.ingest.defaults import DEFAULT_OCR, OCR_MODES
from docworkers.ingest.document_repository import DocumentStatus
from docworkers.ingest.jobs.collection_delete import (
    delete_collection as delete_collection_everywhere,
)
from docworkers.ingest.jobs.document_delete import delete_document as delete_document_everywhere
from docworkers.ingest.parsing.detect import DOCUMENT_EXTENSIONS
from docworkers.ingest.payload import UPLOAD_JOB_TYPE, UploadJobPayload
from docworkers.ingest.search_filters import FIELDS, Operator, SearchFilter
from docworkers.ingest.upload_checks import chunk_size_problem
from docworkers.ingest.vector_repository import SearchHit, validate_collection_name
from docworkers.queue.job import MAX_PRIORITY, MIN_PRIORITY, iso_time

router = APIRouter(prefix="/api", dependencies=[Depends(require_token)])
UPLOAD_PATH = "/api/documents/upload"  # its body streams to disk (RequestGuard leaves it be)
State = Annotated[ApiState, Depends(api_state)]
DocumentId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
CollectionName = Annotated[str, PathParam(min_length=3, max_length=512)]

# Payload fields the server derives from the uploaded file; a client may not send them.
_SERVER_FIELDS = ("filename", "file_path", "file_size")


def _upload_form_schema() -> dict[str, Any]:
    """The multipart form in the OpenAPI schema (the handler parses the stream itself)."""
    properties: dict[str, Any] = {
        FILE_FIELD: {"type": "string", "format": "binary", "description": "the document"},
    }
    for name, schema in UploadJobPayload.model_json_schema()["properties"].items():
        if name not in _SERVER_FIELDS:
            properties[name] = schema
    properties["chunking_strategy"]["enum"] = list(CHUNKING_STRATEGIES)
    properties["priority"] = {"type": "integer", "default": 0, "minimum": MIN_PRIORITY,
                              "maximum": MAX_PRIORITY, "description": "higher runs first"}
    properties["user_id"] = {"type": "string", "maxLength": MAX_USER_ID,
                             "description": "stored on the job"}
    properties["tags"] = {"type": "string", "description": f"comma-separated job tags (at "
                          f"most {MAX_TAGS}, each of at most {MAX_TAG} characters)"}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": [FILE_FIELD], "properties": properties}}}}}


@router.post(
    UPLOAD_PATH.removeprefix(router.prefix), status_code=202, tags=["documents"],
    summary="Upload a document and queue its ingestion",
    description="Stores the file and queues a `document_upload` job; answers at once with the "
                "job id. Follow the job with `GET /api/jobs/{id}` or `/api/jobs/{id}/events`.",
    openapi_extra=_upload_form_schema(),
    responses={413: {"model": ErrorResponse}, 415: {"model": ErrorResponse},
               422: {"model": ErrorResponse}},
)
async def upload_document(request: Request, state: State) -> JSONResponse:
    metrics = state.metrics
    directory = state.runtime.storage_dir()
    try:
        received = await receive_upload(request, directory, state.settings.max_upload_bytes)
    except ApiError as exc:
        metrics.uploads.labels(exc.code).inc()
        raise
    try:
        payload, options = _validate(received, directory, state)
        received.store(directory)
    except BaseException as exc:
        received.discard()
        metrics.uploads.labels(exc.code if isinstance(exc, ApiError) else "error").inc()
        raise
    jobs = state.runtime.jobs
    job_id = await jobs.enqueue(UPLOAD_JOB_TYPE, payload.model_dump(), **options)
    metrics.uploads.labels("accepted").inc()
    metrics.upload_bytes.inc(received.size)
    job = await jobs.find_job(job_id)
    created = job.created_at if job and job.created_at else datetime.now(UTC)
    return JSONResponse(
        {"job_id": job_id, "status": "queued", "created_at": iso_time(created),
         "filename": payload.filename, "file_size": payload.file_size, "kind": received.kind,
         "collection": payload.collection},
        status_code=202, headers={"Location": f"/api/jobs/{job_id}"},
    )


def _validate(received: ReceivedUpload, directory: Path, state: ApiState
              ) -> tuple[UploadJobPayload, dict[str, Any]]:
    """The job payload and enqueue options from the form; ApiError 422 naming each field."""
    fields = dict(received.fields)
    errors: dict[str, str] = {}
    for name in _SERVER_FIELDS:
        if name in fields:
            errors[name] = "set by the server from the uploaded file; do not send it"
            del fields[name]
    options: dict[str, Any] = {}
    raw_priority = fields.pop("priority", "").strip()
    if raw_priority:
        try:
            options["priority"] = int(raw_priority)
        except ValueError:
            errors["priority"] = f"{raw_priority[:40]!r} is not an integer"
        else:
            if not MIN_PRIORITY <= options["priority"] <= MAX_PRIORITY:
                errors["priority"] = f"must be between {MIN_PRIORITY} and {MAX_PRIORITY}"
    if user_id := fields.pop("user_id", "").strip():
        options["user_id"] = user_id
        if len(user_id) > MAX_USER_ID:
            errors["user_id"] = f"at most {MAX_USER_ID} characters"
    if tags := [t.strip() for t in fields.pop("tags", "").split(",") if t.strip()]:
        options["tags"] = tags
        if (tags_problem := tag_problem(tags)) is not None:
            errors["tags"] = tags_problem
    window = state.runtime.embedder_window  # the largest chunk_size, and the default
    data: dict[str, Any] = {"chunk_size": window}
    data.update((name, value) for name, value in fields.items() if value.strip())
    data.update(filename=received.filename, file_size=received.size,
                file_path=str((directory / received.target_name).resolve()))
    payload: UploadJobPayload | None = None
    try:
        payload = UploadJobPayload.model_validate(data)
    except ValidationError as exc:
        problems = exc.errors()
        for problem in problems:
            if not problem["loc"]:  # a check across fields; its message names the field
                problem["loc"] = ("chunk_overlap",) if "chunk_overlap" in problem["msg"] \
                    else ("payload",)
        errors.update(field_errors(problems))
    if payload is not None and (too_large := chunk_size_problem(
            payload.chunk_size, window, state.settings.embedder)) is not None:
        errors["chunk_size"] = too_large
    if errors or payload is None:
        raise ApiError(422, "invalid_payload", f"invalid upload: {describe_fields(errors)}",
                       fields=errors)
    return payload, options


@router.get("/config", tags=["documents"], summary="Upload options and limits")
async def upload_config(state: State) -> dict[str, Any]:
    return {
        "chunking_strategies": list(CHUNKING_STRATEGIES),
        "default_chunking_strategy": DEFAULT_STRATEGY,
        "max_chunk_size": state.runtime.embedder_window,
        "max_upload_bytes": state.settings.max_upload_bytes,
        "extensions": sorted(DOCUMENT_EXTENSIONS),
        "ocr_modes": list(OCR_MODES),
        "default_ocr": DEFAULT_OCR,
        "priority_range": [MIN_PRIORITY, MAX_PRIORITY],
        "queue": state.settings.queue,
    }


# -- documents ----------------------------------------------------------------------------------


@router.get("/documents", tags=["documents"], summary="Documents, newest first",
            description="A page of documents; `total` is how many match the filters in all.")
async def list_documents(
    state: State,
    collection: Annotated[str | None, Query(max_length=512)] = None,
    status: Annotated[DocumentStatus | None, Query(description="only documents in this state")
                      ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    if collection is not None:
        validate_collection_name(collection)
    records, total = await state.runtime.documents.find_documents(
        collection, status=status, limit=limit, offset=offset)
    return {"documents": [r.to_dict() for r in records], "count": len(records),
            "total": total, "limit": limit, "offset": offset}


@router.get("/documents/{document_id}", tags=["documents"], summary="One document")
async def get_document(document_id: DocumentId, state: State) -> dict[str, Any]:
    record = await state.runtime.documents.get(document_id)
    if record is None:
        raise ApiError(404, "not_found", f"no document {document_id!r}")
    return record.to_dict()


def _chunk_view(chunk: SearchHit) -> dict[str, Any]:
    return {"chunk_id": chunk.chunk_id, "chunk_index": chunk.chunk_index,
            "page_start": chunk.page_start, "page_end": chunk.page_end, "ocr": chunk.ocr,
            "ocr_confidence": chunk.ocr_confidence, "text": chunk.text}


@router.get("/documents/{document_id}/chunks", tags=["documents"],
            summary="A document's stored chunks, in order, with their pages",
            description="A page of the chunks searches find (the collection's current version "
                        "after a reindex); `total` is how many the document has.",
            responses={404: {"model": ErrorResponse}})
async def document_chunks(
    document_id: DocumentId,
    state: State,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    documents = state.runtime.documents
    record = await documents.get(document_id)
    if record is None:
        raise ApiError(404, "not_found", f"no document {document_id!r}")
    physical = await CollectionAliases.for_documents(documents).resolve(record.collection)
    vectors = await state.vectors()
    stored = await asyncio.to_thread(vectors.document_chunks, physical, document_id)
    chunks = [_chunk_view(SearchHit.stored(chunk_id, text, meta, 0.0))
              for chunk_id, text, meta in stored[offset : offset + limit]]
    return {"document_id": document_id, "collection": record.collection, "chunks": chunks,
            "count": len(chunks), "total": len(stored), "limit": limit, "offset": offset}


@router.delete("/documents/{document_id}", tags=["documents"],
               summary="Delete a document and its chunks")
async def delete_document(document_id: DocumentId, state: State) -> dict[str, Any]:
    documents = state.runtime.documents
    record = await documents.get(document_id)
    if record is None:
        raise ApiError(404, "not_found", f"no document {document_id!r}")
    if record.status == DocumentStatus.PROCESSING:
        raise ApiError(409, "invalid_state",
                       f"document {document_id!r} is being ingested by job {record.job_id!r}; "
                       "wait for it to finish or cancel the job, then delete")
    result = await delete_document_everywhere(documents, await state.vectors(), document_id)
    return {"document_id": document_id, "deleted": True, "chunks_deleted": result.chunks_deleted}


# -- collections --------------------------------------------------------------------------------


@router.get("/collections", tags=["collections"],
            summary="Collections with their document and chunk counts")
async def list_collections(state: State) -> dict[str, Any]:
    vectors = await state.vectors()
    infos = await asyncio.to_thread(vectors.list_collections)
    chunks = {info.name: info.count for info in infos}
    aliases = CollectionAliases.for_documents(state.runtime.documents)
    counts = await state.runtime.documents.document_counts()
    for name in counts:
        physical = await aliases.resolve(name)
        # A reindexed collection is shown under its own name with the version searches use.
        chunks[name] = chunks.pop(physical, 0) if physical != name else chunks.get(name, 0)
    return {"collections": [{"name": name, "document_count": counts.get(name, 0),
                             "chunk_count": chunks[name]} for name in sorted(chunks)]}


@router.delete("/collections/{name}", tags=["collections"],
               summary="Delete a collection: its chunks and its documents")
async def delete_collection(name: CollectionName, state: State) -> dict[str, Any]:
    validate_collection_name(name)
    documents = state.runtime.documents
    known = name in await documents.collections()
    # Every physical version, the registry entries and the alias, under the collection's lock.
    result = await delete_collection_everywhere(documents, await state.vectors(), name,
                                                owner=f"api-{uuid.uuid4().hex}")
    if not (result.dropped or known):
        raise ApiError(404, "not_found", f"no collection {name!r}")
    return {"name": name, "deleted": True, "documents_deleted": result.documents_deleted}


# -- search -------------------------------------------------------------------------------------

class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str = "documents"
    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=5, ge=1, le=100)
    filters: dict[str, Any] | None = Field(
        default=None, description='chunk fields to match, e.g. {"filename": "a.pdf"} or '
                                  '{"page_start": {"$gte": 2}}; all must match. Operators: '
                                  f"{', '.join(op.value for op in Operator)}; fields: "
                                  f"{', '.join(FIELDS)}")
    mode: Literal["hybrid", "dense", "keyword"] = Field(
        default="hybrid", description="hybrid: by meaning and keywords (the keyword query "
                                      "expanded by the best first results), fused (score: the "
                                      "fused score, comparable within one answer); dense: by "
                                      "meaning (score: cosine similarity); keyword: BM25 "
                                      "(score: BM25)")
    group_by_document: bool = Field(
        default=False, description="each document once, by its best chunk: k documents")

    @field_validator("collection")
    @classmethod
    def _collection(cls, value: str) -> str:
        return validate_collection_name(value)


@router.post("/search", tags=["search"],
             summary="Hybrid, semantic or keyword search over a collection")
async def search(request: SearchRequest, state: State) -> dict[str, Any]:
    try:  # before anything is asked: a wrong filter is the client's, not the store's, fault
        where = SearchFilter.parse(request.filters)
    except ConfigurationError as exc:
        raise ApiError(422, "invalid_request", f"invalid request: {exc.field}: {exc.problem}",
                       fields={exc.field: exc.problem}) from None
    service = await state.search_service()
    hits = await service.search(request.collection, request.query, request.k, where,
                                mode=request.mode,
                                group_by_document=request.group_by_document)
    found = [
        {"document_id": h.document_id, "filename": h.filename, "page_start": h.page_start,
         "page_end": h.page_end, "score": round(h.score, 6), "text": h.text,
         "chunk_index": h.chunk_index, "chunk_id": h.chunk_id, "found_by": list(h.found_by),
         "dense_rank": h.dense_rank, "keyword_rank": h.keyword_rank, "ocr": h.ocr,
         "ocr_confidence": h.ocr_confidence}
        for h in hits
    ]
    return {"collection": request.collection, "query": request.query, "mode": request.mode,
            "group_by_document": request.group_by_document, "hits": found}
