"""Who may see a page: the signed-in admin's session, checked on every request, and CSRF on every POST."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from billing_shared.auth import Principal, TokenVerifier
from billing_shared.errors import ApiError
from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.responses import Response

from .session import COOKIE_NAME, COOKIE_PATH, LOGIN_COOKIE_NAME, LOGIN_COOKIE_PATH, Session, SessionCodec
from .settings import DashboardSettings
from .upstream import ApiClient

PREFIX = "/dashboard"


@dataclass
class DashboardState:
    """Everything a request handler needs, built once by create_app."""

    settings: DashboardSettings
    api: ApiClient
    codec: SessionCodec
    verifier: TokenVerifier
    templates: Jinja2Templates


class LoginRequired(Exception):
    """No valid signed-in session: the visitor is sent to the sign-in page (with a reason, if any)."""

    def __init__(self, next_path: str | None = None, reason: str | None = None):
        self.next_path = next_path
        self.reason = reason


class Forbidden(Exception):
    """Signed in, but not allowed: a non-admin token, or a form without a valid CSRF token."""

    def __init__(self, message: str):
        self.message = message


@dataclass(frozen=True)
class AdminSession:
    session: Session
    token: str
    principal: Principal
    csrf: str


def state_of(request: Request) -> DashboardState:
    return request.app.state.dashboard


def read_session(request: Request) -> Session | None:
    return state_of(request).codec.loads(request.cookies.get(COOKIE_NAME))


def read_login_session(request: Request) -> Session | None:
    """The anonymous session of the sign-in form: only its nonce, which the form's CSRF token is bound to."""
    session = state_of(request).codec.loads(request.cookies.get(LOGIN_COOKIE_NAME))
    return session if session is not None and session.token is None else None


def path_and_query(request: Request) -> str:
    """Where the request was going, to come back to after signing in."""
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def safe_next(path: str | None) -> str:
    """Only a path inside the dashboard may follow sign-in, never another site (no open redirect)."""
    if path and path.startswith(PREFIX) and not path.startswith("//") and "\\" not in path:
        rest = path[len(PREFIX) :]
        if rest == "" or rest[0] in "/?":
            return path
    return PREFIX


def login_url(next_path: str | None = None, reason: str | None = None) -> str:
    query = []
    if next_path and safe_next(next_path) != PREFIX:
        query.append(f"next={quote(next_path, safe='')}")
    if reason:
        query.append(f"reason={quote(reason, safe='')}")
    return f"{PREFIX}/login" + (f"?{'&'.join(query)}" if query else "")


def set_session_cookie(response: Response, state: DashboardState, session: Session) -> None:
    # No Max-Age: a browser session; the access token inside expires long before the signature does.
    _set_cookie(response, state, COOKIE_NAME, COOKIE_PATH, state.codec.dumps(session))


def clear_session_cookie(response: Response, state: DashboardState) -> None:
    _clear_cookie(response, state, COOKIE_NAME, COOKIE_PATH)


def set_login_cookie(response: Response, state: DashboardState, session: Session) -> None:
    _set_cookie(response, state, LOGIN_COOKIE_NAME, LOGIN_COOKIE_PATH, state.codec.dumps(session))


def clear_login_cookie(response: Response, state: DashboardState) -> None:
    _clear_cookie(response, state, LOGIN_COOKIE_NAME, LOGIN_COOKIE_PATH)


def _set_cookie(response: Response, state: DashboardState, name: str, path: str, value: str) -> None:
    secure = state.settings.dashboard_cookie_secure
    response.set_cookie(name, value, path=path, httponly=True, samesite="strict", secure=secure)


def _clear_cookie(response: Response, state: DashboardState, name: str, path: str) -> None:
    secure = state.settings.dashboard_cookie_secure
    response.delete_cookie(name, path=path, httponly=True, samesite="strict", secure=secure)


def verify_admin(state: DashboardState, token: str) -> Principal:
    """Verify the token's signature, issuer, audience and expiry ourselves; only then read its role."""
    try:
        principal = state.verifier.verify(token)
    except ApiError:
        raise LoginRequired(reason="expired") from None
    if not principal.is_admin:
        raise Forbidden("This dashboard is for administrators only.")
    return principal


async def admin_session(request: Request) -> AdminSession:
    state = state_of(request)
    session = read_session(request)
    here = path_and_query(request)
    if session is None or session.token is None:
        raise LoginRequired(next_path=here if request.method == "GET" else None)
    try:
        principal = verify_admin(state, session.token)
    except LoginRequired:
        raise LoginRequired(next_path=here if request.method == "GET" else None, reason="expired") from None
    return AdminSession(session=session, token=session.token, principal=principal, csrf=state.codec.csrf_token(session))


Admin = Annotated[AdminSession, Depends(admin_session)]


async def checked_form(request: Request, admin: Admin) -> FormData:
    """The POSTed form of a signed-in admin, refused unless it carries this session's CSRF token."""
    form = await request.form()
    submitted = form.get("csrf_token")
    if not state_of(request).codec.csrf_valid(admin.session, submitted if isinstance(submitted, str) else None):
        raise Forbidden("The form could not be verified (missing or stale CSRF token). Reload the page and try again.")
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]
