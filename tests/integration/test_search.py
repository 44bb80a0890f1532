"""Searching past results: `GET /v1/videos` with the extension filters (session_id, status,
category, q, created_after, created_before) next to OpenAI's after/limit/order, through HTTP on
the running service (SQLite) and through `VideoService.list` / `JobStore.list` on SQLite and a
real PostgreSQL."""

from __future__ import annotations

import itertools
import time
import uuid

import httpx
import pytest
from sqlalchemy import create_engine, event, inspect, text

from deployments.ingress.requests import MAX_QUERY_CHARS, request_models, validated
from deployments.ingress.services import build_services
from i2v_core.artifacts import ArtifactStore
from i2v_core.errors import APIError
from i2v_core.jobs import Job, JobStore, new_job_id
from i2v_testing.jobs import make_job
from i2v_testing.paths import EXAMPLES
from serve_app.config import AppConfig

_seeds = itertools.count(int(time.time()) % 1_000_000 * 100)


# --- through HTTP on the running service -------------------------------------------------


def _create(service, image: str, prompt: str, session: str, **extra) -> str:
    with (EXAMPLES / image).open("rb") as handle:
        video = service.client().videos.create(
            prompt=prompt,
            input_reference=handle,
            size="64x64",
            extra_body={
                "num_frames": 2,
                "num_inference_steps": 1,
                "seed": next(_seeds),
                "session_id": session,
                **extra,
            },
        )
    return video.id


def _ids(service, **params) -> list[str]:
    response = httpx.get(f"{service.base_url}/v1/videos", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return [v["id"] for v in response.json()["data"]]


def test_filters_over_http(service):
    session = f"search-{uuid.uuid4().hex[:8]}"
    cup = _create(service, "cup.jpg", "展示这个杯子旋转", session, category="still_life")
    cat = _create(service, "cat.jpg", "make the cat blink slowly", session, category="animal")
    flower = _create(service, "cat.jpg", "让这张图里的花慢慢绽放", session, category="landscape")
    client = service.client()
    for video_id in (cup, cat, flower):
        assert client.videos.poll(video_id).status == "completed"

    assert _ids(service, session_id=session) == [flower, cat, cup]
    assert _ids(service, session_id=session, order="asc") == [cup, cat, flower]
    # q: Chinese as a substring, English words in the instruction or the English prompt,
    # ASCII case-insensitive, every word must match.
    assert _ids(service, session_id=session, q="杯子") == [cup]
    assert _ids(service, session_id=session, q="杯子 旋转") == [cup]
    assert _ids(service, session_id=session, q="ROTATING") == [cup]  # the English prompt
    assert _ids(service, session_id=session, q="Blink") == [cat]
    assert _ids(service, session_id=session, q="慢慢") == [flower]
    assert _ids(service, session_id=session, q="杯子 blink") == []
    assert _ids(service, session_id=session, category="animal") == [cat]
    assert _ids(service, session_id=session, status="completed") == [flower, cat, cup]
    assert _ids(service, session_id=session, status="failed") == []
    assert _ids(service, session_id=f"{session}-other") == []
    created = service.jobs.get(cat).created_at
    assert _ids(service, session_id=session, created_after=int(created) + 3600) == []
    assert cat in _ids(
        service,
        session_id=session,
        created_after=int(created),
        created_before=int(created) + 3600,
    )
    # after pages through the filtered list.
    first = httpx.get(
        f"{service.base_url}/v1/videos", params={"session_id": session, "limit": 1}
    ).json()
    assert [v["id"] for v in first["data"]] == [flower] and first["has_more"]
    assert _ids(service, session_id=session, after=flower, limit=1) == [cat]
    assert _ids(service, session_id=session, after=cat, q="杯子") == [cup]
    # The openai client passes the filters through extra_query.
    page = client.videos.list(extra_query={"session_id": session, "q": "杯子"})
    assert [v.id for v in page.data] == [cup]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"status": "done"}, "status"),
        ({"category": "tree"}, "category"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "-1"}, "created_before"),
        ({"created_after": "nan"}, "created_after"),
        ({"q": "x" * (MAX_QUERY_CHARS + 1)}, "q"),
        ({"session_id": "a\x01b"}, "session_id"),
    ],
)
def test_bad_filters_are_400_in_openai_shape(service, params, param):
    before = service.snapshot()
    response = httpx.get(f"{service.base_url}/v1/videos", params=params, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]
    assert service.snapshot() == before


