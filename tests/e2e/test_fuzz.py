"""Fuzzing every service's OpenAPI through the gateway (schemathesis), with an admin token and with none.

Judged per response: never a 5xx; a 2xx conforms to its documented schema; a 4xx carries the project's JSON
error body ({"error": {"code", "message", ...}}); without a token never a 2xx, and a well-formed request gets
401 (or 404 for a path that routes nowhere). Operations that move business time for everyone (`as_of`) are fuzzed with
their `as_of` pinned in the past, so fuzzing never renews or dunning-retries other tests' customers.

    make test   quick profile (a few examples per operation)
    make fuzz   `pytest tests/e2e/test_fuzz.py --fuzz-profile=long`
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from billing_shared.bootstrap import SERVICES
from faults import save_artifact

PROFILES = {  # examples per operation: (positive, negative)
    "quick": (3, 2),
    "long": (100, 50),
}
PAST = "2001-01-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def profile(request: pytest.FixtureRequest) -> tuple[int, int]:
    return PROFILES[request.config.getoption("--fuzz-profile")]


def error_body_problem(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} without a JSON body: {response.text[:200]!r}"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str) or not isinstance(error.get("message"), str):
        return f"{response.status_code} without the error shape: {response.text[:200]}"
    return None


def judge(case: Any, response: requests.Response, authenticated: bool, mode: GenerationMode) -> str | None:
    """What is wrong with this response, or None."""
    status = response.status_code
    if status >= 500:
        return f"server error {status}: {response.text[:300]}"
    if not authenticated:
        # A valid request without a token is refused (404 only for a path that routes nowhere); a malformed
        # one may be refused for its form first (FastAPI reads the body before the auth dependency runs).
        allowed = range(400, 500) if mode is GenerationMode.NEGATIVE else (401, 404)
        if status not in allowed:
            return f"answered {status} without a token"
        return error_body_problem(response)
    if status == 401 and case.operation.path != "/api/auth/token":  # that one takes an API key, not a token
        return f"401 with a valid admin token: {response.text[:300]}"
    if status >= 400:
        return error_body_problem(response)
    try:
        case.operation.validate_response(response, case=case)
    except Exception as exc:  # schemathesis raises a failure (group) describing the mismatch
        return f"{status} does not match its schema: {str(exc)[:500]}"
    return None


def pin_business_time(case: Any) -> None:
    if isinstance(case.body, dict) and isinstance(case.body.get("as_of"), str):
        case.body["as_of"] = PAST


def fuzz_operation(operation: Any, base_url: str, headers: dict[str, str], examples: int,
                   mode: GenerationMode, authenticated: bool, statuses: Counter[int]) -> list[dict[str, Any]]:
    failures: list[dict[str, Any]] = []
    session = requests.Session()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    def explore(case: Any) -> None:
        if not authenticated and case.headers:
            case.headers = {k: v for k, v in case.headers.items() if k.lower() != "authorization"}
        if authenticated and case.operation.schema.is_security_param_negated(case):
            return  # schemathesis leaves the token out on purpose: the anonymous run covers that
        pin_business_time(case)
        try:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError, ValueError):
            return  # the client refused to send it; nothing reached the server
        statuses[response.status_code] += 1
        problem = judge(case, response, authenticated, mode)
        if problem and len(failures) < 5:
            failures.append({"operation": f"{operation.method.upper()} {operation.path}", "mode": mode.value,
                             "problem": problem, "reproduce": case.as_curl_command(headers=headers)})

    explore()
    session.close()
    return failures


@pytest.mark.parametrize("authenticated", [True, False], ids=["admin", "anonymous"])
@pytest.mark.parametrize("service", SERVICES)
def test_fuzzed_requests_get_no_5xx_and_documented_answers(stack, profile, service, authenticated):
    document = f"{stack.base_url}/api/{service}/openapi.json"
    assert httpx.get(document, timeout=30).status_code == 401  # authenticated, like every request but /health
    raw = httpx.get(document, headers=stack.admin_headers(), timeout=30).json()
    schema = schemathesis.openapi.from_dict(raw)
    headers = stack.admin_headers() if authenticated else {}
    positive, negative = profile
    started = time.monotonic()
    failures: list[dict[str, Any]] = []
    statuses: Counter[int] = Counter()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode, examples in ((GenerationMode.POSITIVE, positive), (GenerationMode.NEGATIVE, negative)):
            failures += fuzz_operation(operation, stack.base_url, headers, examples, mode, authenticated, statuses)

    label = f"fuzz-{service}-{'admin' if authenticated else 'anonymous'}.json"
    save_artifact(label, {"operations": operations, "seconds": round(time.monotonic() - started, 1),
                          "statuses": dict(statuses), "failures": failures})
    assert operations > 0
    if authenticated:  # the token works: some requests got past authentication and were served
        assert any(200 <= status < 300 for status in statuses), dict(statuses)
    assert not failures, json.dumps(failures, indent=2)[:6000]
