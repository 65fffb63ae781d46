"""What the API, the handlers and the reconciler share: settings, database, gateway, idempotency keys.

Wired once in `main.create_app`; the database exists once the service app is built and the gateway's
HTTP client once the app has started (so it lives, and is closed, on the running event loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from billing_shared.db import Database
from billing_shared.idempotency import IdempotencyKeys

from .adapters.gateway import PaymentGateway
from .settings import Settings


@dataclass
class PaymentContext:
    settings: Settings
    _db: Database | None = field(default=None, repr=False)
    _gateway: PaymentGateway | None = field(default=None, repr=False)
    _keys: IdempotencyKeys | None = field(default=None, repr=False)

    def bind_database(self, db: Database) -> None:
        self._db = db
        self._keys = IdempotencyKeys(db)

    def bind_gateway(self, gateway: PaymentGateway | None) -> None:
        self._gateway = gateway

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("payment context has no database yet")
        return self._db

    @property
    def keys(self) -> IdempotencyKeys:
        if self._keys is None:
            raise RuntimeError("payment context has no database yet")
        return self._keys

    @property
    def has_gateway(self) -> bool:
        return self._gateway is not None

    @property
    def gateway(self) -> PaymentGateway:
        if self._gateway is None:
            raise RuntimeError("payment gateway not started (the app's lifespan starts it)")
        return self._gateway
