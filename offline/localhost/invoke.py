"""Calling handlers as the Python worker does.

Plain functions run on the calling thread (the worker uses a thread pool); ``async def`` ones all run on
one event loop, as in the worker, so async clients a handler keeps between calls stay on their loop.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any

from offline.localhost.metadata import Handler


class Invoker:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="localhost-async", daemon=True)
        self._loop = loop
        self._thread.start()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        if not thread.is_alive():
            loop.close()

    def __call__(self, handler: Handler, argument_name: str, argument: object) -> Any:
        result = handler(**{argument_name: argument})
        if not inspect.iscoroutine(result):
            return result
        if self._loop is None:
            result.close()
            raise RuntimeError("the local host is not running")
        return asyncio.run_coroutine_threadsafe(result, self._loop).result()
