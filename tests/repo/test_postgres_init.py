"""shared/billing_shared/sql/init.sql on a fresh database: one schema per service, each role fenced into its own."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from billing_shared import bootstrap
from billing_shared.testing import ADMIN_DSN

from gateway_harness import REPO_ROOT, Psql

INIT_SQL = REPO_ROOT / "shared" / "billing_shared" / "sql" / "init.sql"
SERVICES = ("customer", "payment", "subscription", "invoice", "dunning", "notifier")


@pytest.fixture
def initialised_database(psql: Psql) -> Iterator[str]:
    """A throwaway database with init.sql applied twice (it must be idempotent); dropped afterwards."""
    name = f"repo_init_sql_{uuid.uuid4().hex[:12]}"
    psql.run(f'CREATE DATABASE "{name}"')
    try:
        psql.run(database=name, file=INIT_SQL)
        psql.run(database=name, file=INIT_SQL)
        yield name
    finally:
        psql.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_creates_one_schema_per_service_owned_by_its_role(psql: Psql, initialised_database: str) -> None:
    rows = psql.run(
        "SELECT nspname || ':' || pg_get_userbyid(nspowner) FROM pg_namespace "
        "WHERE nspname = ANY(ARRAY['customer','payment','subscription','invoice','dunning','notifier'])",
        database=initialised_database,
    ).stdout.split()

    assert sorted(rows) == sorted(f"{service}:{service}" for service in SERVICES)


def test_role_cannot_read_another_services_table(psql: Psql, initialised_database: str) -> None:
    psql.run("CREATE TABLE customer.customers (id int); INSERT INTO customer.customers VALUES (1)",
             database=initialised_database)

    attempt = psql.run("SELECT * FROM customer.customers", database=initialised_database, user="payment", check=False)

    assert attempt.returncode != 0
    assert "permission denied for schema customer" in attempt.stderr


def test_role_creates_unqualified_tables_in_its_own_schema(psql: Psql, initialised_database: str) -> None:
    schema = psql.run(
        "CREATE TABLE payments (id int); SELECT schemaname FROM pg_tables WHERE tablename = 'payments'",
        database=initialised_database, user="payment",
    ).stdout.strip()

    assert schema == "payment"


def test_nobody_but_the_owner_may_create_in_public(psql: Psql, initialised_database: str) -> None:
    attempt = psql.run("CREATE TABLE public.stray (id int)", database=initialised_database, user="payment",
                       check=False)

    assert "permission denied for schema public" in attempt.stderr


def test_does_not_hard_code_the_database_name() -> None:
    assert "billing" not in INIT_SQL.read_text().lower()


def test_concurrent_runs_on_different_databases_take_turns(psql: Psql) -> None:
    """Test sessions side by side bootstrap their own databases at the same moment; roles are cluster-wide, so
    without taking turns two runs update the same catalog row and one fails ('tuple concurrently updated')."""
    names = [f"repo_init_race_{uuid.uuid4().hex[:12]}" for _ in range(4)]
    for name in names:
        psql.run(f'CREATE DATABASE "{name}"')
    try:
        for _ in range(5):
            with ThreadPoolExecutor(len(names)) as pool:
                runs = list(pool.map(lambda name: psql.run(database=name, file=INIT_SQL, check=False), names))
            assert [run.stderr.strip() for run in runs] == [""] * len(names)
            assert [run.returncode for run in runs] == [0] * len(names)
    finally:
        for name in names:
            psql.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_every_service_is_migrated_side_by_side_to_its_own_head(psql: Psql, initialised_database: str) -> None:
    migrated = bootstrap.migrate_all(ADMIN_DSN, initialised_database, SERVICES)

    assert migrated == list(SERVICES)
    for service in SERVICES:
        config = Config(str(bootstrap.service_dir(service) / "alembic.ini"))
        config.set_main_option("script_location", str(bootstrap.service_dir(service) / "migrations"))
        head = ScriptDirectory.from_config(config)
        version = psql.run(f"SELECT version_num FROM {service}.alembic_version", database=initialised_database)
        assert version.stdout.split() == [head.get_current_head()], service


def test_a_failed_migration_is_named_and_the_others_still_run(psql: Psql, initialised_database: str) -> None:
    psql.run("DROP SCHEMA dunning CASCADE", database=initialised_database)

    with pytest.raises(RuntimeError, match=r"migrations failed for dunning \("):
        bootstrap.migrate_all(ADMIN_DSN, initialised_database, SERVICES)
    for service in ("customer", "payment", "notifier"):
        versions = psql.run(f"SELECT count(*) FROM {service}.alembic_version", database=initialised_database)
        assert versions.stdout.strip() == "1", service
