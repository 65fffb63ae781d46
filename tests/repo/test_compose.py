"""docker-compose.yml: valid against the compose spec, every service wired the same safe way."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from compose_env import resolved_environment
from gateway_harness import REPO_ROOT, UPSTREAM_NAMES, service_folders

SERVICES = ("customer", "payment", "subscription", "invoice", "dunning", "notifier")
BUILT_FROM = {
    **{service: f"services/{service}/Dockerfile" for service in SERVICES},
    "keygen": "services/customer/Dockerfile",
    "mock-gateway": "services/payment/Dockerfile",
    "dashboard": "gateway/dashboard/Dockerfile",
}
LONG_RUNNING_BUILT = sorted(set(BUILT_FROM) - {"keygen"})


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return environment


def _conditions(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def _volume_targets(service: dict[str, Any]) -> dict[str, str]:
    """Mount target -> source, for the short `source:target[:mode]` syntax used here."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        mounts[target] = source
    return mounts


def test_compose_file_validates_against_the_compose_spec() -> None:
    result = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
         "docker-compose.yml"],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_folder_is_a_compose_service(compose: dict[str, Any]) -> None:
    assert set(service_folders()) <= set(compose["services"])


def test_infrastructure_is_the_agreed_one(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["postgres"]["image"] == "postgres:15"
    assert services["rabbitmq"]["image"] == "rabbitmq:3.10-management"
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    assert services["gateway"]["image"].startswith("nginx:1.28")  # upstream `resolve` needs 1.27.3 or later


@pytest.mark.parametrize("name", sorted(BUILT_FROM))
def test_images_build_from_the_repo_root_with_an_existing_dockerfile(compose: dict[str, Any], name: str) -> None:
    build = compose["services"][name]["build"]

    assert build == {"context": ".", "dockerfile": BUILT_FROM[name]}
    assert (REPO_ROOT / build["dockerfile"]).is_file()


@pytest.mark.parametrize("name", LONG_RUNNING_BUILT)
def test_long_running_containers_have_a_healthcheck(compose: dict[str, Any], name: str) -> None:
    healthcheck = compose["services"][name].get("healthcheck", {})
    dockerfile = (REPO_ROOT / BUILT_FROM[name]).read_text()

    assert healthcheck.get("test") or "HEALTHCHECK" in dockerfile
    assert not healthcheck.get("disable", False)


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_connects_as_its_own_database_role(compose: dict[str, Any], name: str) -> None:
    environment = resolved_environment(compose["services"][name])

    assert environment["DATABASE_URL"] == f"postgresql+asyncpg://{name}:{name}@postgres:5432/billing"
    assert environment["AMQP_URL"] == "amqp://guest:guest@rabbitmq:5672/"
    assert {"LOG_LEVEL", "ENVIRONMENT"} <= set(environment)


@pytest.mark.parametrize("name", SERVICES)
def test_production_credentials_for_the_database_and_the_broker_are_variables(
    compose: dict[str, Any], name: str
) -> None:
    secrets = {f"{name.upper()}_DB_PASSWORD": "db-secret", "RABBITMQ_USER": "billing", "RABBITMQ_PASSWORD": "mq-secret"}
    environment = resolved_environment(compose["services"][name], secrets)
    broker = resolved_environment(compose["services"]["rabbitmq"], secrets)

    assert environment["DATABASE_URL"] == f"postgresql+asyncpg://{name}:db-secret@postgres:5432/billing"
    assert environment["AMQP_URL"] == "amqp://billing:mq-secret@rabbitmq:5672/"
    assert (broker["RABBITMQ_DEFAULT_USER"], broker["RABBITMQ_DEFAULT_PASS"]) == ("billing", "mq-secret")


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_starts_after_healthy_postgres_and_rabbitmq_and_the_keys(
    compose: dict[str, Any], name: str
) -> None:
    conditions = _conditions(compose["services"][name])

    assert conditions["postgres"] == "service_healthy"
    assert conditions["rabbitmq"] == "service_healthy"
    assert conditions["keygen"] == "service_completed_successfully"


@pytest.mark.parametrize("name", [*SERVICES, "dashboard"])
def test_each_app_reads_the_public_key_from_the_shared_volume(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]

    assert _environment(service)["JWT_PUBLIC_KEY_FILE"] == "/keys/public/jwt_public.pem"
    assert _volume_targets(service)["/keys/public"] == "jwt-public-key"
    assert _conditions(service)["keygen"] == "service_completed_successfully"


def test_only_the_customer_service_is_given_the_private_key(compose: dict[str, Any]) -> None:
    holders = {name for name, service in compose["services"].items()
               if "JWT_PRIVATE_KEY_FILE" in _environment(service)}

    assert holders == {"customer"}
    assert _environment(compose["services"]["customer"])["JWT_PRIVATE_KEY_FILE"] == "/keys/private/jwt_private.pem"


def test_only_the_key_generator_and_the_customer_service_can_read_the_private_key(compose: dict[str, Any]) -> None:
    """Every container runs as the same uid: a volume mounted is a volume readable. Code running in any other
    service (a PDF renderer's bug, say) must not be able to mint tokens every service accepts."""
    mounting = {name for name, service in compose["services"].items()
                if "jwt-private-key" in _volume_targets(service).values()}

    assert mounting == {"keygen", "customer"}
    assert any(str(v).endswith(":ro") for v in compose["services"]["customer"]["volumes"] if "private" in str(v))


def test_keygen_writes_the_private_and_the_public_key_into_separate_volumes(compose: dict[str, Any]) -> None:
    keygen = compose["services"]["keygen"]

    assert keygen["command"] == ["python", "-m", "billing_shared.auth", "keygen", "/keys/private", "/keys/public"]
    assert _volume_targets(keygen) == {"/keys/private": "jwt-private-key", "/keys/public": "jwt-public-key"}
    assert {"jwt-private-key", "jwt-public-key"} <= set(compose["volumes"])


def test_service_specific_settings_point_at_compose_neighbours(compose: dict[str, Any]) -> None:
    services = compose["services"]
    payment, notifier = _environment(services["payment"]), resolved_environment(services["notifier"])

    assert payment["PAYMENT_GATEWAY_URL"] == "http://mock-gateway:8090"
    assert payment["PAYMENT_FINGERPRINT_KEY"]
    # By default (a real server can be set with SMTP_HOST etc.), mail goes to Mailpit, with no login and no TLS.
    assert (notifier["SMTP_HOST"], notifier["SMTP_PORT"]) == ("mailpit", "1025")
    assert (notifier["SMTP_USERNAME"], notifier["SMTP_USE_TLS"], notifier["SMTP_START_TLS"]) == ("", "false", "false")
    assert notifier["PUBLIC_BASE_URL"] and _environment(services["invoice"])["PUBLIC_BASE_URL"]
    # PDFs come by the invoice events' signed links: the notifier holds no admin credential.
    assert notifier["NOTIFIER_INVOICE_API_URL"] == "http://gateway:8080" and "NOTIFIER_API_KEY" not in notifier
    assert _environment(services["dashboard"])["SERVICES_BASE_URL"] == "http://gateway:8080"


def test_mock_gateway_runs_the_payment_image_reachable_on_8090(compose: dict[str, Any]) -> None:
    mock_gateway = compose["services"]["mock-gateway"]

    assert mock_gateway["command"] == ["python", "-m", "mock_gateway"]
    assert _environment(mock_gateway)["MOCK_GATEWAY_HOST"] == "0.0.0.0"
    assert "8090/health" in " ".join(mock_gateway["healthcheck"]["test"])
    assert _conditions(compose["services"]["payment"])["mock-gateway"] == "service_healthy"


def test_only_the_gateway_and_local_consoles_publish_ports(compose: dict[str, Any]) -> None:
    # Services publish nothing, so any of them can be scaled out; consoles bind to localhost only.
    publishing = {name: service["ports"] for name, service in compose["services"].items() if "ports" in service}

    assert publishing.pop("gateway") == ["8080:8080"]
    assert set(publishing) <= {"mailpit", "rabbitmq"}
    assert all(port.startswith("127.0.0.1:") for ports in publishing.values() for port in ports)


def test_gateway_starts_after_every_upstream_is_healthy(compose: dict[str, Any]) -> None:
    assert _conditions(compose["services"]["gateway"]) == {name: "service_healthy" for name in UPSTREAM_NAMES}


def test_gateway_mounts_its_existing_config_files(compose: dict[str, Any]) -> None:
    mounts = _volume_targets(compose["services"]["gateway"])

    assert mounts["/etc/nginx/nginx.conf"] == "./gateway/nginx/nginx.docker.conf"
    assert mounts["/etc/nginx/routes.conf"] == "./gateway/nginx/routes.conf"
    assert all((REPO_ROOT / source).is_file() for source in mounts.values())
    # Every file nginx.docker.conf includes is mounted next to it.
    includes = re.findall(r"include\s+([\w.]+);", (REPO_ROOT / "gateway/nginx/nginx.docker.conf").read_text())
    assert {f"/etc/nginx/{name}" for name in includes} <= set(mounts)


def test_postgres_runs_init_sql_on_first_start_and_is_checked_over_tcp(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    mounts = _volume_targets(postgres)
    init_scripts = {source for target, source in mounts.items() if target.startswith("/docker-entrypoint-initdb.d/")}

    assert init_scripts == {"./shared/billing_shared/sql/init.sql"}
    assert _environment(postgres)["POSTGRES_DB"] == "billing"
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert "127.0.0.1" in postgres["healthcheck"]["test"]


def test_rabbitmq_keeps_a_stable_node_name_for_its_queues(compose: dict[str, Any]) -> None:
    rabbitmq = compose["services"]["rabbitmq"]

    assert rabbitmq["hostname"] == "rabbitmq"
    assert "rabbitmq-diagnostics" in rabbitmq["healthcheck"]["test"]



def test_postgres_has_connections_for_three_replicas_of_every_service(compose: dict[str, Any]) -> None:
    from billing_shared.settings import ServiceSettings

    command = compose["services"]["postgres"]["command"]
    # The image's entrypoint initialises a new data directory (init.sql included) only when it runs `postgres`.
    assert command[0] == "postgres"
    options = dict(value.split("=", 1) for flag, value in zip(command[1::2], command[2::2]) if flag == "-c")
    max_connections = int(options["max_connections"])
    # Each replica: its pool, and its outbox relay's LISTEN connection. Postgres keeps 3 for superusers;
    # leave 10 for migrations and the CLIs (admin-key, billing-run) run beside the services.
    fields = ServiceSettings.model_fields
    per_replica = fields["db_pool_size"].default + fields["db_max_overflow"].default + 1
    assert (max_connections - 3 - 10) // per_replica >= 3 * len(SERVICES), (max_connections, per_replica)
