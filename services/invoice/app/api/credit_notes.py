"""Credit notes: read and list (a user sees only their own)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from billing_shared.auth import CurrentPrincipal
from billing_shared.errors import not_found
from billing_shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, fetch_page

from ..db.models import CreditNote
from .deps import DatabaseDep
from .schemas import CreditNoteOut, CreditNotePage

router = APIRouter(prefix="/api/credit_notes", tags=["credit notes"])


@router.get("", response_model=CreditNotePage, summary="List credit notes")
async def list_credit_notes(
    principal: CurrentPrincipal,
    db: DatabaseDep,
    invoice_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> CreditNotePage:
    customer_id = principal.customer_to_list(customer_id)
    stmt = select(CreditNote)
    if customer_id is not None:
        stmt = stmt.where(CreditNote.customer_id == customer_id)
    if invoice_id is not None:
        stmt = stmt.where(CreditNote.invoice_id == invoice_id)
    async with db.reads() as session:
        rows, next_cursor = await fetch_page(session, stmt, CreditNote.id, cursor, limit)
    return CreditNotePage(
        data=[CreditNoteOut.model_validate(r) for r in rows], has_more=next_cursor is not None, next_cursor=next_cursor
    )


@router.get("/{credit_note_id}", response_model=CreditNoteOut, summary="Read a credit note")
async def read_credit_note(credit_note_id: uuid.UUID, principal: CurrentPrincipal, db: DatabaseDep) -> CreditNoteOut:
    async with db.reads() as session:
        note = await session.get(CreditNote, credit_note_id)
    if note is None:
        raise not_found("credit note")
    if not principal.can_see(note.customer_id):
        raise not_found("credit note")
    return CreditNoteOut.model_validate(note)
