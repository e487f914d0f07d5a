"""The read side of :class:`~docworkers.ingest.vector_store.ChromaVectorRepository` (chunks of a
document, search, collections, ping), with what reads and writes share: the cache of collection
handles and the translation of Chroma's failures. Reads take no mutex: they run concurrently with
writes."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.api.types import GetResult, Include, QueryResult
from chromadb.errors import NotFoundError

from docworkers.ingest.chroma_client import check_cosine
from docworkers.ingest.chroma_errors import translate_errors
from docworkers.ingest.chroma_queries import (
    chroma_where,
    document_filter,
    id_order,
    search_hits,
    stored_chunks,
)
from docworkers.ingest.chroma_writes import check_document_id
from docworkers.ingest.search_filters import SearchFilter
from docworkers.ingest.vector_repository import (
    CollectionInfo,
    SearchHit,
    validate_collection_name,
)


class ChromaReads:
    """Reads of a Chroma client, mixed into ChromaVectorRepository (whose constructor sets the
    attributes declared here)."""

    _client: ClientAPI
    _location: str  # "path /x/y" or "http://host:port", for error messages
    _hint: str  # what to check when Chroma fails
    _collections: dict[str, Collection]
    _collections_mutex: threading.Lock
    _closed: bool

    # -- reads --------------------------------------------------------------------------------

    def count_document_chunks(self, collection: str, document_id: str) -> int:
        return len(self.document_chunk_ids(collection, document_id))

    def _stored(self, collection: str, document_id: str,
                include: Include) -> GetResult | None:
        """Chroma's ``get`` of ``document_id``'s chunks (ids and ``include``), None when the
        collection does not exist."""
        validate_collection_name(collection)
        check_document_id(document_id)
        with self._translate("read", collection, document_id):
            target = self._collection(collection, create=False)
            if target is None:
                return None
            return target.get(where=document_filter(document_id), include=include)

    def document_chunk_ids(self, collection: str, document_id: str) -> list[str]:
        """Ids of the stored chunks of ``document_id``, in chunk order."""
        found = self._stored(collection, document_id, [])
        return [] if found is None else sorted(found["ids"], key=id_order)

    def document_chunks(
        self, collection: str, document_id: str
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """``(id, text, metadata)`` of every stored chunk of ``document_id``, in chunk order
        (an empty list if the collection or the document does not exist)."""
        found = self._stored(collection, document_id, ["documents", "metadatas"])
        if found is None:
            return []
        return sorted(stored_chunks(found), key=lambda chunk: id_order(chunk[0]))

    def chunks_by_ids(
        self, collection: str, ids: Sequence[str], where: SearchFilter | None = None
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """``(id, text, metadata)`` of the stored chunks among ``ids`` that ``where`` matches,
        in the order of ``ids`` (the keyword side of a search finds ids; their text and
        metadata live here, and so does the filter language)."""
        validate_collection_name(collection)
        if not ids:  # Chroma reads an empty id list as "every chunk"
            return []
        with self._translate("read", collection):
            target = self._collection(collection, create=False)
            if target is None:
                return []
            found = target.get(ids=list(dict.fromkeys(ids)), where=chroma_where(where),
                               include=["documents", "metadatas"])
        stored = {chunk[0]: chunk for chunk in stored_chunks(found)}
        return [stored[id_] for id_ in dict.fromkeys(ids) if id_ in stored]

    def similarities(self, collection: str, ids: Sequence[str], query_embedding: np.ndarray,
                     where: SearchFilter | None = None) -> dict[str, float]:
        """Cosine similarity of ``query_embedding`` to each stored chunk among ``ids`` that
        ``where`` matches (the score a dense search gives): hybrid search compares the keyword
        side's candidates by meaning too. Reads the embeddings only."""
        validate_collection_name(collection)
        if not ids:
            return {}
        with self._translate("read", collection):
            target = self._collection(collection, create=False)
            if target is None:
                return {}
            found = target.get(ids=list(dict.fromkeys(ids)), where=chroma_where(where),
                               include=["embeddings"])
        if not len(found["ids"]):
            return {}
        vectors = np.asarray(found["embeddings"], dtype=np.float32)
        query = np.asarray(query_embedding, dtype=np.float32).reshape(-1)
        norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(query)
        cosine = vectors @ query / np.where(norms > 0, norms, 1.0)
        return {id_: float(value) for id_, value in zip(found["ids"], cosine, strict=True)}

    def nearest(self, collection: str, query_embedding: np.ndarray, k: int,
                where: SearchFilter | None = None) -> list[tuple[str, float]]:
        """The ``k`` nearest chunks' ids and cosine similarities, best first (no texts)."""
        result = self._query(collection, query_embedding, k, where, ["distances"])
        if result is None:
            return []
        distances = (result["distances"] or [[]])[0]
        return [(id_, 1.0 - float(distance))
                for id_, distance in zip(result["ids"][0], distances, strict=True)]

    def search(
        self,
        collection: str,
        query_embedding: np.ndarray,
        k: int = 5,
        where: SearchFilter | None = None,
    ) -> list[SearchHit]:
        """The ``k`` chunks most similar to ``query_embedding`` (an empty list if the
        collection does not exist yet), among those ``where`` matches."""
        result = self._query(collection, query_embedding, k, where,
                             ["documents", "metadatas", "distances"])
        return [] if result is None else search_hits(result)

    def _query(self, collection: str, query_embedding: np.ndarray, k: int,
               where: SearchFilter | None, include: Include) -> QueryResult | None:
        """Chroma's nearest-neighbour query (None when the collection does not exist)."""
        validate_collection_name(collection)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        vector = np.asarray(query_embedding, dtype=np.float32)
        if vector.ndim == 2 and vector.shape[0] == 1:
            vector = vector[0]
        if vector.ndim != 1 or not np.isfinite(vector).all():
            raise ValueError(f"query_embedding must be one finite vector, got shape {vector.shape}")
        with self._translate("search", collection):
            target = self._collection(collection, create=False)
            if target is None:
                return None
            return target.query(query_embeddings=vector[np.newaxis, :], n_results=k,
                                where=chroma_where(where), include=include)

    def list_collections(self) -> list[CollectionInfo]:
        with self._translate("list collections in"):
            collections = self._client.list_collections()
            infos = [
                CollectionInfo(name=c.name, count=c.count(), metadata=dict(c.metadata or {}))
                for c in collections
            ]
        return sorted(infos, key=lambda info: info.name)

    def ping(self) -> None:
        """Raise VectorStoreError unless Chroma answers."""
        with self._translate("reach"):
            self._client.heartbeat()

    # -- shared internals ---------------------------------------------------------------------

    def _translate(
        self, action: str, collection: str | None = None, document_id: str | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """Chroma's failures as docworkers errors (see :func:`translate_errors`)."""
        return translate_errors(
            action, collection, document_id, location=self._location, hint=self._hint,
            closed=self._closed, forget=self._forget,
        )

    def _collection(self, name: str, *, create: bool) -> Collection | None:
        with self._collections_mutex:
            cached = self._collections.get(name)
        if cached is not None:
            return cached
        if create:
            collection = self._client.get_or_create_collection(
                name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
            )
        else:
            try:
                collection = self._client.get_collection(name, embedding_function=None)
            except NotFoundError:
                return None
        check_cosine(collection, self._location)
        with self._collections_mutex:
            self._collections[name] = collection
        return collection

    def _collection_exists(self, name: str) -> bool:
        return self._collection(name, create=False) is not None

    def _forget(self, name: str) -> None:
        with self._collections_mutex:
            self._collections.pop(name, None)
