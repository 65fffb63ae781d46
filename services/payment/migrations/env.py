"""Alembic environment: the payment schema, through the shared runner."""

from app.db.models import metadata
from app.settings import Settings
from billing_shared.migrations import run_migrations

run_migrations(metadata, Settings.service_name, Settings().database_url)
