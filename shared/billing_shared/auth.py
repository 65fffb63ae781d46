"""Bearer tokens: short-lived Ed25519-signed JWTs issued by the customer service, verified everywhere.

Every service verifies tokens itself with the public key; no service trusts an identity header a
client could forge. The algorithm is pinned (EdDSA), and iss, aud and exp are required and checked.

    python -m billing_shared.auth keygen DIR [PUBLIC_DIR]
        write jwt_private.pem into DIR and jwt_public.pem into PUBLIC_DIR (default DIR), if either is missing
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from . import clock
from .errors import ApiError, not_found

ALGORITHM = "EdDSA"
Role = Literal["admin", "user"]


@dataclass(frozen=True)
class Principal:
    customer_id: uuid.UUID
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can_see(self, customer_id: uuid.UUID | None) -> bool:
        return self.is_admin or (customer_id is not None and customer_id == self.customer_id)

    def customer_to_list(self, asked: uuid.UUID | None) -> uuid.UUID | None:
        """The customer whose objects a list shows: the one an admin asks for (None: every customer's), a user's
        own. A user asking for another customer's gets 404 `customer`, as for reading it: it learns nothing."""
        if self.is_admin:
            return asked
        if asked is not None and asked != self.customer_id:
            raise not_found("customer")
        return self.customer_id


def generate_keypair() -> tuple[str, str]:
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def write_keypair(directory: Path, public_directory: Path | None = None) -> tuple[Path, Path]:
    """Write jwt_private.pem into `directory` and jwt_public.pem beside it, or into `public_directory`: apart,
    only the token issuer is given the private key's folder; every other service reads the public one."""
    public_directory = public_directory or directory
    for folder in {directory, public_directory}:
        folder.mkdir(parents=True, exist_ok=True)
    private, public = directory / "jwt_private.pem", public_directory / "jwt_public.pem"
    if not private.exists() or not public.exists():
        private_pem, public_pem = generate_keypair()
        private.write_text(private_pem)
        private.chmod(0o600)
        public.write_text(public_pem)
    return private, public


def issue_token(
    private_key_pem: str,
    *,
    customer_id: uuid.UUID,
    role: Role,
    issuer: str,
    audience: str,
    ttl: timedelta,
) -> str:
    issued = clock.wall_now()  # token lifetimes are real time, whatever a simulated business clock says
    claims = {
        "sub": str(customer_id),
        "customer_id": str(customer_id),
        "role": role,
        "iss": issuer,
        "aud": audience,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, private_key_pem, algorithm=ALGORITHM)


class TokenVerifier:
    """Checks signature, algorithm, issuer, audience and expiry; remembers tokens it already checked
    (until they expire), since a client sends the same token with every request for its lifetime."""

    CACHE_SIZE = 10_000

    def __init__(self, public_key_pem: str, issuer: str, audience: str):
        self._key = serialization.load_pem_public_key(public_key_pem.encode())
        self.issuer = issuer
        self.audience = audience
        self._verified: dict[str, tuple[Principal, float]] = {}

    def verify(self, token: str) -> Principal:
        hit = self._verified.get(token)
        if hit is not None:
            principal, expires = hit
            if clock.wall_now().timestamp() < expires:
                return principal
            del self._verified[token]
        principal, expires = self._decode(token)
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (principal, expires)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iss", "aud", "customer_id", "role"]},
            )
            role = claims["role"]
            if role not in ("admin", "user"):
                raise jwt.InvalidTokenError("unknown role")
            return Principal(customer_id=uuid.UUID(claims["customer_id"]), role=role), float(claims["exp"])
        except (jwt.PyJWTError, ValueError, TypeError, AttributeError) as exc:  # also claims of the wrong type
            raise unauthorized(f"invalid token: {exc}") from None


def unauthorized(message: str = "authentication required") -> ApiError:
    return ApiError(401, "unauthorized", message)


_bearer = HTTPBearer(auto_error=False, description="A JWT from POST /api/auth/token")


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized()
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier.verify(credentials.credentials)


async def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "admin role required")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
AdminPrincipal = Annotated[Principal, Depends(admin_principal)]


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[0] != "keygen":
        print(__doc__)
        return 2
    private, public = write_keypair(*(Path(arg) for arg in argv[1:]))
    print(f"private key in {private.parent}, public key in {public.parent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
