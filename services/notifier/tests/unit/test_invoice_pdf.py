"""The invoice PDF client: one token exchange, reused; a failure means no attachment, never an exception."""

from __future__ import annotations

import uuid

import httpx

from app.invoice_pdf import InvoicePdfClient

PDF = b"%PDF-1.7 fake"


class FakeInvoiceService:
    def __init__(self, pdf_status: int = 200, body: bytes = PDF, token_status: int = 200) -> None:
        self.pdf_status, self.body, self.token_status = pdf_status, body, token_status
        self.exchanges = 0
        self.revoked: set[str] = set()
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/api/auth/token":
            assert request.headers["Authorization"] == "Bearer bk_key"
            if self.token_status != 200:
                return httpx.Response(self.token_status, json={"error": {"code": "unauthorized"}})
            self.exchanges += 1
            return httpx.Response(200, json={"access_token": f"t{self.exchanges}", "expires_in": 900})
        if "sig" in request.url.params:  # a signed link opens the PDF without a token
            return httpx.Response(self.pdf_status, content=self.body, headers={"content-type": "application/pdf"})
        token = request.headers["Authorization"].removeprefix("Bearer ")
        if token in self.revoked:
            return httpx.Response(401, json={"error": {"code": "unauthorized"}})
        return httpx.Response(self.pdf_status, content=self.body, headers={"content-type": "application/pdf"})


def client(service: FakeInvoiceService) -> InvoicePdfClient:
    return InvoicePdfClient("http://invoice.test/", "bk_key", transport=httpx.MockTransport(service))


async def test_the_pdf_is_fetched_with_an_access_token_exchanged_once() -> None:
    service = FakeInvoiceService()
    pdfs = client(service)
    invoice_id = uuid.uuid4()

    assert await pdfs.fetch(invoice_id) == PDF
    assert await pdfs.fetch(uuid.uuid4()) == PDF

    assert service.exchanges == 1
    assert service.requests[1].url.path == f"/api/invoices/{invoice_id}.pdf"
    assert service.requests[1].headers["Authorization"] == "Bearer t1"


async def test_a_token_refused_later_is_exchanged_again_once() -> None:
    service = FakeInvoiceService()
    pdfs = client(service)
    await pdfs.fetch(uuid.uuid4())
    service.revoked.add("t1")

    assert await pdfs.fetch(uuid.uuid4()) == PDF
    assert service.exchanges == 2


async def test_a_missing_pdf_is_none() -> None:
    assert await client(FakeInvoiceService(pdf_status=404)).fetch(uuid.uuid4()) is None


async def test_a_refused_api_key_is_none() -> None:
    assert await client(FakeInvoiceService(token_status=401)).fetch(uuid.uuid4()) is None


async def test_something_that_is_not_a_pdf_is_none() -> None:
    assert await client(FakeInvoiceService(body=b"<html>login</html>")).fetch(uuid.uuid4()) is None


async def test_an_unreachable_invoice_service_is_none() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    pdfs = InvoicePdfClient("http://invoice.test", "bk_key", transport=httpx.MockTransport(refuse))

    assert await pdfs.fetch(uuid.uuid4()) is None


async def test_a_signed_link_fetches_the_pdf_through_the_configured_host_without_any_credential() -> None:
    service = FakeInvoiceService()
    pdfs = InvoicePdfClient("http://gateway.internal:8080", transport=httpx.MockTransport(service))
    invoice_id = uuid.uuid4()
    link = f"http://billing.example.com/api/invoices/{invoice_id}.pdf?sig=1893456000.mac"

    assert await pdfs.fetch(invoice_id, link) == PDF

    assert service.exchanges == 0
    [request] = service.requests
    assert (request.url.host, request.url.path) == ("gateway.internal", f"/api/invoices/{invoice_id}.pdf")
    assert request.url.params["sig"] == "1893456000.mac" and "Authorization" not in request.headers


async def test_without_a_signed_link_or_a_key_nothing_is_fetched() -> None:
    service = FakeInvoiceService()
    pdfs = InvoicePdfClient("http://gateway.internal:8080", transport=httpx.MockTransport(service))

    assert await pdfs.fetch(uuid.uuid4()) is None
    assert service.requests == []
