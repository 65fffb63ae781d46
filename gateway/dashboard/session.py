"""The session cookie (signed, HttpOnly, SameSite=Strict) and the session-bound CSRF token.

The session cookie, written on sign-in, holds a random nonce and the admin's access token; the sign-in
form's own cookie holds a nonce only. The CSRF token every form carries is an HMAC of its cookie's nonce,
so it cannot be forged without the server's secret and it changes on every sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE_NAME = "dashboard_session"
COOKIE_PATH = "/dashboard"
# The sign-in form's nonce lives apart from the session: a SameSite=Strict cookie is not sent when a link
# from another site opens the dashboard, and answering that visit must not overwrite a signed-in session.
LOGIN_COOKIE_NAME = "dashboard_login"
LOGIN_COOKIE_PATH = "/dashboard/login"
# An upper bound only: a signed-in session ends when its access token expires, which is much sooner.
MAX_AGE_S = 12 * 3600


@dataclass(frozen=True)
class Session:
    nonce: str
    token: str | None = None

    @classmethod
    def new(cls, token: str | None = None) -> "Session":
        return cls(nonce=secrets.token_urlsafe(24), token=token)


class SessionCodec:
    """Signs sessions into cookie values and back; a tampered or stale cookie reads as no session."""

    def __init__(self, secret: str):
        self._secret = secret.encode()
        self._serializer = URLSafeTimedSerializer(secret, salt="billing-dashboard-session")

    def dumps(self, session: Session) -> str:
        return self._serializer.dumps({"n": session.nonce, "t": session.token})

    def loads(self, value: str | None) -> Session | None:
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=MAX_AGE_S)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("n"), str):
            return None
        token = data.get("t")
        return Session(nonce=data["n"], token=token if isinstance(token, str) else None)

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._secret, f"csrf:{session.nonce}".encode(), hashlib.sha256).hexdigest()

    def csrf_valid(self, session: Session | None, submitted: str | None) -> bool:
        if session is None or not submitted:
            return False
        return hmac.compare_digest(self.csrf_token(session), submitted)
