"""The invoice for people: an HTML page and a PDF from the same template, behind a token or a signed link."""

from __future__ import annotations

import io
import uuid
from urllib.parse import urlsplit

from pypdf import PdfReader


def local(url: str) -> str:
    """A link the API hands out (on the public base URL), as a path for the test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def an_invoice(billing) -> dict:
    customer_id = await billing.customer("Émilie du Châtelet")
    _, invoice = await billing.subscribe(customer_id=customer_id, amount=123456)
    return invoice


async def test_the_html_page_shows_number_customer_and_total(billing, client, service_env):
    invoice = await an_invoice(billing)

    page = await client.get(f"/invoices/{invoice['id']}", headers=service_env.auth(invoice["customer_id"]))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "private, no-store"
    assert invoice["number"] in page.text
    assert "Émilie du Châtelet" in page.text
    assert "$1,234.56" in page.text


async def test_the_pdf_opens_and_holds_number_customer_and_total(billing, client, service_env):
    invoice = await an_invoice(billing)

    response = await client.get(f"/api/invoices/{invoice['id']}.pdf", headers=service_env.auth(invoice["customer_id"]))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert invoice["number"] in text
    assert "Émilie du Châtelet" in text
    assert "$1,234.56" in text


async def test_a_pdf_is_rendered_once_per_version_and_again_once_paid(billing, client, service_env, app):
    invoice = await an_invoice(billing)
    path, headers = f"/api/invoices/{invoice['id']}.pdf", service_env.auth(invoice["customer_id"])
    renders = app.state.pdfs.renders

    first = await client.get(path, headers=headers)
    again = await client.get(path, headers=headers)  # e.g. the customer opening the emailed invoice
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert app.state.pdfs.renders == renders + 1

    await billing.pay(invoice)
    await billing.invoice_when(invoice["id"], lambda inv: inv["status"] == "paid")
    paid = await client.get(path, headers=headers)
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(paid.content)).pages)
    assert "paid" in text and "open" not in text
    assert app.state.pdfs.renders == renders + 2


async def test_signed_links_from_the_api_open_the_page_and_pdf_without_a_login(billing, client):
    invoice = await an_invoice(billing)

    assert invoice["html_url"].startswith("http://localhost:8080/invoices/")
    page = await client.get(local(invoice["html_url"]))
    assert page.status_code == 200 and invoice["number"] in page.text
    pdf = await client.get(local(invoice["pdf_url"]))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


async def test_a_signed_link_opens_only_its_own_invoice_and_cannot_be_forged(billing, client):
    mine, theirs = await an_invoice(billing), await an_invoice(billing)
    sig = urlsplit(mine["html_url"]).query.removeprefix("sig=")
    expires, _, mac = sig.partition(".")

    assert (await client.get(f"/invoices/{theirs['id']}", params={"sig": sig})).status_code == 401
    assert (await client.get(f"/api/invoices/{theirs['id']}.pdf", params={"sig": sig})).status_code == 401
    longer = f"{int(expires) + 3600}.{mac}"
    assert (await client.get(f"/invoices/{mine['id']}", params={"sig": longer})).status_code == 401
    expired = await client.get(f"/invoices/{mine['id']}", params={"sig": f"1.{mac}"})
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "invalid_link"


async def test_another_customer_gets_404_for_the_json_the_page_and_the_pdf(billing, client, service_env):
    invoice = await an_invoice(billing)
    stranger = service_env.auth(uuid.uuid4())

    for path in (f"/api/invoices/{invoice['id']}", f"/invoices/{invoice['id']}", f"/api/invoices/{invoice['id']}.pdf"):
        response = await client.get(path, headers=stranger)
        assert response.status_code == 404, path
    admin_pdf = await client.get(f"/api/invoices/{invoice['id']}.pdf", headers=billing.admin)
    assert admin_pdf.status_code == 200


async def test_pages_need_a_token_or_a_link_and_a_well_formed_id(client, admin_headers):
    assert (await client.get(f"/invoices/{uuid.uuid4()}")).status_code == 401
    assert (await client.get(f"/api/invoices/{uuid.uuid4()}.pdf")).status_code == 401
    assert (await client.get(f"/invoices/{uuid.uuid4()}", headers=admin_headers)).status_code == 404
    assert (await client.get(f"/api/invoices/{uuid.uuid4()}.pdf", headers=admin_headers)).status_code == 404
    malformed = await client.get("/api/invoices/nope.pdf", headers=admin_headers)
    assert malformed.status_code == 422 and malformed.json()["error"]["field"] == "invoice_id"
