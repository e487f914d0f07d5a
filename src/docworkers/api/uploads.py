"""Receiving an upload: a multipart body streamed to disk and checked while it arrives.

Nothing the client sends is trusted:

* the file goes to ``<storage>/.upload-<uuid>.part`` and, once accepted, is renamed to its
  SHA-256 (``<storage>/<sha256>.pdf``); the client's file name is never part of a path, it is
  kept (reduced to a bare name) only for display and for format detection;
* the byte count is checked on every chunk, so an oversized upload stops at the limit (413)
  instead of filling the disk; a ``Content-Length`` already over the limit is refused unread;
* the format comes from the first 64 KiB of the bytes (:func:`detect_kind`), not from the
  client's content type (415 for an unsupported or corrupt file);
* form fields are small (16 KiB each, 32 at most) and must be UTF-8.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import unicodedata
import uuid
from dataclasses import dataclass
from io import BufferedWriter
from pathlib import Path
from typing import TYPE_CHECKING

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from docworkers.api.errors import ApiError
from docworkers.errors import DocumentError, EmptyDocumentError
from docworkers.ingest.parsing.detect import HEAD_BYTES, detect_kind

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FILE_FIELD = "file"
MAX_FIELD_BYTES = 16 * 1024
MAX_FIELDS = 32
MAX_FILENAME = 255
_FRAMING_ALLOWANCE = 1 << 20  # multipart framing and form fields on top of the file
_WRITE_BLOCK = 1 << 20
_SUFFIX = {"pdf": ".pdf", "docx": ".docx", "html": ".html", "markdown": ".md", "text": ".txt",
           "csv": ".csv", "doc": ".doc", "xls": ".xls", "xlsx": ".xlsx", "pptx": ".pptx",
           "eml": ".eml", "msg": ".msg"}


def safe_filename(raw: str) -> str:
    """A display name from a client's file name: the last path component, printable
    characters only, at most 255 characters; ``"upload"`` when nothing is left."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if name in ("", ".", ".."):
        return "upload"
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: MAX_FILENAME - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILENAME]
    return name


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large",
                    f"the file is larger than the upload limit of {human_size(limit)} "
                    "(DOCWORKERS_MAX_UPLOAD_BYTES on the server)",
                    fields={FILE_FIELD: f"larger than {human_size(limit)}"})


@dataclass(frozen=True, slots=True)
class ReceivedUpload:
    """An upload that passed the byte checks, still under its temporary name."""

    fields: dict[str, str]
    filename: str  # the client's name made safe; never used as a path
    temp_path: Path
    size: int
    sha256: str
    kind: str  # what detect_kind found (one of detect.KINDS)

    @property
    def target_name(self) -> str:
        """The content-addressed file name the upload is stored under."""
        return f"{self.sha256}{_SUFFIX[self.kind]}"

    def store(self, directory: Path) -> Path:
        """Rename to :attr:`target_name`; the same bytes always land on the same file (an
        atomic replace by identical content, so a job reading it is not disturbed)."""
        final = directory / self.target_name
        os.replace(self.temp_path, final)
        return final

    def discard(self) -> None:
        self.temp_path.unlink(missing_ok=True)


async def receive_upload(request: Request, directory: Path, max_bytes: int) -> ReceivedUpload:
    """Stream the multipart body of ``request`` into ``directory``; raises ApiError."""
    media_type, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise ApiError(415, "expected_multipart",
                       "send the upload as multipart/form-data with the document in a 'file' "
                       "part and the options as form fields")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes + _FRAMING_ALLOWANCE:
        raise too_large(max_bytes)
    receiver = _Receiver(directory, max_bytes)
    parser = MultipartParser(boundary, receiver.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            await receiver.flush()
        parser.finalize()
        await receiver.flush(final=True)
        return receiver.result()
    except MultipartParseError as exc:
        raise ApiError(400, "malformed_multipart",
                       f"the multipart body could not be read: {exc}") from None
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected",
                       "the client closed the connection before the upload finished") from None
    finally:
        receiver.close(keep=receiver.done)


