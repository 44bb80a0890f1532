"""Schema migrations: Alembic builds the schema on an empty database (SQLite and PostgreSQL), and
the migrations describe exactly the models, so a model change without a migration fails here."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from serve_app.jobs import Base, JobStore, make_engine, migrate


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    engine = make_engine(server.url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    yield server.url


def test_migrations_build_the_models_schema(empty_url):
    store = JobStore(empty_url)
    with store.engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        assert {"jobs", "session_turns", "alembic_version"} <= tables
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == [], "the models changed: add an Alembic revision for them"
    store.close()


def test_migrating_twice_is_a_no_op(empty_url):
    engine = make_engine(empty_url)
    migrate(engine)
    migrate(engine)
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    assert len(versions) == 1
    engine.dispose()
