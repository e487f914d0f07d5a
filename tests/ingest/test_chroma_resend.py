"""Chroma requests whose connection ends without a reply are sent again (chroma_resend.py):
through a TCP proxy in front of a real `chroma run` that reads a request and closes the
connection without answering, as a server does after a 413 or with an idle kept-alive one."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from server_start import start_chroma

from docworkers.errors import VectorStoreError
from docworkers.ingest.chroma_resend import RESENDS
from docworkers.ingest.chroma_server import ChromaServer
from docworkers.ingest.document import Chunk
from docworkers.ingest.vector_store import ChromaVectorRepository, chunk_id


class DroppingProxy:
    """Forwards connections to ``target``; while ``drops`` > 0, each piece a client sends (a
    request, or its first part) is read and the connection closed with no reply instead, one
    drop each: on a new connection and on a kept-alive one alike."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self._target = (host, int(port))
        self.drops = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(self._target) as server:
            threading.Thread(target=_pipe, args=(server, client), daemon=True).start()
            try:
                while data := client.recv(65536):
                    if self._drop():
                        return  # both closed without a reply
                    server.sendall(data)
            except OSError:
                return

    def _drop(self) -> bool:
        with self._lock:
            if self.drops <= 0:
                return False
            self.drops -= 1
            self.dropped += 1
            return True

    def close(self) -> None:
        self._listener.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[DroppingProxy]:
    server = ChromaServer(tmp_path / "chroma-server")
    forwarding = DroppingProxy(start_chroma(server))
    try:
        yield forwarding
    finally:
        forwarding.close()
        server.stop()


def _chunks(n: int) -> list[Chunk]:
    return [Chunk(index=i, text=f"chunk {i}", start_char=0, end_char=7, token_count=3)
            for i in range(n)]


def test_a_request_whose_connection_ends_without_a_reply_is_sent_again(
        proxy: DroppingProxy) -> None:
    vectors = ChromaVectorRepository.from_url(proxy.url)
    try:
        vectors.replace_document("resent", "doc", _chunks(3), np.ones((3, 384), dtype=np.float32),
                                 [{}] * 3)
        proxy.drops = RESENDS  # every try but the last meets a dropped connection
        vectors.replace_document("resent", "doc", _chunks(2), np.ones((2, 384), dtype=np.float32),
                                 [{}] * 2)
        assert proxy.dropped == RESENDS
        # Written once, the third chunk gone: as without drops.
        stored = vectors.document_chunk_ids("resent", "doc")
        assert stored == [chunk_id("doc", 0), chunk_id("doc", 1)]

        proxy.drops = 10 * RESENDS  # a connection that never answers is an outage, typed
        with pytest.raises(VectorStoreError, match="failed to write collection 'resent'"):
            vectors.replace_document("resent", "doc", _chunks(1),
                                     np.ones((1, 384), dtype=np.float32), [{}])
        assert proxy.dropped == 2 * RESENDS + 1  # sent RESENDS + 1 times, then given up
    finally:
        vectors.close()
