"""docker-compose.yml against the apps' own settings: its defaults start every app locally, and every setting an app
refuses to leave at its default in production is passed through (`${VAR:-local default}`), so that
ENVIRONMENT=production with those variables set starts the stack.

The settings refused in production are read off the settings classes themselves: each is built with
ENVIRONMENT=production and nothing else, and every variable its error names is set until it builds.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from compose_env import environment, passed_through, resolved_environment
from gateway_harness import REPO_ROOT, service_folders

SETTINGS_FILES = {
    **{name: REPO_ROOT / "services" / name / "app" / "settings.py" for name in service_folders()},
    "dashboard": REPO_ROOT / "gateway" / "dashboard" / "settings.py",
}
APPS = sorted(SETTINGS_FILES)
# Values tried, in order, for a variable production refuses: a flag, then a secret long enough for any check.
CANDIDATES = ("true", "production-check-" + "x" * 48)
# Values that the stack makes itself and that production accepts as they are (keygen writes the private key).
STACK_PROVIDED = {"JWT_PRIVATE_KEY_FILE"}
ENV_NAME = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")


@cache
def settings_class(app: str) -> type[BaseSettings]:
    """The app's settings class, loaded from its file (every service's package is called `app`)."""
    module_name = f"_compose_check_{app}_settings"
    spec = importlib.util.spec_from_file_location(module_name, SETTINGS_FILES[app])
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    classes = [value for value in vars(module).values()
               if isinstance(value, type) and issubclass(value, BaseSettings) and value.__module__ == module_name]
    assert len(classes) == 1, f"{SETTINGS_FILES[app]}: expected one settings class, found {classes}"
    return classes[0]


@contextmanager
def only_these_variables(variables: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(variables)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def build(app: str, variables: Mapping[str, str]) -> BaseSettings:
    with only_these_variables(variables):
        return settings_class(app)()


def named_variables(error: ValidationError) -> list[str]:
    """The variables an error is about: those its messages name, else the fields it failed on."""
    names: list[str] = []
    for detail in error.errors():
        found = ENV_NAME.findall(detail["msg"]) or [str(part).upper() for part in detail["loc"] if part != "__root__"]
        names.extend(name for name in found if name not in names)
    return names


@cache
def refused_in_production(app: str) -> tuple[tuple[frozenset[str], ...], dict[str, str]]:
    """The groups of variables production refuses at their defaults (one of a group is enough: "A or B"), and
    values that it accepts for them."""
    variables = {"ENVIRONMENT": "production"}
    groups: list[frozenset[str]] = []
    tried: dict[str, int] = {}
    for _ in range(20):
        try:
            build(app, variables)
        except ValidationError as error:
            names = named_variables(error)
            assert names, f"{app}: production refuses its defaults without naming a variable: {error}"
            if frozenset(names) not in groups:
                groups.append(frozenset(names))
            name = names[0]
            assert tried.get(name, 0) < len(CANDIDATES), f"{app}: no value of {name} satisfies production: {error}"
            variables[name] = CANDIDATES[tried.get(name, 0)]
            tried[name] = tried.get(name, 0) + 1
        else:
            accepted = {name: value for name, value in variables.items() if name != "ENVIRONMENT"}
            return tuple(_merge(groups)), accepted
    raise AssertionError(f"{app}: production keeps refusing its settings: {variables}")


def _merge(groups: list[frozenset[str]]) -> list[frozenset[str]]:
    """One group per refusal: a variable refused again with a different neighbour (a value of the wrong type) is
    still the same requirement."""
    merged: list[frozenset[str]] = []
    for group in groups:
        overlapping = [other for other in merged if other & group]
        merged = [other for other in merged if not other & group] + [frozenset().union(group, *overlapping)]
    return merged


def compose_service(compose: dict[str, Any], app: str) -> dict[str, Any]:
    assert app in compose["services"], f"{app} is not a compose service"
    return compose["services"][app]


def test_production_refuses_the_local_secrets_of_the_apps_that_have_them() -> None:
    # The derivation finds what the review found, at least: if this fails, the settings checks changed shape.
    refused = {app: set().union(*refused_in_production(app)[0]) for app in APPS}
    assert "INVOICE_LINK_SECRET" in refused["invoice"]
    assert "PAYMENT_FINGERPRINT_KEY" in refused["payment"]
    assert {"DASHBOARD_SESSION_SECRET", "DASHBOARD_COOKIE_SECURE"} <= refused["dashboard"]
    assert "NOTIFIER_SENDER" in refused["notifier"]


@pytest.mark.parametrize("app", APPS)
def test_every_setting_refused_in_production_is_passed_through_by_compose(compose: dict[str, Any], app: str) -> None:
    env = environment(compose_service(compose, app))
    groups, _ = refused_in_production(app)

    for group in groups:
        given = sorted(name for name in group if name in env)
        assert given, f"{app}: compose sets none of {sorted(group)}, which production refuses to leave at the default"
        # A literal is fine only where the stack itself provides the value (the private key's file on its volume),
        # and then production must accept it as it is (next test); anything else is a `${VAR:-local default}`.
        literal = [name for name in given if not passed_through(env[name], name)]
        assert not literal or set(literal) <= STACK_PROVIDED, (
            f"{app}: {literal} must be passed through as ${{NAME:-local default}} to be set for production"
        )


@pytest.mark.parametrize("app", APPS)
def test_compose_defaults_start_every_app_locally(compose: dict[str, Any], app: str) -> None:
    env = resolved_environment(compose_service(compose, app))

    assert env["ENVIRONMENT"] == "local"
    build(app, env)


@pytest.mark.parametrize("app", APPS)
def test_compose_in_production_starts_every_app_once_its_refused_settings_are_set(
    compose: dict[str, Any], app: str
) -> None:
    _, accepted = refused_in_production(app)
    written = environment(compose_service(compose, app))
    overrides = {name: value for name, value in accepted.items() if name in written}

    build(app, resolved_environment(compose_service(compose, app), {"ENVIRONMENT": "production", **overrides}))


@pytest.mark.parametrize("app", APPS)
def test_compose_local_defaults_never_pass_for_production_secrets(compose: dict[str, Any], app: str) -> None:
    written = environment(compose_service(compose, app))
    groups, _ = refused_in_production(app)
    if not any(passed_through(written.get(name, ""), name) for group in groups for name in group):
        pytest.skip(f"{app}: production refuses no default that compose passes through")

    with pytest.raises(ValidationError):
        build(app, resolved_environment(compose_service(compose, app), {"ENVIRONMENT": "production"}))


def _seconds(duration: str) -> float:
    """A compose duration such as "90s", "1m30s" or "500ms", in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a compose duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


@pytest.mark.parametrize("app", [app for app in APPS if app != "dashboard"])
def test_each_app_is_given_longer_to_stop_than_its_handlers_grace(compose: dict[str, Any], app: str) -> None:
    """docker stops a container with SIGKILL after `stop_grace_period` (10 s by default): a handler still inside its
    grace then (an email between the SMTP accept and its COMMIT) is repeated after the restart."""
    service = compose_service(compose, app)
    settings = build(app, resolved_environment(service))

    assert _seconds(service.get("stop_grace_period", "10s")) > settings.consumer_stop_grace_s
