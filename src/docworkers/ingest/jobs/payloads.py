"""The payload model of each document job type, and payload validation by type.

The types themselves (names, traits, queues) are in :mod:`~.kinds`, which the command line
reads without loading pydantic.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from docworkers.errors import InvalidPayloadError
from docworkers.ingest.jobs.bulk_import import BulkImportPayload
from docworkers.ingest.jobs.collection_delete import CollectionDeletePayload
from docworkers.ingest.jobs.common import JobPayload
from docworkers.ingest.jobs.document_delete import DocumentDeletePayload
from docworkers.ingest.jobs.kinds import (
    BULK_IMPORT_JOB_TYPE,
    COLLECTION_DELETE_JOB_TYPE,
    DOCUMENT_DELETE_JOB_TYPE,
    METADATA_EXTRACT_JOB_TYPE,
    UPLOAD_JOB_TYPE,
    VECTOR_REINDEX_JOB_TYPE,
    job_kind,
)
from docworkers.ingest.jobs.metadata_extract import MetadataExtractPayload
from docworkers.ingest.jobs.vector_reindex import VectorReindexPayload
from docworkers.ingest.payload import UploadJobPayload

__all__ = ["PAYLOAD_MODELS", "payload_problems", "validate_payload"]

#: The model that validates each type's payload; unknown fields are errors.
PAYLOAD_MODELS: dict[str, type[BaseModel]] = {
    UPLOAD_JOB_TYPE: UploadJobPayload,
    DOCUMENT_DELETE_JOB_TYPE: DocumentDeletePayload,
    COLLECTION_DELETE_JOB_TYPE: CollectionDeletePayload,
    METADATA_EXTRACT_JOB_TYPE: MetadataExtractPayload,
    VECTOR_REINDEX_JOB_TYPE: VectorReindexPayload,
    BULK_IMPORT_JOB_TYPE: BulkImportPayload,
}


def payload_problems(job_type: str, data: Any) -> dict[str, str]:
    """``{field: problem}`` for a payload of ``job_type``; empty when it is valid."""
    job_kind(job_type)
    model = PAYLOAD_MODELS[job_type]
    if not isinstance(data, dict):
        return {"payload": f"must be a JSON object, got {type(data).__name__}"}
    try:
        parsed = model.model_validate(data)
        if isinstance(parsed, JobPayload):
            parsed.check()
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"]) or "payload"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown field (check the spelling)"
            problems.setdefault(name, message)
        return problems
    except InvalidPayloadError as exc:  # a check across models: "field: problem; ..."
        return dict(_split(part) for part in str(exc).split("; "))
    return {}


def validate_payload(job_type: str, data: Any) -> dict[str, Any]:
    """The payload as the worker will read it (defaults filled in); InvalidPayloadError
    naming every bad field, ConfigurationError for an unknown type."""
    problems = payload_problems(job_type, data)
    if problems:
        raise InvalidPayloadError("; ".join(f"{name}: {problem}"
                                            for name, problem in problems.items()))
    dumped: dict[str, Any] = PAYLOAD_MODELS[job_type].model_validate(data).model_dump(
        mode="json")
    return dumped


def _split(part: str) -> tuple[str, str]:
    name, found, problem = part.partition(": ")
    if found and name.replace(".", "").replace("_", "").isalnum():
        return name, problem
    return "payload", part