def test_unknown_after_is_404_and_an_empty_time_range_matches_nothing(service):
    response = httpx.get(
        f"{service.base_url}/v1/videos", params={"after": "video_nope", "q": "cup"}, timeout=30
    )
    assert response.status_code == 404, response.text
    assert response.json()["error"]["param"] == "after"
    response = httpx.get(
        f"{service.base_url}/v1/videos",
        params={"created_after": "200", "created_before": "100"},
        timeout=30,
    )
    assert response.status_code == 200 and response.json()["data"] == []


# --- JobStore.list and VideoService.list on SQLite and PostgreSQL ------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):
    """A database of its own: on the shared PostgreSQL server, a separate database, so that
    other tests emptying theirs cannot touch these rows."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('search') / 'jobs.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"search_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    yield server.url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


ROWS = [
    # key, instruction, English prompt, category, session, status
    (
        "cup",
        "展示这个杯子旋转",
        "A ceramic cup rotating on a turntable",
        "still_life",
        "s-a",
        "completed",
    ),
    ("flower", "让这张图里的花慢慢绽放", "Flowers Blooming slowly", "landscape", "s-a", "failed"),
    ("cat", "make the cat blink", "A cat blinking its eyes", "animal", "s-b", "completed"),
    ("zoom", "100% zoom_in", "Camera zooming in", "person", None, "completed"),
    ("dance", "杯子跳舞", "A cup dancing", "still_life", "s-b", "completed"),
]
BASE = 1_700_000_000.0  # created_at of the first row; each next one is 1000 s later


@pytest.fixture(scope="module")
def store(database_url):
    jobs = JobStore(database_url)
    ids: dict[str, str] = {}
    for index, (key, instruction, prompt, category, session, status) in enumerate(ROWS):
        job = jobs.create(
            Job(
                id=new_job_id(),
                created_at=BASE + 1000 * index,
                model="i2vgen-xl",
                instruction=instruction,
                prompt=prompt,
                negative_prompt="blurry",
                session_id=session,
                image_sha256="ab" * 32,
                image_name="ab" * 32 + ".png",
                category=category,
                category_scores={category: 1.0},
                params={"width": 64, "height": 64, "num_frames": 8, "fps": 8, "seed": index},
                plan={"prompt": prompt},
            )
        )
        jobs.start(job.id)
        if status == "completed":
            jobs.complete(job.id, {}, [])
        else:
            jobs.fail(job.id, "generation_failed", "boom")
        ids[key] = job.id
    jobs.ids = ids  # the test's names for its rows
    yield jobs
    jobs.close()


def keys(store, **filters) -> list[str]:
    by_id = {v: k for k, v in store.ids.items()}
    order = filters.pop("order", "desc")
    limit = filters.pop("limit", 100)
    after = filters.pop("after", None)
    rows, _ = store.list(after, limit, order, **filters)
    return [by_id[job.id] for job in rows]


def test_filter_columns_are_indexed(store):
    indexed = {
        column
        for index in inspect(store.engine).get_indexes("jobs")
        for column in index["column_names"]
    }
    assert {"session_id", "status", "category", "created_at"} <= indexed


def test_words_match_instruction_or_prompt(store):
    assert keys(store, words=["杯子"]) == ["dance", "cup"]
    assert keys(store, words=["旋转", "杯子"]) == ["cup"]
    assert keys(store, words=["ROTATING"]) == ["cup"]
    assert keys(store, words=["blooming"]) == ["flower"]
    assert keys(store, words=["cup", "杯子"]) == ["dance", "cup"]
    assert keys(store, words=["杯子", "blink"]) == []
    assert keys(store, words=["不存在"]) == []


def test_like_wildcards_in_words_are_literal(store):
    assert keys(store, words=["100%"]) == ["zoom"]
    assert keys(store, words=["%"]) == ["zoom"]
    assert keys(store, words=["_"]) == ["zoom"]


def test_filters_combine(store):
    assert keys(store, status="completed") == ["dance", "zoom", "cat", "cup"]
    assert keys(store, status="failed") == ["flower"]
    assert keys(store, category="still_life", session_id="s-b") == ["dance"]
    assert keys(store, session_id="s-a", order="asc") == ["cup", "flower"]
    assert keys(store, created_after=BASE + 1000, created_before=BASE + 3000) == [
        "zoom",
        "cat",
        "flower",
    ]
    assert keys(store, created_after=BASE + 3000.5) == ["dance"]
    assert keys(store, created_before=BASE - 1) == []
    assert keys(store, category="person", words=["杯子"]) == []


def test_after_pages_through_filtered_results(store):
    rows, more = store.list(None, 1, "desc", words=["杯子"])
    assert [r.id for r in rows] == [store.ids["dance"]] and more
    rows, more = store.list(rows[-1].id, 1, "desc", words=["杯子"])
    assert [r.id for r in rows] == [store.ids["cup"]] and not more
    # The anchor need not match the filters itself.
    assert keys(store, after=store.ids["cat"], category="still_life") == ["cup"]
    assert keys(store, after=store.ids["cat"], category="still_life", order="asc") == ["dance"]
    assert store.list("video_missing", 10, "desc", status="completed") is None


@pytest.fixture(scope="module")
def videos(store, tmp_path_factory):
    async def never(*_):
        raise AssertionError("listing never classifies, plans or enqueues")

    return build_services(
        AppConfig().ingress_config(),
        store,
        ArtifactStore(str(tmp_path_factory.mktemp("artifacts"))),
        classify=never,
        plan=never,
        enqueue=never,
    ).videos


LIST_QUERY = request_models(AppConfig().ingress_config()).list_query


def _list(videos, **query):
    return videos.list(validated(LIST_QUERY, query))


def test_video_service_list_parses_and_applies_filters(videos, store):
    page = _list(videos, q=" 杯子\u3000旋转 ", status="completed")
    assert [v.id for v in page.data] == [store.ids["cup"]]
    assert page.first_id == page.last_id == store.ids["cup"] and not page.has_more
    page = _list(videos, created_after=str(BASE + 4000))
    assert [v.id for v in page.data] == [store.ids["dance"]]
    empty = _list(videos, q="no such words", category="animal")
    assert empty.data == [] and empty.first_id is None and not empty.has_more
    page = _list(videos, order="asc", session_id="s-b")
    assert [v.id for v in page.data] == [store.ids["cat"], store.ids["dance"]]
    assert _list(videos, created_after="10", created_before="9").data == []


@pytest.mark.parametrize(
    ("filters", "param", "code"),
    [
        ({"status": "running"}, "status", "invalid_value"),
        ({"category": "cars"}, "category", "invalid_value"),
        ({"created_after": "abc"}, "created_after", "invalid_value"),
        ({"created_after": "-5"}, "created_after", "invalid_value"),
        ({"created_before": "inf"}, "created_before", "invalid_value"),
        ({"created_after": "nan"}, "created_after", "invalid_value"),
        ({"q": "杯" * (MAX_QUERY_CHARS + 1)}, "q", "string_above_max_length"),
        ({"session_id": "x" * 1000}, "session_id", "string_above_max_length"),
        ({"session_id": "a\x01b"}, "session_id", "invalid_value"),
        ({"limit": "0"}, "limit", "invalid_value"),
        ({"sort": "asc"}, "sort", "unknown_parameter"),
    ],
)
def test_list_query_rejects_bad_filters(filters, param, code):
    with pytest.raises(APIError) as caught:
        validated(LIST_QUERY, filters)
    assert (caught.value.status_code, caught.value.param, caught.value.code) == (400, param, code)


def test_words_match_where_words_begin(store):
    assert keys(store, words=["rot"]) == ["cup"]  # a prefix of "rotating"
    assert keys(store, words=["Bloom"]) == ["flower"]
    assert keys(store, words=["tating"]) == []  # inside a word: not a word of the text
    assert keys(store, words=["子跳"]) == ["dance"]  # any part of Chinese text
    assert keys(store, words=["杯"]) == ["dance", "cup"]
    assert keys(store, words=["杯舞"]) == []  # both characters, but not together


def test_word_search_goes_through_the_terms_index(tmp_path):
    """SQLite's plan for a word search looks terms up in the index, never scans them."""
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    for instruction, prompt in [("展示这个杯子旋转", "A cup rotating"), ("blink", "A cat")]:
        store.create(make_job(instruction=instruction, prompt=prompt))
    statements = []

    def capture(_connection, _cursor, statement, parameters, _context, _many):
        statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        rows, _ = store.list(None, 10, "desc", words=["rot", "杯子"])
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    assert [job.instruction for job in rows] == ["展示这个杯子旋转"]
    statement, parameters = next(s for s in statements if "search_terms" in s[0])
    with store.engine.connect() as connection:
        plan = [
            row[-1]
            for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        ]
    term_steps = [step for step in plan if "search_terms" in step]
    assert term_steps and all("INDEX" in step for step in term_steps), plan
    store.close()


def test_deleting_a_job_deletes_its_terms(store):
    job = store.create(make_job(instruction="ephemeral words", prompt="A vanishing cup"))
    assert [j.id for j in store.list(None, 10, "desc", words=["ephemeral"])[0]] == [job.id]
    store.delete(job.id)
    with store.engine.connect() as connection:
        left = connection.execute(
            text("SELECT count(*) FROM search_terms WHERE job_seq = :seq"), {"seq": job.seq}
        ).scalar()
    assert left == 0
