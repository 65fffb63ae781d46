"""Operator commands for the customer service.

    python -m app.cli admin-key     print a fresh API key of the bootstrap admin (created if missing)
"""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy import select

from billing_shared.contracts import CustomerCreated
from billing_shared.db import Database
from billing_shared.ids import new_id

from .db.models import ApiKey, Customer
from .domain.api_keys import generate_api_key
from .settings import Settings

BOOTSTRAP_ADMIN_EMAIL = "admin@billing.local"


async def issue_admin_key(settings: Settings) -> str:
    db = Database(settings.database_url, settings.schema, producer=settings.service_name, pool_size=1)
    try:
        async with db.uow() as uow:
            admin = await uow.session.scalar(
                select(Customer).where(Customer.email == BOOTSTRAP_ADMIN_EMAIL).with_for_update()
            )
            if admin is None:
                admin = Customer(id=new_id(), email=BOOTSTRAP_ADMIN_EMAIL, name="Bootstrap admin", role="admin")
                created_at = admin.stamp_change()
                uow.session.add(admin)
                await uow.session.flush()
                uow.emit(
                    CustomerCreated(customer_id=admin.id, email=admin.email, name=admin.name, role="admin"),
                    occurred_at=created_at,
                )
            new_key = generate_api_key(settings.api_key_prefix)
            uow.session.add(ApiKey(customer_id=admin.id, prefix=new_key.prefix, key_hash=new_key.key_hash, name="cli"))
            await uow.commit()
            return new_key.key
    finally:
        await db.dispose()


def main(argv: list[str]) -> int:
    if argv != ["admin-key"]:
        print(__doc__, file=sys.stderr)
        return 2
    print(asyncio.run(issue_admin_key(Settings())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
