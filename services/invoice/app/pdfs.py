"""Invoice PDFs for the pages API: rendered on a few dedicated threads, remembered in a small LRU cache.

The cache key is the InvoiceView itself (frozen, hashable): everything the PDF shows, so any change to the
invoice, its lines, credit notes, payments or bill-to makes a new key and a fresh render; nothing is invalidated.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .rendering import InvoiceView, render_invoice_pdf

# A weasyprint FontConfiguration owns a Pango font map and plain-dict caches that rendering mutates; neither
# is documented as safe to share between threads, so each render thread keeps its own, for its whole life.
_thread_fonts = threading.local()


def _render_on_this_thread(view: InvoiceView) -> bytes:
    font_config = getattr(_thread_fonts, "config", None)
    if font_config is None:
        from weasyprint.text.fonts import FontConfiguration

        font_config = _thread_fonts.config = FontConfiguration()
    return render_invoice_pdf(view, font_config)


class PdfRenderer:
    """At most `workers` renders at once (WeasyPrint is CPU- and memory-hungry); the last `cache_size` kept.

    Touched only from the event loop (the executor's results come back to it), so no lock is needed.
    """

    def __init__(self, workers: int, cache_size: int) -> None:
        self.workers = workers
        self.cache_size = cache_size
        self.renders = 0
        self._executor: ThreadPoolExecutor | None = None
        self._cache: OrderedDict[InvoiceView, bytes] = OrderedDict()
        self._rendering: dict[InvoiceView, asyncio.Future[bytes]] = {}

    async def pdf(self, view: InvoiceView) -> bytes:
        cached = self._cache.get(view)
        if cached is not None:
            self._cache.move_to_end(view)
            return cached
        pending = self._rendering.get(view)
        if pending is None:  # the same view asked for twice at once renders once
            pending = asyncio.get_running_loop().run_in_executor(self._pool(), _render_on_this_thread, view)
            self._rendering[view] = pending
            self.renders += 1
            pending.add_done_callback(lambda done: self._settle(view, done))
        # Shielded: a client hanging up does not throw away a render that is already running.
        return await asyncio.shield(pending)

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        self._cache.clear()

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="invoice-pdf")
        return self._executor

    def _settle(self, view: InvoiceView, done: asyncio.Future[Any]) -> None:
        self._rendering.pop(view, None)
        if done.cancelled() or done.exception() is not None or self.cache_size == 0:
            return
        self._cache[view] = done.result()
        self._cache.move_to_end(view)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
