"""Sign in with an API key (exchanged for an access token, verified, admins only) and sign out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from ..rendering import render
from ..security import (
    PREFIX,
    Forbidden,
    LoginRequired,
    clear_login_cookie,
    clear_session_cookie,
    read_login_session,
    read_session,
    safe_next,
    set_login_cookie,
    set_session_cookie,
    state_of,
    verify_admin,
)
from ..session import Session
from ..upstream import UpstreamError, UpstreamUnauthorized

router = APIRouter(prefix=PREFIX, tags=["auth"])

REASONS = {"expired": "Your session has expired. Please sign in again.", "signed_out": "You have signed out."}


def _login_form(request: Request, login: Session, *, next_path: str, error: str | None = None,
                notice: str | None = None, status_code: int = 200) -> Response:
    # Only the sign-in cookie is written: the form may be answering a visit whose session cookie the browser
    # held back (SameSite=Strict, a link from another site), and that session must stay signed in.
    state = state_of(request)
    response = render(
        request,
        "login.html",
        {"csrf": state.codec.csrf_token(login), "next": next_path, "error": error, "notice": notice},
        status_code=status_code,
    )
    set_login_cookie(response, state, login)
    return response


@router.get("/login", summary="The sign-in form")
async def read_login(
    request: Request,
    next: Annotated[str | None, Query(max_length=2000)] = None,
    reason: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    session = read_session(request)
    if session is not None and session.token is not None:
        try:
            verify_admin(state_of(request), session.token)
            return RedirectResponse(safe_next(next), status_code=303)
        except (LoginRequired, Forbidden):
            pass
    # The form's CSRF token is bound to the sign-in cookie's nonce; kept while it lasts, so two open forms both work.
    login = read_login_session(request) or Session.new()
    return _login_form(request, login, next_path=safe_next(next), notice=REASONS.get(reason or ""))


@router.post("/login", summary="Exchange an API key for a session")
async def create_session(request: Request) -> Response:
    state = state_of(request)
    login = read_login_session(request)
    form = await request.form()
    submitted = form.get("csrf_token")
    if login is None or not state.codec.csrf_valid(login, submitted if isinstance(submitted, str) else None):
        raise Forbidden("The sign-in form could not be verified (missing or stale CSRF token). Reload and try again.")
    raw_next = form.get("next")
    next_path = safe_next(raw_next if isinstance(raw_next, str) else None)
    raw_key = form.get("api_key")
    api_key = raw_key.strip() if isinstance(raw_key, str) else ""
    if not api_key or len(api_key) > 512:
        return _login_form(request, login, next_path=next_path, error="Enter an API key.", status_code=422)
    if not (api_key.isascii() and api_key.isprintable()):  # no header could carry it: not a key we issued
        return _login_form(
            request, login, next_path=next_path, status_code=422,
            error="That is not an API key: keys are printable ASCII characters.",
        )
    try:
        body = await state.api.request("POST", "/api/auth/token", api_key=api_key)
    except UpstreamUnauthorized:
        return _login_form(request, login, next_path=next_path, error="Unknown or revoked API key.", status_code=401)
    except UpstreamError:
        return _login_form(
            request, login, next_path=next_path, status_code=502,
            error="The sign-in service is unavailable right now. Try again shortly.",
        )
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        return _login_form(request, login, next_path=next_path, error="Sign-in failed.", status_code=502)
    try:
        verify_admin(state, token)
    except LoginRequired:
        # The token did not verify with our public key: never trust its claims.
        return _login_form(
            request, login, next_path=next_path, status_code=401,
            error="Sign-in failed: the token could not be verified.",
        )
    except Forbidden as refused:
        response = render(request, "forbidden.html", {"message": refused.message}, status_code=403)
        # Whoever was signed in here has just tried another key: keep no session, and spend the form's nonce.
        clear_session_cookie(response, state)
        clear_login_cookie(response, state)
        return response
    response = RedirectResponse(next_path, status_code=303)
    # A new nonce on sign-in, so a CSRF token seen before signing in is worthless afterwards.
    set_session_cookie(response, state, Session.new(token=token))
    clear_login_cookie(response, state)
    return response


@router.post("/logout", summary="Sign out")
async def delete_session(request: Request) -> Response:
    state = state_of(request)
    form = await request.form()
    submitted = form.get("csrf_token")
    if not state.codec.csrf_valid(read_session(request), submitted if isinstance(submitted, str) else None):
        raise Forbidden("The sign-out form could not be verified. Reload the page and try again.")
    response = RedirectResponse(f"{PREFIX}/login?reason=signed_out", status_code=303)
    clear_session_cookie(response, state)
    return response
