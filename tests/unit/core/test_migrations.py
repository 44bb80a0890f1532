"""Schema migrations: Alembic builds the schema on an empty database (SQLite and PostgreSQL), and
the migrations describe exactly the models, so a model change without a migration fails here."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import column, inspect, table, text

from i2v_core.jobs import Base, Job, JobStore, make_engine, migrate
from i2v_testing.jobs import make_job


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
        assert {"jobs", "session_turns", "api_keys", "alembic_version"} <= tables
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


def test_upgrade_gives_existing_jobs_their_search_terms_and_the_open_project(empty_url):
    engine = make_engine(empty_url)
    migrate(engine, revision="0002")  # a database from before search terms and projects
    job = make_job(instruction="展示这个杯子旋转", prompt="A cup rotating")
    present = [c["name"] for c in inspect(engine).get_columns("jobs") if c["name"] != "seq"]
    values = {name: getattr(job, name) for name in present}
    values.update(created_at=1.0, updated_at=1.0, status="completed", progress=100, attempts=1)
    with engine.begin() as connection:  # the table as it was then, not as the model is now
        then = table("jobs", *(column(name, Job.__table__.c[name].type) for name in present))
        connection.execute(then.insert().values(**values))
    engine.dispose()

    store = JobStore(empty_url)  # upgrades to the newest revision on start
    for words in (["rot"], ["杯子"], ["旋转", "cup"]):
        assert [j.id for j in store.list(None, 10, "desc", words=words)[0]] == [job.id], words
    assert store.get(job.id).project == ""  # rows from before projects are the open project's
    store.close()