class _Receiver:
    """python-multipart callbacks. They run synchronously inside ``parser.write``; file bytes
    are buffered there and written to disk by :meth:`flush` in a thread."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.fields: dict[str, str] = {}
        self.done = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._name = ""
        self._in_file = False
        self._skip = False
        self._field = bytearray()
        self._filename: str | None = None
        self._size = 0
        self._digest = hashlib.sha256()
        self._head = bytearray()
        self._kind: str | None = None
        self._pending = bytearray()
        self._path: Path | None = None
        self._handle: BufferedWriter | None = None

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin, "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    # -- parsing (synchronous) ---------------------------------------------------------------

    def _part_begin(self) -> None:
        self._headers = {}
        self._field = bytearray()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]
        self._check_header_size()

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        self._check_header_size()

    def _check_header_size(self) -> None:
        if len(self._header_field) + len(self._header_value) > MAX_FIELD_BYTES:
            raise ApiError(400, "malformed_multipart", "a part header is too long")

    def _header_end(self) -> None:
        self._headers[self._header_field.decode("latin-1").lower()] = bytes(self._header_value)
        self._header_field = bytearray()
        self._header_value = bytearray()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition"))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        raw_filename = options.get(b"filename")
        self._in_file = raw_filename is not None
        # A browser form with no file chosen sends an empty part with filename="".
        self._skip = raw_filename == b""
        if not self._in_file:
            if len(self.fields) >= MAX_FIELDS:
                raise ApiError(422, "too_many_fields", f"at most {MAX_FIELDS} form fields")
            return
        if self._name != FILE_FIELD:
            raise ApiError(422, "invalid_request", "unexpected file part",
                           fields={self._name or "?": f"files go in the '{FILE_FIELD}' part"})
        if self._skip:
            return
        if self._filename is not None:
            raise ApiError(422, "invalid_request", "send exactly one file per upload",
                           fields={FILE_FIELD: "sent more than once"})
        assert raw_filename is not None
        self._filename = safe_filename(raw_filename.decode("utf-8", "replace"))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        if not self._in_file:
            self._field += piece
            if len(self._field) > MAX_FIELD_BYTES:
                raise ApiError(422, "invalid_request", f"form field {self._name!r} is too long",
                               fields={self._name: f"longer than {MAX_FIELD_BYTES} bytes"})
            return
        if self._skip:
            return
        self._size += len(piece)
        if self._size > self.max_bytes:
            raise too_large(self.max_bytes)
        self._digest.update(piece)
        self._pending += piece
        if self._kind is None:
            self._head += piece[: HEAD_BYTES - len(self._head)]
            if len(self._head) >= HEAD_BYTES:
                self._detect()

    def _part_end(self) -> None:
        if self._in_file:
            if self._kind is None and not self._skip:
                self._detect()
            return
        if self._name in self.fields:
            raise ApiError(422, "invalid_request", f"form field {self._name!r} is repeated",
                           fields={self._name: "given more than once"})
        try:
            self.fields[self._name] = self._field.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(422, "invalid_request", f"form field {self._name!r} is not UTF-8",
                           fields={self._name: "not valid UTF-8 text"}) from None

    def _detect(self) -> None:
        filename = self._filename or "upload"
        try:
            self._kind = detect_kind(bytes(self._head), filename)
        except EmptyDocumentError as exc:
            raise ApiError(422, "empty_file", str(exc),
                           fields={FILE_FIELD: "the file is empty"}) from None
        except DocumentError as exc:
            raise ApiError(415, exc.code, str(exc), fields={FILE_FIELD: exc.reason}) from None

    # -- writing (asynchronous) --------------------------------------------------------------

    async def flush(self, *, final: bool = False) -> None:
        if not self._pending or (len(self._pending) < _WRITE_BLOCK and not final):
            return
        block, self._pending = bytes(self._pending), bytearray()
        if self._handle is None:
            self._path = self.directory / f".upload-{uuid.uuid4().hex}.part"
            self._handle = await asyncio.to_thread(self._path.open, "xb")
        await asyncio.to_thread(self._handle.write, block)

    def result(self) -> ReceivedUpload:
        if self._filename is None:
            raise ApiError(422, "invalid_request", "no file was uploaded",
                           fields={FILE_FIELD: f"required: send the document in a "
                                               f"'{FILE_FIELD}' part"})
        assert self._kind is not None and self._path is not None and self._handle is not None
        self._handle.close()
        self.done = True
        return ReceivedUpload(fields=self.fields, filename=self._filename,
                              temp_path=self._path, size=self._size,
                              sha256=self._digest.hexdigest(), kind=self._kind)

    def close(self, *, keep: bool) -> None:
        """Close the temporary file; delete it unless the upload was accepted."""
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
        if not keep and self._path is not None:
            self._path.unlink(missing_ok=True)
