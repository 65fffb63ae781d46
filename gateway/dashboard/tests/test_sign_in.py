"""Only an administrator, signed in with an API key, sees anything; sessions are cookies that scripts cannot read."""

from __future__ import annotations

from datetime import timedelta

import httpx

from dashboard.session import COOKIE_NAME, LOGIN_COOKIE_NAME, Session, SessionCodec

from .conftest import BASE_URL, csrf_of, sign_in
from .fake_api import ADMIN_KEY, FORGED_ADMIN_KEY, USER_KEY, FakeApi


async def test_anonymous_visitor_is_sent_to_sign_in_and_sees_no_data(client: httpx.AsyncClient, fake: FakeApi):
    response = await client.get("/dashboard/customers?q=x")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Fcustomers%3Fq%3Dx"
    assert fake.paths_called() == []


async def test_every_page_requires_sign_in(client: httpx.AsyncClient):
    pages = ("/dashboard", "/dashboard/invoices", "/dashboard/payments", "/dashboard/subscriptions", "/dashboard/dunning",
             "/dashboard/dead-letters", "/dashboard/invoices/01900001-0000-7000-8000-000000000001")
    for path in pages:
        response = await client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/dashboard/login"), path


async def test_admin_signs_in_and_lands_on_the_overview(client: httpx.AsyncClient):
    response = await sign_in(client, ADMIN_KEY)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"]
    assert f"{COOKIE_NAME}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/dashboard" in cookie
    overview = await client.get("/dashboard")
    assert overview.status_code == 200 and "MRR" in overview.text


async def test_sign_in_returns_to_the_page_first_asked_for(client: httpx.AsyncClient):
    response = await sign_in(client, ADMIN_KEY, next_path="/dashboard/invoices?status=open")
    assert response.headers["location"] == "/dashboard/invoices?status=open"


async def test_sign_in_never_redirects_off_the_dashboard(client: httpx.AsyncClient):
    for target in ("https://evil.example/", "//evil.example/dashboard", "/dashboardevil", "/api/customers"):
        client.cookies.clear()
        response = await sign_in(client, ADMIN_KEY, next_path=target)
        assert response.headers["location"] == "/dashboard", target


async def test_non_admin_key_is_refused_without_data(client: httpx.AsyncClient, fake: FakeApi):
    response = await sign_in(client, USER_KEY)
    assert response.status_code == 403
    assert "administrators only" in response.text
    assert fake.paths_called() == ["/api/auth/token"]
    # No session was kept: the next page still asks to sign in.
    follow = await client.get("/dashboard")
    assert follow.status_code == 303 and follow.headers["location"].startswith("/dashboard/login")


async def test_token_not_signed_by_the_customer_service_is_refused(client: httpx.AsyncClient):
    response = await sign_in(client, FORGED_ADMIN_KEY)
    assert response.status_code == 401
    assert "could not be verified" in response.text
    assert (await client.get("/dashboard")).status_code == 303


async def test_unknown_key_shows_the_form_again_with_an_error(client: httpx.AsyncClient):
    response = await sign_in(client, "sk_test_nope")
    assert response.status_code == 401
    assert "Unknown or revoked API key" in response.text and 'name="api_key"' in response.text


async def test_a_key_no_header_could_carry_shows_the_form_again_without_asking_the_api(
    client: httpx.AsyncClient, fake: FakeApi
):
    for key in ("bk_é", "bk_a\x00b", "bk_a\rb"):
        response = await sign_in(client, key)
        assert response.status_code == 422, key
        assert "not an API key" in response.text and 'name="api_key"' in response.text
    assert fake.paths_called() == []


async def test_sign_in_without_csrf_token_is_forbidden(client: httpx.AsyncClient, fake: FakeApi):
    await client.get("/dashboard/login")
    response = await client.post("/dashboard/login", data={"api_key": ADMIN_KEY})
    assert response.status_code == 403
    assert fake.paths_called() == []


async def test_sign_in_with_a_csrf_token_of_another_session_is_forbidden(dashboard, client: httpx.AsyncClient):
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=dashboard), base_url="http://dashboard.test")
    async with other:
        foreign_token = csrf_of((await other.get("/dashboard/login")).text)
    await client.get("/dashboard/login")
    response = await client.post("/dashboard/login", data={"api_key": ADMIN_KEY, "csrf_token": foreign_token})
    assert response.status_code == 403


