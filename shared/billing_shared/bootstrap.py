"""Local set-up: a database with one schema and role per service, and each service's migrations.

    python -m billing_shared.bootstrap --admin-dsn postgresql://postgres@127.0.0.1:5432/postgres \
        --database billing --services customer,payment,...
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg

INIT_SQL = Path(__file__).with_name("sql") / "init.sql"
REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["customer", "payment", "subscription", "invoice", "dunning", "notifier"]


def service_dir(service: str) -> Path:
    return REPO_ROOT / "services" / service


def with_database(dsn: str, database: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{database}"


def service_url(admin_dsn: str, database: str, service: str) -> str:
    """The service's own DSN: same host, its own role (trust auth locally; password = name otherwise)."""
    rest = admin_dsn.split("://", 1)[1].split("@", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+asyncpg://{service}:{service}@{rest}/{database}"


async def ensure_database(admin_dsn: str, database: str) -> bool:
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database}"')
        return not exists
    finally:
        await conn.close()


async def apply_init_sql(admin_dsn: str, database: str) -> None:
    conn = await asyncpg.connect(with_database(admin_dsn, database))
    try:
        await conn.execute(INIT_SQL.read_text())  # serialises itself against concurrent runs (see init.sql)
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, database: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


def migrate(service: str, database_url: str) -> None:
    """`alembic upgrade head` in the service's folder, as the service's own role."""
    env = {**os.environ, "DATABASE_URL": database_url}
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=service_dir(service),
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def migrate_all(admin_dsn: str, database: str, services: Iterable[str]) -> list[str]:
    """Every service's migrations at once, each as its own role in its own schema (so they never touch the same
    objects): six Alembic processes are mostly Python start-up, and side by side they take half the time they
    take in a row on two cores. Returns the services migrated; raises naming every one that failed."""
    chosen = [s for s in services if (service_dir(s) / "alembic.ini").exists()]
    with ThreadPoolExecutor(max_workers=max(1, len(chosen))) as pool:
        runs = {s: pool.submit(migrate, s, service_url(admin_dsn, database, s)) for s in chosen}
    failed = [s for s, run in runs.items() if run.exception() is not None]
    if failed:
        raise RuntimeError(f"migrations failed for {', '.join(failed)} (Alembic's errors are above)")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m billing_shared.bootstrap", description=__doc__)
    parser.add_argument("--admin-dsn", default=os.environ.get("ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--database", default="billing")
    parser.add_argument("--services", default=",".join(SERVICES))
    args = parser.parse_args(argv)
    created = asyncio.run(ensure_database(args.admin_dsn, args.database))
    print(f"database {args.database}: {'created' if created else 'exists'}")
    asyncio.run(apply_init_sql(args.admin_dsn, args.database))
    for service in migrate_all(args.admin_dsn, args.database, [s for s in args.services.split(",") if s]):
        print(f"migrated {service}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
