"""The ``document_upload`` job: its payload and result."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from docworkers.errors import ConfigurationError, InvalidPayloadError
from docworkers.ingest.chunking import CHUNKING_STRATEGIES, DEFAULT_STRATEGY
from docworkers.ingest.defaults import DEFAULT_OCR, OcrMode
from docworkers.ingest.jobs.kinds import UPLOAD_JOB_TYPE as UPLOAD_JOB_TYPE  # re-exported
from docworkers.ingest.tokenizer import MAX_TEXT_TOKENS
from docworkers.ingest.vector_repository import validate_collection_name


class ChunkingOptions(BaseModel):
    """How documents are cut: the options shared by uploads, bulk imports and reindexing."""

    chunking_strategy: str = DEFAULT_STRATEGY
    chunk_size: int = Field(default=MAX_TEXT_TOKENS, ge=1)
    chunk_overlap: int = Field(default=0, ge=0)

    @field_validator("chunking_strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        if value not in CHUNKING_STRATEGIES:
            raise ValueError(
                f"unknown strategy {value!r}; use one of {', '.join(CHUNKING_STRATEGIES)}"
            )
        return value

    @model_validator(mode="after")
    def _overlap(self) -> Self:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than "
                f"chunk_size ({self.chunk_size})"
            )
        return self


class UploadOptions(ChunkingOptions):
    """Every option of an upload besides the file: also what a bulk import gives its children."""

    extract_metadata: bool = False
    num_questions: int = Field(default=0, ge=0, le=10)
    max_pages: int = Field(default=0, ge=0)
    # Which PDF pages OCR reads: "auto" those without a text layer, "always", or "never".
    ocr: OcrMode = DEFAULT_OCR


class UploadJobPayload(UploadOptions):
    """What to ingest and how. Unknown fields are rejected, so a misspelt option is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    filename: str = Field(min_length=1, max_length=255)
    file_path: str = Field(min_length=1, description="path or file:// URI of the stored bytes")
    file_size: int = Field(default=0, ge=0)
    collection: str = "documents"

    @field_validator("collection")
    @classmethod
    def _collection(cls, value: str) -> str:
        try:
            return validate_collection_name(value)
        except ConfigurationError as exc:
            raise ValueError(exc.problem) from exc

    @field_validator("filename")
    @classmethod
    def _filename(cls, value: str) -> str:
        if "/" in value or "\\" in value or value in (".", "..") or "\x00" in value:
            raise ValueError("must be a bare file name, without folders")
        return value

    @classmethod
    def parse(cls, data: Any) -> UploadJobPayload:
        """Validate a job payload; errors are InvalidPayloadError naming each bad field."""
        if not isinstance(data, dict):
            raise InvalidPayloadError(f"payload must be a JSON object, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidPayloadError(describe_validation_error(exc)) from None

    @property
    def path(self) -> Path:
        """The local path of the stored file (``file://`` URIs are accepted)."""
        if self.file_path.startswith("file:"):
            return Path(unquote(urlparse(self.file_path).path))
        if "://" in self.file_path:
            raise InvalidPayloadError(
                f"file_path: unsupported URI {self.file_path!r}; workers read local paths or "
                "file:// URIs on storage they share with the uploader"
            )
        return Path(self.file_path)


class UploadJobResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    document_id: str
    chunk_count: int
    collection: str
    processing_time_ms: int
    success: bool = True
    page_count: int | None = None
    truncated: bool = False
    timings_ms: dict[str, int] = Field(default_factory=dict)
    enrichment_errors: list[str] = Field(default_factory=list)
    # the embedding cache's hits / misses / errors over the document's distinct chunk texts
    # (ingest/embedding_cache.py); {} without a cache
    embedding_cache: dict[str, int] = Field(default_factory=dict)


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``field: message``, the way users read form errors."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "payload"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        parts.append(f"{field}: {message}")
    return "; ".join(parts)
