"""docker-compose.yml's environment as a container sees it: `${VAR}` / `${VAR:-default}` resolved like compose does."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# ${NAME}, ${NAME-default}, ${NAME:-default}; compose's other forms (:?, :+, nesting) are not used in the file.
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<colon>:?)-(?P<default>[^}]*))?\}")


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment:` as written (map or list form), values as strings."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def passed_through(value: str, name: str) -> bool:
    """The value is `${NAME...}`: whoever runs compose sets it with the variable of the same name."""
    match = INTERPOLATION.fullmatch(value)
    return bool(match) and match.group("name") == name


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """The value after compose's interpolation, given the variables set where `docker compose` runs."""
    assert "$$" not in value and not re.search(r"\$\{\w+:?[?+]", value), f"unsupported interpolation in {value!r}"

    def resolve(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        if name in variables and (variables[name] or not match.group("colon")):
            return variables[name]
        return default or ""

    return INTERPOLATION.sub(resolve, value)


def resolved_environment(service: dict[str, Any], variables: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment the container gets when `docker compose` runs with these variables set (none: defaults)."""
    return {name: interpolate(value, variables or {}) for name, value in environment(service).items()}
