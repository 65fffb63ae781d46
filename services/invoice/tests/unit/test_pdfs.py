"""The PDF renderer: each version of an invoice is rendered once, a few at a time, each thread with its own fonts."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from typing import Any

import pytest

from app import pdfs
from app.domain.states import InvoiceStatus
from app.pdfs import PdfRenderer
from tests.unit.test_rendering import make_view


class CountingRender:
    """Stands in for WeasyPrint: slow enough to overlap, and records threads, fonts and concurrency."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.calls: list[tuple[int, int]] = []  # (thread id, id of the font configuration it was given)
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self, view: Any, font_config: Any) -> bytes:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.calls.append((threading.get_ident(), id(font_config)))
        time.sleep(self.seconds)
        with self._lock:
            self.running -= 1
        return f"%PDF {view.number} {view.status} {view.amount_paid}".encode()


@pytest.fixture
def render(monkeypatch: pytest.MonkeyPatch) -> CountingRender:
    fake = CountingRender(seconds=0.02)
    monkeypatch.setattr(pdfs, "render_invoice_pdf", fake)
    return fake


@pytest.fixture
def renderer() -> Any:
    renderer = PdfRenderer(workers=2, cache_size=3)
    yield renderer
    renderer.close()


async def test_the_same_invoice_version_is_rendered_once(render: CountingRender, renderer: PdfRenderer) -> None:
    first = await renderer.pdf(make_view())
    again = await renderer.pdf(make_view())  # an equal view, built anew by the next request

    assert again == first
    assert len(render.calls) == 1


async def test_anything_shown_changing_renders_a_new_pdf(render: CountingRender, renderer: PdfRenderer) -> None:
    open_pdf = await renderer.pdf(make_view())
    paid_pdf = await renderer.pdf(make_view(status=InvoiceStatus.PAID, amount_paid=4999, amount_due=0))
    renamed_pdf = await renderer.pdf(make_view(customer_name="Ada King"))

    assert len({open_pdf, paid_pdf}) == 2
    assert len(render.calls) == 3
    assert renamed_pdf.startswith(b"%PDF")


async def test_concurrent_requests_for_one_version_share_one_render(
    render: CountingRender, renderer: PdfRenderer
) -> None:
    results = await asyncio.gather(*(renderer.pdf(make_view()) for _ in range(5)))

    assert len(set(results)) == 1
    assert len(render.calls) == 1


async def test_no_more_than_the_worker_count_render_at_once(render: CountingRender, renderer: PdfRenderer) -> None:
    await asyncio.gather(*(renderer.pdf(make_view(number=f"INV-{n}")) for n in range(8)))

    assert render.most_at_once == 2
    # Each render thread reuses its own font configuration; no configuration is shared between threads.
    fonts_by_thread: dict[int, set[int]] = {}
    for thread, fonts in render.calls:
        fonts_by_thread.setdefault(thread, set()).add(fonts)
    assert len(fonts_by_thread) <= 2
    assert all(len(fonts) == 1 for fonts in fonts_by_thread.values())
    assert len(set().union(*fonts_by_thread.values())) == len(fonts_by_thread)


async def test_the_least_recently_used_pdf_is_dropped(render: CountingRender, renderer: PdfRenderer) -> None:
    views = [make_view(number=f"INV-{n}") for n in range(4)]
    for view in views[:3]:
        await renderer.pdf(view)
    await renderer.pdf(views[0])  # used again: now the most recent
    await renderer.pdf(views[3])  # over the size of 3: INV-1 goes

    await renderer.pdf(views[0])
    assert len(render.calls) == 4
    await renderer.pdf(views[1])
    assert len(render.calls) == 5


async def test_a_failed_render_is_not_remembered(monkeypatch: pytest.MonkeyPatch, renderer: PdfRenderer) -> None:
    attempts = []

    def broken(view: Any, font_config: Any) -> bytes:
        attempts.append(view)
        raise RuntimeError("pango fell over")

    monkeypatch.setattr(pdfs, "render_invoice_pdf", broken)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await renderer.pdf(make_view())
    assert len(attempts) == 2


def test_views_of_one_version_are_equal_keys() -> None:
    assert hash(make_view()) == hash(make_view())
    assert make_view() != replace(make_view(), amount_paid=1)
