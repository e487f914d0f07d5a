"""ChromaVectorRepository against real Chroma: embedded in tmp_path, and a real `chroma run` server.

Embeddings come from a deterministic hashed bag of words (below) instead of the ONNX model, so
these tests do not depend on the embedder; Chroma itself is never faked.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import chromadb
import httpx
import numpy as np
import pytest
from chromadb.config import Settings
from server_start import fail_to_start

from docworkers.errors import ConfigurationError, VectorStoreError
from docworkers.ingest.chroma_queries import TEXT_KEY
from docworkers.ingest.document import Chunk
from docworkers.ingest.search_filters import SearchFilter
from docworkers.ingest.vector_store import (
    ChromaVectorRepository,
    SearchHit,
    chunk_id,
    flatten_metadata,
    validate_collection_name,
)
from docworkers.ingest.writer_lock import LOCK_FILENAME

DIM = 384
COLLECTION = "docs"


def embed(text: str) -> np.ndarray:
    """Hashed bag of words, L2-normalised: similar wording gives similar vectors."""
    vector = np.zeros(DIM, dtype=np.float32)
    for word in re.findall(r"\w+", text.lower()):
        digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vector[digest % DIM] += 1.0 if (digest >> 32) & 1 else -1.0
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


def make_chunks(texts: Sequence[str], pages: Sequence[int | None] | None = None) -> list[Chunk]:
    chunks, offset = [], 0
    for index, text in enumerate(texts):
        page = pages[index] if pages else None
        chunks.append(
            Chunk(
                index=index,
                text=text,
                start_char=offset,
                end_char=offset + len(text),
                token_count=len(text.split()),
                page_start=page,
                page_end=page,
            )
        )
        offset += len(text) + 2
    return chunks


def store(
    repo: ChromaVectorRepository,
    document_id: str,
    texts: Sequence[str],
    *,
    pages: Sequence[int | None] | None = None,
    collection: str = COLLECTION,
    **metadata: Any,
) -> list[Chunk]:
    chunks = make_chunks(texts, pages)
    embeddings = np.stack([embed(c.text) for c in chunks]) if chunks else np.zeros((0, DIM))
    repo.replace_document(collection, document_id, chunks, embeddings, [metadata] * len(chunks))
    return chunks


def search(repo: ChromaVectorRepository, query: str, **kwargs: Any) -> list[SearchHit]:
    return repo.search(COLLECTION, embed(query), **kwargs)


ANIMALS = [
    "The cheetah is the fastest land animal and hunts on open savanna.",
    "Penguins cannot fly but swim with great speed in cold southern oceans.",
    "An octopus has three hearts and blue blood based on copper.",
    "Honey bees communicate the direction of flowers with a waggle dance.",
    "Elephants remember water holes across decades of drought.",
]
PLANETS = [
    "Jupiter is the largest planet and has a great red storm.",
    "Mars has the tallest volcano in the solar system, Olympus Mons.",
]


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[ChromaVectorRepository]:
    """An embedded repository in tmp_path (overrides the Redis ``repo`` of tests/conftest.py)."""
    repository = ChromaVectorRepository.from_path(tmp_path / "chroma")
    yield repository
    repository.close()


# --- replace / delete ------------------------------------------------------------------------


def test_replacing_a_document_twice_does_not_duplicate_chunks(
    repo: ChromaVectorRepository,
) -> None:
    store(repo, "doc-a", ANIMALS[:3])
    store(repo, "doc-a", ANIMALS[:3])

    assert repo.document_chunk_ids(COLLECTION, "doc-a") == ["doc-a:0", "doc-a:1", "doc-a:2"]
    assert repo.count_document_chunks(COLLECTION, "doc-a") == 3
    [info] = repo.list_collections()
    assert (info.name, info.count) == (COLLECTION, 3)


def test_a_shorter_version_removes_the_chunks_it_no_longer_has(
    repo: ChromaVectorRepository,
) -> None:
    store(repo, "doc-a", ANIMALS)
    store(repo, "doc-b", PLANETS)
    store(repo, "doc-a", ["Sloths sleep hanging upside down.", ANIMALS[1]])

    assert repo.document_chunk_ids(COLLECTION, "doc-a") == ["doc-a:0", "doc-a:1"]
    assert repo.count_document_chunks(COLLECTION, "doc-b") == 2  # the other document is intact
    hits = search(repo, ANIMALS[4], k=10)
    assert "doc-a:4" not in {hit.chunk_id for hit in hits}
    assert all(hit.text != ANIMALS[4] for hit in hits)
    assert hits[0].text != ANIMALS[0]  # chunk 0 now holds the new text
    assert search(repo, "sloths sleep upside down")[0].chunk_id == "doc-a:0"


def test_replacing_with_no_chunks_empties_the_document(repo: ChromaVectorRepository) -> None:
    store(repo, "doc-a", ANIMALS[:2])
    store(repo, "doc-a", [])
    assert repo.count_document_chunks(COLLECTION, "doc-a") == 0
    # ... and does not create a collection that does not exist yet
    store(repo, "doc-a", [], collection="never-created")
    assert [c.name for c in repo.list_collections()] == [COLLECTION]


def test_delete_document_counts_what_it_removed(repo: ChromaVectorRepository) -> None:
    store(repo, "doc-a", ANIMALS)
    store(repo, "doc-b", PLANETS)

    assert repo.delete_document(COLLECTION, "doc-a") == 5
    assert repo.delete_document(COLLECTION, "doc-a") == 0
    assert repo.count_document_chunks(COLLECTION, "doc-a") == 0
    assert repo.document_chunk_ids(COLLECTION, "doc-b") == ["doc-b:0", "doc-b:1"]
    assert repo.delete_document("no-such-collection", "doc-a") == 0


def test_writes_are_split_into_batches_the_client_accepts(tmp_path: Path) -> None:
    """A client wrapper lowers the batch limit to 3 and records every upsert and delete."""
    real = _raw_client(tmp_path / "c")
    client = _RecordingClient(real, max_batch=3)
    with ChromaVectorRepository(client, location="test", hint="none") as repo:  # type: ignore[arg-type]
        texts = [f"passage {i} about topic {i}" for i in range(8)]
        store(repo, "big", texts)
        store(repo, "big", texts[:1])
        assert repo.document_chunk_ids(COLLECTION, "big") == ["big:0"]
    assert client.upserts == [3, 3, 2, 1]
    assert client.deletes == [3, 3, 1]
    real.close()


def test_chunk_metadata_is_flat_and_structural_keys_win(repo: ChromaVectorRepository) -> None:
    metadata = {
        "filename": "animals.pdf",
        "keywords": ["cheetah", "speed"],
        "extra": {"b": 1, "a": None},
        "author": None,
        "document_id": "forged",
        "page_start": 99,
        "score": float("nan"),
        "count": np.int64(7),
    }
    chunks = make_chunks(ANIMALS[:1], pages=[3])
    repo.replace_document(COLLECTION, "doc-a", chunks, embed(ANIMALS[0])[None, :], [metadata])

    [hit] = search(repo, ANIMALS[0], k=1)
    assert hit.metadata == {
        "filename": "animals.pdf",
        "keywords": "cheetah,speed",
        "extra": '{"a": null, "b": 1}',
        "count": 7,
        "document_id": "doc-a",
        "chunk_index": 0,
        "start_char": 0,
        "end_char": len(ANIMALS[0]),
        "token_count": len(ANIMALS[0].split()),
        "page_start": 3,
        "page_end": 3,
    }
    assert flatten_metadata({"tags": {"b", "a"}, "none": None}) == {"tags": "a,b"}


def test_the_text_is_stored_in_the_metadata_not_as_a_chroma_document(
    repo: ChromaVectorRepository,
) -> None:
    # Chroma indexes documents for full-text search as it writes them (chroma_queries.py); the
    # text stored in the metadata is read back as the chunk's text, and the key never shows.
    store(repo, "doc-a", ANIMALS[:2], chunk_text="forged by the upload")
    raw = repo._client.get_collection(COLLECTION).get(include=["documents", "metadatas"])
    assert raw["documents"] == [None, None]
    assert sorted(m[TEXT_KEY] for m in raw["metadatas"] or []) == sorted(ANIMALS[:2])

    chunks = repo.document_chunks(COLLECTION, "doc-a")
    assert [(id_, text) for id_, text, _ in chunks] == [("doc-a:0", ANIMALS[0]),
                                                         ("doc-a:1", ANIMALS[1])]
    assert all(TEXT_KEY not in meta for _, _, meta in chunks)
    [(_, text, meta)] = repo.chunks_by_ids(COLLECTION, ["doc-a:1"])
    assert (text, TEXT_KEY in meta) == (ANIMALS[1], False)
    [hit] = search(repo, ANIMALS[0], k=1)
    assert (hit.text, TEXT_KEY in hit.metadata) == (ANIMALS[0], False)

    # A metadata update can neither replace the text nor drop it.
    assert repo.update_chunk_metadata(COLLECTION, ["doc-a:0"],
                                      [{TEXT_KEY: "changed", "language": "en"}]) == 1
    [hit] = search(repo, ANIMALS[0], k=1)
    assert (hit.text, hit.metadata["language"]) == (ANIMALS[0], "en")


def test_chunks_stored_with_the_text_as_chroma_document_still_read(
    repo: ChromaVectorRepository,
) -> None:
    # As docworkers wrote chunks before the text moved to the metadata.
    store(repo, "other", PLANETS)  # creates the collection as docworkers does
    chunks = make_chunks(ANIMALS[:2])
    repo._client.get_collection(COLLECTION).upsert(
        ids=[chunk_id("old", c.index) for c in chunks],
        embeddings=np.stack([embed(c.text) for c in chunks]),  # type: ignore[arg-type]
        documents=[c.text for c in chunks],
        metadatas=[{"document_id": "old", "chunk_index": c.index} for c in chunks],
    )

    assert [text for _, text, _ in repo.document_chunks(COLLECTION, "old")] == ANIMALS[:2]
    assert [text for _, text, _ in repo.chunks_by_ids(COLLECTION, ["old:1"])] == [ANIMALS[1]]
    assert search(repo, ANIMALS[1], k=1)[0].text == ANIMALS[1]

    # Written again, the text moves to the metadata; the stale document is not read.
    store(repo, "old", ["A new first chunk about owls.", ANIMALS[1]])
    assert [text for _, text, _ in repo.document_chunks(COLLECTION, "old")] == [
        "A new first chunk about owls.", ANIMALS[1]]


def test_chunks_without_pages_store_no_page_numbers(repo: ChromaVectorRepository) -> None:
    store(repo, "doc-a", ANIMALS[:1])
    [hit] = search(repo, ANIMALS[0], k=1)
    assert (hit.page_start, hit.page_end) == (None, None)
    assert "page_start" not in hit.metadata


def test_bad_arguments_are_rejected_before_touching_chroma(repo: ChromaVectorRepository) -> None:
    chunks = make_chunks(ANIMALS[:2])
    with pytest.raises(ValueError, match=r"shape \(2, dim\)"):
        repo.replace_document(COLLECTION, "d", chunks, np.zeros((3, DIM)), [{}, {}])
    with pytest.raises(ValueError, match="one entry per chunk"):
        repo.replace_document(COLLECTION, "d", chunks, np.ones((2, DIM)), [{}])
    with pytest.raises(ValueError, match="NaN"):
        repo.replace_document(COLLECTION, "d", chunks, np.full((2, DIM), np.nan), [{}, {}])
    with pytest.raises(ValueError, match="document_id"):
        repo.replace_document(COLLECTION, " ", chunks, np.ones((2, DIM)), [{}, {}])
    with pytest.raises(ValueError, match="k must be"):
        repo.search(COLLECTION, embed("x"), k=0)
    assert repo.list_collections() == []


def test_readers_never_see_a_hole_while_a_writer_replaces(repo: ChromaVectorRepository) -> None:
    """One writer alternates a 5- and a 3-chunk version; readers in other threads always see at
    least 3 chunks (upsert-then-delete leaves a superset, never a hole) and no errors."""
    store(repo, "doc", ANIMALS[:3])
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                seen.append(repo.count_document_chunks(COLLECTION, "doc"))
                search(repo, ANIMALS[0], k=3)
        except BaseException as exc:  # reported below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        for round_ in range(12):
            store(repo, "doc", ANIMALS if round_ % 2 == 0 else ANIMALS[:3])
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=30)
    assert errors == []
    assert seen and min(seen) >= 3
    assert repo.count_document_chunks(COLLECTION, "doc") == 3


def test_data_survives_closing_and_reopening(tmp_path: Path) -> None:
    with ChromaVectorRepository.from_path(tmp_path / "chroma") as repo:
        store(repo, "doc-a", ANIMALS)
    with ChromaVectorRepository.from_path(tmp_path / "chroma") as repo:
        assert repo.count_document_chunks(COLLECTION, "doc-a") == 5
        assert search(repo, ANIMALS[3], k=1)[0].chunk_id == "doc-a:3"


# --- search ----------------------------------------------------------------------------------


def test_search_returns_the_matching_chunk_first_with_its_pages(
    repo: ChromaVectorRepository,
) -> None:
    store(repo, "animals", ANIMALS, pages=[1, 1, 2, 3, 3], filename="animals.pdf")
    store(repo, "planets", PLANETS, filename="planets.txt")

    hits = search(repo, "how many hearts does an octopus have?", k=3)

    best = hits[0]
    assert best.chunk_id == "animals:2"
    assert (best.document_id, best.chunk_index, best.text) == ("animals", 2, ANIMALS[2])
    assert (best.page_start, best.page_end, best.filename) == (2, 2, "animals.pdf")
    assert len(hits) == 3
    assert best.score > hits[1].score >= hits[2].score
    assert search(repo, ANIMALS[3], k=1)[0].score == pytest.approx(1.0, abs=1e-5)


def test_search_with_a_where_filter(repo: ChromaVectorRepository) -> None:
    store(repo, "animals", ANIMALS, filename="animals.pdf", kind="pdf")
    store(repo, "planets", PLANETS, filename="planets.txt", kind="text")

    hits = search(repo, ANIMALS[0], k=10, where=SearchFilter.parse({"filename": "planets.txt"}))
    assert {h.document_id for h in hits} == {"planets"}
    assert len(hits) == 2

    # several fields must all match; operators become Chroma's (search_filters tests the rest)
    both = SearchFilter.parse({"document_id": "animals", "filename": "planets.txt"})
    assert search(repo, ANIMALS[0], k=10, where=both) == []
    hits = search(repo, ANIMALS[0], k=10, where=SearchFilter.parse({"chunk_index": {"$gte": 3}}))
    assert sorted(h.chunk_id for h in hits) == ["animals:3", "animals:4"]


def test_search_in_a_missing_collection_finds_nothing(repo: ChromaVectorRepository) -> None:
    assert repo.search("not-there", embed("anything")) == []


def test_delete_collection(repo: ChromaVectorRepository) -> None:
    store(repo, "doc-a", ANIMALS[:1])
    assert repo.delete_collection(COLLECTION) is True
    assert repo.delete_collection(COLLECTION) is False
    assert repo.list_collections() == []
    store(repo, "doc-a", ANIMALS[:2])  # the cached handle was dropped: recreated cleanly
    assert repo.count_document_chunks(COLLECTION, "doc-a") == 2


def test_a_different_embedding_dimension_is_a_configuration_error(
    repo: ChromaVectorRepository,
) -> None:
    store(repo, "doc-a", ANIMALS[:1])
    chunks = make_chunks(["short vectors"])
    with pytest.raises(ConfigurationError, match="use another collection") as caught:
        repo.replace_document(COLLECTION, "doc-b", chunks, np.ones((1, 8)), [{}])
    assert caught.value.field == "collection"


def test_a_collection_with_another_distance_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    with ChromaVectorRepository.from_path(path) as repo:
        raw = _raw_client(path)
        raw.create_collection("l2-docs", embedding_function=None)
        with pytest.raises(ConfigurationError, match="'l2' distance"):
            repo.search("l2-docs", embed("x"))
        raw.close()


def test_no_network_access_is_attempted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No telemetry and no model download: nothing may resolve or dial a non-local address."""
    attempts: list[object] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("localhost", "127.0.0.1", "::1", None):
            attempts.append(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in (
            "127.0.0.1",
            "::1",
        ):
            attempts.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    with ChromaVectorRepository.from_path(tmp_path / "offline") as repo:
        store(repo, "doc-a", ANIMALS)
        assert search(repo, ANIMALS[1], k=1)[0].chunk_id == "doc-a:1"
        repo.list_collections()
    time.sleep(0.2)  # let any background sender (telemetry) run
    assert attempts == []


def test_a_closed_repository_refuses_work_and_closes_twice(tmp_path: Path) -> None:
    repo = ChromaVectorRepository.from_path(tmp_path / "chroma")
    repo.close()
    repo.close()
    with pytest.raises(VectorStoreError, match="closed"):
        repo.search(COLLECTION, embed("x"))


# --- collection names ------------------------------------------------------------------------

VALID_NAMES = ["abc", "docs", "my-docs_v2.0", "A1b", "x" * 512, "1.2.3", "10.0.0.1a"]
INVALID_NAMES = ["", "ab", "x" * 513, "-docs", "docs-", "_ab", "a..b", "my docs", "docs/x",
                 "dokumente-ä", "10.0.0.1", "192.168.1.255"]  # fmt: skip


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_collection_names_pass_and_chroma_agrees(
    name: str, repo: ChromaVectorRepository
) -> None:
    assert validate_collection_name(name) == name
    store(repo, "doc", ["text"], collection=name)  # Chroma accepts it too
    assert repo.count_document_chunks(name, "doc") == 1


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_collection_names_are_rejected_and_chroma_agrees(name: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        validate_collection_name(name)
    assert caught.value.field == "collection"
    client = _raw_client(tmp_path / "raw")
    try:
        with pytest.raises(Exception):  # noqa: B017 - Chroma's error types vary by rule
            client.create_collection(name, embedding_function=None)
    finally:
        client.close()


def test_repository_methods_validate_the_collection_name(repo: ChromaVectorRepository) -> None:
    with pytest.raises(ConfigurationError, match="collection"):
        repo.search("a..b", embed("x"))
    with pytest.raises(ConfigurationError, match="collection"):
        repo.delete_document("x", "doc")


def test_chunk_ids_are_deterministic() -> None:
    assert chunk_id("report-7", 12) == "report-7:12"


# --- single writer per path ------------------------------------------------------------------

_OPEN_IN_SUBPROCESS = """
import sys
from docworkers.ingest.vector_store import ChromaVectorRepository
repo = ChromaVectorRepository.from_path(sys.argv[1])
repo.close()
print("opened")
"""


def _open_elsewhere(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _OPEN_IN_SUBPROCESS, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_second_process_cannot_write_the_same_path(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    first = ChromaVectorRepository.from_path(path)
    second = ChromaVectorRepository.from_path(path)  # same process: shares the lock
    try:
        store(first, "doc-a", ANIMALS[:2])
        assert second.count_document_chunks(COLLECTION, "doc-a") == 2

        blocked = _open_elsewhere(path)
        assert blocked.returncode != 0
        assert f"another process (pid {os.getpid()}) is writing {path.resolve()}" in (
            blocked.stderr
        )
        assert "DOCWORKERS_CHROMA_URL" in blocked.stderr

        first.close()  # the lock is shared: still held by `second`
        assert _open_elsewhere(path).returncode != 0
        assert second.count_document_chunks(COLLECTION, "doc-a") == 2
    finally:
        first.close()
        second.close()

    opened = _open_elsewhere(path)
    assert opened.returncode == 0, opened.stderr
    assert "opened" in opened.stdout
    assert (path / LOCK_FILENAME).exists()


# --- Chroma server ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `chroma run` on a free port; fails with its output if it does not start."""
    cli = Path(sys.executable).with_name("chroma")
    assert cli.exists(), f"no chroma CLI next to {sys.executable}: install chromadb"
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log = (data / "server.log").open("wb")
    process = subprocess.Popen(
        [str(cli), "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # as ChromaServer.start: a busy machine starts slowly
        while True:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                fail_to_start("chroma run", RuntimeError(
                    f"no heartbeat on {url} within 60 s (exit code {process.poll()})"),
                    data / "server.log")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_against_a_chroma_server(chroma_server: str) -> None:
    with ChromaVectorRepository.from_url(chroma_server) as repo:
        repo.ping()
        repo.delete_collection(COLLECTION)
        store(repo, "animals", ANIMALS, pages=[1, 2, 3, 4, 5], filename="animals.pdf")
        store(repo, "animals", ANIMALS[:2], filename="animals.pdf")
        store(repo, "planets", PLANETS)

        assert repo.document_chunk_ids(COLLECTION, "animals") == ["animals:0", "animals:1"]
        best = search(repo, "penguins swim in cold oceans", k=2)[0]
        assert (best.chunk_id, best.page_start, best.filename) == ("animals:1", 2, "animals.pdf")
        planets = SearchFilter.parse({"document_id": "planets"})
        assert {h.document_id for h in search(repo, "x y", where=planets)} == {"planets"}
        assert {c.name: c.count for c in repo.list_collections()}[COLLECTION] == 4
        with pytest.raises(ConfigurationError, match="use another collection"):
            repo.replace_document(COLLECTION, "bad", make_chunks(["x"]), np.ones((1, 3)), [{}])
        assert repo.delete_document(COLLECTION, "animals") == 2
        assert repo.delete_collection(COLLECTION) is True


def test_an_unreachable_server_is_a_retryable_error_naming_the_url() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(VectorStoreError, match=f"{url}.*chroma run") as caught:
        ChromaVectorRepository.from_url(url)
    assert caught.value.retryable


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://host:8000", "http:// or https://"),
        ("localhost:8000", "http:// or https://"),
        ("http://:8000", "no host"),
        ("http://host:8000/api", "no path"),
        ("http://user:secret@host:8000", "credentials"),
        ("http://host:99999", "invalid port"),
    ],
)
def test_bad_chroma_urls_are_configuration_errors(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as caught:
        ChromaVectorRepository.from_url(url)
    assert caught.value.field == "chroma_url"
    assert "secret" not in str(caught.value)


# --- helpers ---------------------------------------------------------------------------------


def _raw_client(path: Path) -> Any:
    """A plain Chroma client on ``path`` (typed Any: ClientAPI does not declare close()).

    Chroma shares one System per path and requires identical settings for every client on it.
    """
    return chromadb.PersistentClient(
        path=str(path), settings=Settings(anonymized_telemetry=False, allow_reset=False)
    )


class _RecordingCollection:
    def __init__(self, collection: Any, client: _RecordingClient) -> None:
        self._collection, self._client = collection, client

    def upsert(self, *, ids: list[str], **kwargs: Any) -> None:
        assert len(ids) <= self._client.max_batch
        self._client.upserts.append(len(ids))
        self._collection.upsert(ids=ids, **kwargs)

    def delete(self, *, ids: list[str]) -> None:
        assert len(ids) <= self._client.max_batch
        self._client.deletes.append(len(ids))
        self._collection.delete(ids=ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)


class _RecordingClient:
    """Wraps a real Chroma client: a smaller batch limit, and a record of write sizes."""

    def __init__(self, client: Any, *, max_batch: int) -> None:
        self._client, self.max_batch = client, max_batch
        self.upserts: list[int] = []
        self.deletes: list[int] = []

    def get_max_batch_size(self) -> int:
        return self.max_batch

    def get_or_create_collection(self, *args: Any, **kwargs: Any) -> _RecordingCollection:
        return _RecordingCollection(self._client.get_or_create_collection(*args, **kwargs), self)

    def get_collection(self, *args: Any, **kwargs: Any) -> _RecordingCollection:
        return _RecordingCollection(self._client.get_collection(*args, **kwargs), self)

    def close(self) -> None:
        pass  # the test closes the real client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
