"""Alembic environment: migrates the job database the service is configured with. Run on every
start by `i2v_core.jobs.migrate`; `alembic -c i2v_core/migrations/alembic.ini` works too."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool, text

from i2v_core.jobs import Base

config = context.config
target_metadata = Base.metadata
_LOCK_KEY = 7_410_221  # any constant: serialises replicas migrating one PostgreSQL database


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    settings = config.get_section(config.config_ini_section, {})
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url:
        settings["sqlalchemy.url"] = url
    engine = engine_from_config(settings, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.begin() as connection:
        run_migrations(connection)
