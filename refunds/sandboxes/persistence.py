"""Coalesced state-file writes for the sandboxes: many changes a moment, one write.

Writing the whole state after every change made the sandbox's event loop O(n) per request and
stalled webhook delivery under load; a short delay batches them, and shutdown flushes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class CoalescedWriter:
    def __init__(self, write: Callable[[], None], delay: float = 0.2) -> None:
        self._write = write
        self._delay = delay
        self._pending: asyncio.TimerHandle | None = None
        # Off until a server's lifespan turns it on (and flushes at shutdown): used directly,
        # every change is on disk at once.
        self.coalescing = False

    def request(self) -> None:
        """Write soon while a server runs, else now."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or not self.coalescing:
            self.flush()
            return
        if self._pending is None:
            self._pending = loop.call_later(self._delay, self.flush)

    def flush(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._write()
