"""Parse documents in reusable child processes that can be killed when a file misbehaves.

A hostile PDF can make pdfium spin, allocate gigabytes or crash; in a child process that costs a
restart, not the worker. Children are started with "spawn" (never fork: the parent may hold
onnxruntime threads and locks), limit their own address space with RLIMIT_AS, and answer with
JSON over a pipe, so the parent never unpickles anything produced while parsing a hostile file.
A child that starts OCR on a document says so first (:data:`_OCR_STARTED`), and the parent
then waits ``ocr_timeout_seconds`` longer before it kills it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import queue
import resource
import signal
import threading
import time
import traceback
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import Any

from docworkers.errors import (
    ConfigurationError,
    CorruptDocumentError,
    DocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    EncryptedDocumentError,
    NoExtractableTextError,
    OcrUnavailableError,
    ParseTimeoutError,
    RetryableJobError,
    UnsupportedDocumentTypeError,
)
from docworkers.ingest.defaults import DEFAULT_OCR, OcrMode
from docworkers.ingest.document import Page, ParsedDocument
from docworkers.ingest.heap import trim_heap
from docworkers.ingest.parsing._common import Deadline, megabytes, timeout_reason
from docworkers.ingest.parsing.limits import DEFAULT_LIMITS, ParseLimits, check_mode

log = logging.getLogger("docworkers.ingest.parsing")

START_TIMEOUT_SECONDS = 60.0
CHILD_NAME = "docworkers-parser"  # the child process's name (ps, multiprocessing)
_READY = b"ready"
_OCR_STARTED = b"ocr"  # sent by a child before a document's first OCR page
_ERRORS: dict[str, type[DocumentError]] = {
    cls.__name__: cls
    for cls in (
        CorruptDocumentError,
        DocumentTooLargeError,
        EmptyDocumentError,
        EncryptedDocumentError,
        NoExtractableTextError,
        OcrUnavailableError,
        ParseTimeoutError,
        UnsupportedDocumentTypeError,
    )
}


class IsolatedParser:
    """A pool of ``size`` child processes running :func:`parse_document`, with hard limits.

    Thread-safe: concurrent :meth:`parse` calls each take an idle child (waiting if none is
    idle). A child that times out is killed (ParseTimeoutError); one that dies while parsing is
    replaced (CorruptDocumentError). Children start on first use, or at once in the background
    with :meth:`start`, and are restarted on next use.
    """

    def __init__(self, *, limits: ParseLimits = DEFAULT_LIMITS, size: int = 1) -> None:
        if not isinstance(limits, ParseLimits):
            raise ConfigurationError(
                "limits", f"must be a ParseLimits, got {type(limits).__name__}"
            )
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ConfigurationError("size", f"must be an integer >= 1, got {size!r}")
        self._limits = limits
        self._children = [_Child(limits) for _ in range(size)]
        self._idle: queue.SimpleQueue[_Child] = queue.SimpleQueue()
        for child in self._children:
            self._idle.put(child)
        self._closed = False
        self._close_lock = threading.Lock()

    @property
    def limits(self) -> ParseLimits:
        return self._limits

    @property
    def pids(self) -> list[int]:
        """Process ids of the running children (for monitoring, and for tests that kill one)."""
        return [pid for pid in (child.pid for child in self._children) if pid is not None]

    def parse(
        self, path: Path, *, filename: str | None = None, max_pages: int = 0,
        ocr: OcrMode = DEFAULT_OCR, attachments_dir: Path | None = None,
    ) -> ParsedDocument:
        """Parse ``path`` in a child process; same contract as :func:`parse_document`."""
        if not isinstance(max_pages, int) or isinstance(max_pages, bool) or max_pages < 0:
            raise ConfigurationError("max_pages", f"must be an integer >= 0, got {max_pages!r}")
        ocr = check_mode(ocr)
        self._check_open()
        child = self._idle.get()
        try:
            self._check_open()
            return child.parse(Path(path), filename or Path(path).name, max_pages, ocr,
                               attachments_dir=attachments_dir)
        finally:
            self._idle.put(child)

    async def aparse(
        self, path: Path, *, filename: str | None = None, max_pages: int = 0,
        ocr: OcrMode = DEFAULT_OCR, attachments_dir: Path | None = None,
    ) -> ParsedDocument:
        """:meth:`parse` in a thread, so the event loop keeps running while a child works."""
        return await asyncio.to_thread(self.parse, path, filename=filename, max_pages=max_pages,
                                       ocr=ocr, attachments_dir=attachments_dir)

    def start(self) -> None:
        """Start the children now, in a background thread, instead of on first use: a worker
        calls this as it starts, so a child's start (an interpreter importing every parser,
        ~1 s of one core) overlaps the worker's own start-up rather than delaying its first
        document. Returns at once; a child that fails to start here starts on its next parse."""
        threading.Thread(target=self._start_children, name="docworkers-parser-start",
                         daemon=True).start()

    def _start_children(self) -> None:
        for _ in self._children:
            child = self._idle.get()  # a busy child is started already
            try:
                if not self._closed:
                    child.ensure_started()
            except RetryableJobError as exc:
                log.warning("a parser process did not start (it is tried again on the next "
                            "document): %s", exc)
            finally:
                self._idle.put(child)

    def close(self) -> None:
        """Stop every child, after letting parses in flight finish. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        stopped = [self._idle.get() for _ in self._children]  # waits for busy children
        for child in stopped:
            child.stop()
            self._idle.put(child)  # waiting parse() calls wake up and see that we are closed

    def __enter__(self) -> IsolatedParser:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> IsolatedParser:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.close)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("IsolatedParser is closed")


