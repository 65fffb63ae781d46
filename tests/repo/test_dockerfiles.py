"""The images: each service's Dockerfile installs shared/ and its requirements, migrates, then serves on 8000."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway_harness import REPO_ROOT, run_render_local, service_folders

DOCKERFILES = sorted([*(REPO_ROOT.glob("services/*/Dockerfile")), REPO_ROOT / "gateway/dashboard/Dockerfile"])
WEASYPRINT_LIBRARIES = (
    "libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz0b", "libharfbuzz-subset0", "fontconfig", "fonts-dejavu-core",
)


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _last(dockerfile: Path, instruction: str) -> str:
    return [args for name, args in _instructions(dockerfile) if name == instruction][-1]


@pytest.mark.parametrize("name", service_folders())
def test_every_service_folder_has_a_dockerfile(name: str) -> None:
    assert (REPO_ROOT / "services" / name / "Dockerfile").is_file()


@pytest.mark.parametrize("name", service_folders())
def test_service_image_runs_migrations_then_uvicorn_on_8000_from_its_folder(name: str) -> None:
    dockerfile = REPO_ROOT / "services" / name / "Dockerfile"
    command = _last(dockerfile, "CMD")

    assert _last(dockerfile, "WORKDIR") == f"/srv/services/{name}"
    assert re.search(
        r"alembic upgrade head && exec uvicorn --factory app\.main:create_app .*--port 8000", command
    ), command
    assert "/health" in _last(dockerfile, "HEALTHCHECK")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_image_installs_the_shared_package_and_its_own_requirements(dockerfile: Path) -> None:
    runs = " ".join(args for name, args in _instructions(dockerfile) if name == "RUN")
    folder = dockerfile.parent.relative_to(REPO_ROOT)

    assert "pip install --constraint /srv/constraints.txt /srv/shared" in runs
    assert f"pip install --constraint /srv/constraints.txt --requirement /srv/{folder}/requirements.txt" in runs


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_every_pip_install_in_an_image_takes_the_pinned_releases(dockerfile: Path) -> None:
    instructions = _instructions(dockerfile)
    installs = [index for index, (name, args) in enumerate(instructions) if name == "RUN" and "pip install" in args]
    copied = [index for index, (name, args) in enumerate(instructions)
              if name == "COPY" and args.split() == ["constraints.txt", "/srv/constraints.txt"]]

    assert installs and copied and copied[0] < installs[0], "constraints.txt must be copied before the first install"
    for index in installs:
        for command in re.split(r"&&|;", instructions[index][1]):
            if "pip install" in command:
                assert "--constraint /srv/constraints.txt" in command, command


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_image_runs_as_the_shared_unprivileged_uid(dockerfile: Path) -> None:
    # One uid everywhere: the public key keygen writes into the jwt-public-key volume is read by every service.
    assert "--uid 10001" in " ".join(args for name, args in _instructions(dockerfile) if name == "RUN")
    assert _last(dockerfile, "USER") == "billing"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_everything_an_image_copies_exists_in_the_repo(dockerfile: Path) -> None:
    sources = [args.split()[0] for name, args in _instructions(dockerfile) if name == "COPY"]

    missing = [source for source in sources if not (REPO_ROOT / source).exists()]
    assert not missing, f"{dockerfile.relative_to(REPO_ROOT)} copies missing paths {missing}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_image_leaves_request_logging_to_the_gateway(dockerfile: Path) -> None:
    # uvicorn's access log prints the query string, and an emailed invoice link carries its signature there:
    # anyone reading the logs could open the invoice. The gateway logs every request as JSON, without it.
    assert "--no-access-log" in _last(dockerfile, "CMD").replace('", "', " ")


def test_invoice_image_installs_weasyprint_system_libraries() -> None:
    runs = " ".join(args for name, args in _instructions(REPO_ROOT / "services/invoice/Dockerfile") if name == "RUN")

    assert all(library in runs.split() for library in WEASYPRINT_LIBRARIES)


def test_dashboard_image_serves_the_dashboard_app_from_the_gateway_folder() -> None:
    dockerfile = REPO_ROOT / "gateway/dashboard/Dockerfile"

    assert _last(dockerfile, "WORKDIR") == "/srv/gateway"
    assert '"dashboard.main:app"' in _last(dockerfile, "CMD") and '"8000"' in _last(dockerfile, "CMD")


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_build_context() -> None:
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())

    assert {".git", ".venv", ".env", ".run", "**/__pycache__"} <= ignored
    assert not ignored & {"shared", "services", "gateway", "shared/", "services/", "gateway/"}
    # Every image copies the pins from the root of the context.
    assert not ignored & {"constraints.txt", "*.txt", "*", "/constraints.txt"}


def _nginx_upstream_keepalive_timeouts(config_text: str) -> list[int]:
    upstreams = re.findall(r"upstream\s+\w+\s*\{([^}]*)\}", config_text)
    assert upstreams, "no upstream blocks"
    timeouts = [re.search(r"keepalive_timeout\s+(\d+)s;", block) for block in upstreams]
    assert all(timeouts), f"an upstream without keepalive_timeout: {upstreams}"
    return [int(t.group(1)) for t in timeouts]  # type: ignore[union-attr]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_services_keep_idle_connections_open_longer_than_the_gateway_reuses_them(dockerfile: Path) -> None:
    # If nginx reused an upstream connection uvicorn was just closing, a POST on it would come back as a 502.
    gateway = max(_nginx_upstream_keepalive_timeouts((REPO_ROOT / "gateway/nginx/nginx.docker.conf").read_text()))
    command = _last(dockerfile, "CMD").replace('", "', " ")
    service = re.search(r"--timeout-keep-alive\D+(\d+)", command)
    assert service, command
    assert int(service.group(1)) > gateway + 5


def test_the_local_stack_keeps_the_same_order_of_keep_alive_timeouts(tmp_path: Path) -> None:
    from billing_shared.devstack import KEEP_ALIVE

    upstreams = {"customer": "127.0.0.1:18001", "payment": "127.0.0.1:18002"}
    config = run_render_local(tmp_path, 18080, upstreams).read_text()
    gateway = max(_nginx_upstream_keepalive_timeouts(config))
    assert KEEP_ALIVE[0] == "--timeout-keep-alive" and int(KEEP_ALIVE[1]) > gateway + 5
