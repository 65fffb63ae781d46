"""constraints.txt: one exact release for every third-party requirement, inside the range the requirement allows,
and the venv `make` builds installs with it (the images' side is in test_dockerfiles.py)."""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from gateway_harness import REPO_ROOT

CONSTRAINTS = REPO_ROOT / "constraints.txt"
REQUIREMENT_FILES = sorted(
    [REPO_ROOT / "requirements-dev.txt", *REPO_ROOT.glob("services/*/requirements.txt"),
     REPO_ROOT / "gateway/dashboard/requirements.txt"]
)
NEVER_PINNED = {"pip", "setuptools", "wheel", "billing-shared"}


def pins() -> dict[str, Version]:
    pinned: dict[str, Version] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line.strip())
        assert match, f"constraints.txt: {line!r} is not NAME==VERSION"
        name = canonicalize_name(match.group(1))
        assert name not in pinned, f"constraints.txt pins {name} twice"
        pinned[name] = Version(match.group(2))
    return pinned


def requirements() -> list[tuple[str, Requirement]]:
    """(where, requirement) for everything the project asks for: shared/pyproject.toml and every requirements file."""
    found = [("shared/pyproject.toml", Requirement(spec)) for spec in
             tomllib.loads((REPO_ROOT / "shared/pyproject.toml").read_text())["project"]["dependencies"]]
    for path in REQUIREMENT_FILES:
        for line in path.read_text().splitlines():
            spec = re.sub(r"(^|\s)#.*$", "", line).strip()
            if spec and not spec.startswith("-"):
                found.append((str(path.relative_to(REPO_ROOT)), Requirement(spec)))
    return found


def test_constraints_pin_exact_releases_of_third_party_packages_only() -> None:
    pinned = pins()

    assert len(pinned) > 20
    assert not NEVER_PINNED & set(pinned), "pip/setuptools/wheel and the project's own package are not pinned"
    assert CONSTRAINTS.read_text().startswith("#") and "make constraints" in CONSTRAINTS.read_text()


@pytest.mark.parametrize(("where", "requirement"), requirements(), ids=lambda value: str(value))
def test_every_requirement_is_pinned_within_its_range(where: str, requirement: Requirement) -> None:
    pinned = pins().get(canonicalize_name(requirement.name))

    assert pinned is not None, f"{where}: {requirement.name} is not in constraints.txt: run `make constraints`"
    assert requirement.specifier.contains(pinned, prereleases=True), (
        f"{where}: {requirement} does not allow the pinned {pinned}: run `make constraints`"
    )


def _make_dry_run(target: str) -> str:
    result = subprocess.run(["make", "-n", "-B", "--no-print-directory", target], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=True)
    return result.stdout


def test_the_venv_installs_every_requirement_file_with_the_constraints() -> None:
    installs = [shlex.split(line) for line in _make_dry_run(".venv/.installed").splitlines()
                if "pip install" in line and "-e" in shlex.split(line)]
    assert len(installs) == 1, installs
    args = installs[0]

    assert args[args.index("-c") + 1] == "constraints.txt"
    given = {args[index + 1] for index, arg in enumerate(args) if arg == "-r"}
    assert given == {str(path.relative_to(REPO_ROOT)) for path in REQUIREMENT_FILES}
    assert args[args.index("-e") + 1] == "shared"


def test_the_venv_is_reinstalled_when_the_constraints_change() -> None:
    database = subprocess.run(["make", "-pn", "-B", "--no-print-directory", ".venv/.installed"], cwd=REPO_ROOT,
                              capture_output=True, text=True, check=True).stdout
    rule = next(line for line in database.splitlines() if line.startswith(".venv/.installed:"))

    assert {"constraints.txt", "shared/pyproject.toml"} <= set(rule.split(":", 1)[1].split())


def test_make_constraints_refreshes_the_pins_below_the_header_without_them() -> None:
    recipe = _make_dry_run("constraints")
    installs = [line for line in recipe.split("&&") if "pip\" install" in line and "-e shared" in line]

    assert installs and "-c" not in shlex.split(installs[0]), "the refresh must not be held to the old pins"
    assert "freeze --exclude-editable" in recipe and "constraints.txt" in recipe


def test_the_constraints_header_is_a_comment_block_the_refresh_keeps() -> None:
    # `make constraints` keeps the leading comment lines (sed -n '/^#/!q;p') and replaces everything after.
    header = subprocess.run(["sed", "-n", "/^#/!q;p", str(CONSTRAINTS)], capture_output=True, text=True,
                            check=True).stdout
    assert header and all(line.startswith("#") for line in header.splitlines())
    assert not any("==" in line for line in header.splitlines())