class _Child:
    """One child process and its pipe; used by one thread at a time (the pool ensures it)."""

    def __init__(self, limits: ParseLimits) -> None:
        self._limits = limits
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    def parse(self, path: Path, filename: str, max_pages: int, ocr: OcrMode, *,
              attachments_dir: Path | None = None) -> ParsedDocument:
        request = {"path": str(path), "filename": filename, "max_pages": max_pages, "ocr": ocr,
                   "attachments_dir": None if attachments_dir is None else str(attachments_dir)}
        conn = self._send(json.dumps(request).encode())
        seconds = self._limits.timeout_seconds
        until = time.monotonic() + seconds
        while True:
            if not conn.poll(max(0.0, until - time.monotonic())):
                self._kill()
                raise ParseTimeoutError(filename, timeout_reason(seconds))
            try:
                raw = conn.recv_bytes()
            except (EOFError, OSError):
                exitcode = self._kill()
                raise CorruptDocumentError(
                    filename,
                    f"the parser crashed on this file ({_describe_exit(exitcode)}), so the file "
                    "is probably damaged. Open it and save or print it as a new PDF or DOCX, "
                    "then upload that.",
                ) from None
            if raw != _OCR_STARTED:
                return _document_from_reply(json.loads(raw), filename, self._limits)
            seconds += self._limits.ocr_timeout_seconds
            until += self._limits.ocr_timeout_seconds

    def stop(self) -> None:
        # Killed rather than asked to exit: an idle child holds nothing to save, and its
        # interpreter's own shutdown (every parser's modules) would take up to a second that a
        # command exiting after its last document waits for.
        self._kill()

    def ensure_started(self) -> None:
        if self._conn is None or self._process is None or not self._process.is_alive():
            self._start()

    def _send(self, request: bytes) -> Connection:
        for _attempt in range(2):
            self.ensure_started()
            assert self._conn is not None
            try:
                self._conn.send_bytes(request)
                return self._conn
            except OSError:  # the child died between documents: start a fresh one, retry once
                self._kill()
        raise RetryableJobError("the document parser process keeps dying before it gets work")

    def _start(self) -> None:
        self._kill()
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe(duplex=True)
        process = context.Process(
            target=_child_main,
            args=(child_end, self._limits),
            name=CHILD_NAME,
            daemon=True,
        )
        process.start()
        child_end.close()
        self._process, self._conn = process, parent_end
        try:
            ready = parent_end.poll(START_TIMEOUT_SECONDS) and parent_end.recv_bytes() == _READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            exitcode = self._kill()
            raise RetryableJobError(
                f"the document parser process did not start ({_describe_exit(exitcode)})"
            )

    def _kill(self) -> int | None:
        """Kill and reap the child (if any); returns its exit code."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        if process.is_alive():
            process.kill()
        process.join(timeout=5.0)
        exitcode = process.exitcode
        if exitcode is not None:
            process.close()
        return exitcode


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "no exit status"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def _document_from_reply(
    reply: dict[str, Any], filename: str, limits: ParseLimits
) -> ParsedDocument:
    if "document" in reply:
        doc = reply["document"]
        pages = [Page(text, number, bool(ocr), confidence)
                 for text, number, ocr, confidence in doc["pages"]]
        return ParsedDocument(
            doc["filename"], doc["kind"], pages, doc["metadata"], doc["truncated"]
        )
    if "error" in reply:
        raise _ERRORS.get(reply["error"], CorruptDocumentError)(filename, reply["reason"])
    if "memory" in reply:
        raise DocumentTooLargeError(
            filename,
            f"parsing needed more than the {megabytes(limits.max_memory_bytes)} memory limit; "
            "the file is too large or complex. Split it into smaller files.",
        )
    if "os_error" in reply:
        errno, strerror, name = reply["os_error"]
        raise OSError(errno, strerror, name)
    raise RuntimeError(f"the parser failed unexpectedly on {filename}: {reply.get('bug')}")


# --- child side ----------------------------------------------------------------------------


def _child_main(conn: Connection, limits: ParseLimits) -> None:
    """Serve parse requests until the parent closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    # The parsers, before saying ready and before the memory limit is set (as when they
    # were imported with this module: a limit meant for documents would stop the import).
    # The sheet and slide readers come later, with their first file (formats.py).
    import docworkers.ingest.parsing.parse  # noqa: F401

    _limit_memory(limits.max_memory_bytes)
    conn.send_bytes(_READY)
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        reply = _handle(json.loads(raw), limits, conn)
        conn.send_bytes(reply)
        del reply, raw
        trim_heap()  # a large document's pages go back to the system, not kept for the next