async def test_sign_in_form_keeps_its_nonce_in_its_own_cookie_never_the_session(client: httpx.AsyncClient):
    response = await client.get("/dashboard/login")
    cookies = response.headers.get_list("set-cookie")
    assert not any(cookie.startswith(f"{COOKIE_NAME}=") for cookie in cookies), cookies
    [login] = [cookie for cookie in cookies if cookie.startswith(f"{LOGIN_COOKIE_NAME}=")]
    assert "HttpOnly" in login and "SameSite=strict" in login and "Path=/dashboard/login" in login


async def test_a_link_from_another_site_does_not_sign_the_admin_out(dashboard, admin: httpx.AsyncClient):
    # SameSite=Strict: following a link from another site, the browser sends no cookie but keeps what is set.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=dashboard), base_url=BASE_URL) as cross_site:
        landing = await cross_site.get("/dashboard/invoices")
        visit = await cross_site.get(landing.headers["location"])
    assert visit.status_code == 200
    admin.cookies.extract_cookies(visit)
    assert (await admin.get("/dashboard")).status_code == 200


async def test_sign_in_is_refused_without_the_sign_in_cookie_its_token_is_bound_to(client: httpx.AsyncClient):
    token = csrf_of((await client.get("/dashboard/login")).text)
    client.cookies.delete(LOGIN_COOKIE_NAME)
    response = await client.post("/dashboard/login", data={"api_key": ADMIN_KEY, "csrf_token": token})
    assert response.status_code == 403


async def test_sign_in_starts_a_new_session_whatever_session_cookie_came_with_it(client, settings):
    codec = SessionCodec(settings.dashboard_session_secret)
    planted = Session.new()
    client.cookies.set(COOKIE_NAME, codec.dumps(planted), domain="dashboard.test", path="/dashboard")
    await sign_in(client, ADMIN_KEY)
    session = codec.loads(client.cookies.get(COOKIE_NAME))
    assert session is not None and session.token is not None and session.nonce != planted.nonce


async def test_expired_access_token_sends_the_admin_back_to_sign_in(client, settings, fake: FakeApi):
    codec = SessionCodec(settings.dashboard_session_secret)
    expired = fake.token("admin", ttl=timedelta(seconds=-60))
    client.cookies.set(COOKIE_NAME, codec.dumps(Session.new(token=expired)), path="/dashboard")
    response = await client.get("/dashboard/payments")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Fpayments&reason=expired"
    assert "payments" not in " ".join(fake.paths_called())
    login = await client.get(response.headers["location"])
    assert "Your session has expired" in login.text


async def test_token_the_api_rejects_sends_the_admin_back_to_the_same_page_and_query(admin, fake: FakeApi):
    fake.revoked = True
    response = await admin.get("/dashboard/customers?q=x")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Fcustomers%3Fq%3Dx&reason=expired"


async def test_tampered_session_cookie_counts_as_no_session(client, fake: FakeApi):
    forged = SessionCodec("someone-elses-secret-0123456789abcdef").dumps(Session.new(token=fake.token("admin")))
    client.cookies.set(COOKIE_NAME, forged, path="/dashboard")
    response = await client.get("/dashboard")
    assert response.status_code == 303 and response.headers["location"].startswith("/dashboard/login")


async def test_sign_out_ends_the_session(admin: httpx.AsyncClient):
    page = await admin.get("/dashboard")
    response = await admin.post("/dashboard/logout", data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/login?reason=signed_out"
    assert (await admin.get("/dashboard")).status_code == 303


async def test_sign_out_without_csrf_token_is_forbidden(admin: httpx.AsyncClient):
    response = await admin.post("/dashboard/logout", data={})
    assert response.status_code == 403
    assert (await admin.get("/dashboard")).status_code == 200


async def test_csrf_token_changes_when_the_admin_signs_in(client: httpx.AsyncClient):
    before = csrf_of((await client.get("/dashboard/login")).text)
    await sign_in(client, ADMIN_KEY)
    after = csrf_of((await client.get("/dashboard")).text)
    assert before != after
