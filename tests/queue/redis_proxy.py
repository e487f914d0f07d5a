"""A TCP proxy in front of the test's Redis that misbehaves as a network can: it passes the
server's replies on a byte at a time (each byte its own read), holds them back, delays each, or
cuts every connection (the client sees the server close it).

It runs in the test's event loop (``start``, ``close``), or for a synchronous test in a loop of
its own thread (:func:`proxy_in_thread`). Every link closes both its connections as it ends,
awaited: a transport left to the garbage collector shows up as an "unclosed" warning, and so as
an error, in whichever test runs when it is collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from urllib.parse import urlsplit, urlunsplit


class RedisProxy:
    """Forwards ``target``'s connections; ``delay``: seconds each reply is held back."""

    def __init__(self, target: str, *, delay: float = 0.0) -> None:
        self._target = urlsplit(target)
        self.delay = delay
        self.bytewise = False
        self._passing = asyncio.Event()
        self._passing.set()
        self._links: set[asyncio.Task[None]] = set()
        self._streams: set[asyncio.StreamWriter] = set()  # both sides of every link
        self.accepted = 0  # connections made through the proxy
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen on a free loopback port; the target's URL through the proxy."""
        self._server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return urlunsplit(self._target._replace(netloc=f"127.0.0.1:{port}"))

    def hold(self) -> None:
        self._passing.clear()

    def release(self) -> None:
        self._passing.set()

    def cut(self) -> None:
        """Close every connection, both sides: each link then ends on its own."""
        for stream in self._streams:
            stream.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        await asyncio.gather(*self._links, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Never cancelled (asyncio's streams log a cancelled connection task as an error): a
        # cut closes the streams, which ends the pumps.
        self.accepted += 1
        link = asyncio.current_task()
        assert link is not None
        self._links.add(link)
        streams = [writer]
        self._streams.add(writer)
        pumps: list[asyncio.Task[None]] = []
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self._target.hostname, self._target.port)
            streams.append(up_writer)
            self._streams.add(up_writer)
            pumps = [asyncio.create_task(self._pump(reader, up_writer, replies=False)),
                     asyncio.create_task(self._pump(up_reader, writer, replies=True))]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for stream in streams:
                self._streams.discard(stream)
                stream.close()
                with contextlib.suppress(ConnectionError):
                    await stream.wait_closed()
            self._links.discard(link)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    replies: bool) -> None:
        while data := await reader.read(65536):
            if replies:
                await self._passing.wait()
                if self.delay:
                    await asyncio.sleep(self.delay)
            pieces = [data[i:i + 1] for i in range(len(data))] \
                if replies and self.bytewise else [data]
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                if len(pieces) > 1:
                    await asyncio.sleep(0.002)  # the client reads each byte on its own


@contextlib.contextmanager
def proxy_in_thread(proxy: RedisProxy) -> Iterator[str]:
    """Run ``proxy`` in an event loop of its own thread, for a synchronous client; yields its
    URL and closes it (every link with it) on exit."""
    loop = asyncio.new_event_loop()
    url: Future[str] = Future()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            url.set_result(loop.run_until_complete(proxy.start()))
            loop.run_forever()
            loop.run_until_complete(proxy.close())
        except BaseException as exc:  # start failed: the test hears of it
            if not url.done():
                url.set_exception(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield url.result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