class _OcrNotice(Deadline):
    """No deadline (the parent enforces the time limit by killing us), but OCR's extra time
    is announced to the parent, which then waits that much longer."""

    __slots__ = ("_conn",)

    def __init__(self, filename: str, conn: Connection) -> None:
        super().__init__(None, filename)
        self._conn = conn

    def extend(self, seconds: float) -> None:
        self._conn.send_bytes(_OCR_STARTED)


def _handle(request: dict[str, Any], limits: ParseLimits, conn: Connection) -> bytes:
    # The parsers are imported by the children only (loaded by _child_main before it says
    # ready): a worker process never needs them, and they cost it ~35 MB and half a second.
    from docworkers.ingest.parsing.parse import parse_with_deadline

    filename = str(request["filename"])
    try:
        document = parse_with_deadline(
            Path(request["path"]), filename, int(request["max_pages"]), limits,
            _OcrNotice(filename, conn), ocr=check_mode(request.get("ocr", DEFAULT_OCR)),
            attachments_dir=_optional_path(request.get("attachments_dir")),
        )  # fmt: skip
        plain = {
            "filename": document.filename,
            "kind": document.kind,
            "pages": [[page.text, page.number, page.ocr, page.ocr_confidence]
                      for page in document.pages],
            "metadata": document.metadata,
            "truncated": document.truncated,
        }
        return json.dumps({"document": plain}).encode()
    except DocumentError as exc:
        return json.dumps({"error": type(exc).__name__, "reason": exc.reason}).encode()
    except MemoryError:
        return b'{"memory": true}'
    except OSError as exc:
        return json.dumps({"os_error": [exc.errno, exc.strerror, exc.filename]}).encode()
    except Exception as exc:
        bug = "".join(traceback.format_exception_only(exc)).strip()
        return json.dumps({"bug": bug}).encode()


def _optional_path(value: Any) -> Path | None:
    return None if value is None else Path(str(value))


def _limit_memory(limit: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft == resource.RLIM_INFINITY or soft > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
