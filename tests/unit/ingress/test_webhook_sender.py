"""Webhooks without Ray: the URL guard against server-side request forgery, the retry schedule,
the Standard Webhooks signature (checked with the specification's own library), the queue's claims
shared by several senders on one SQLite store, retries and giving up, and the HTTP routes (admin
settings, `webhook_url` on create, the deliveries list) over real services."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook, WebhookVerificationError

from deployments.ingress.config import WebhookConfig
from deployments.ingress.routes import build_api
from deployments.ingress.services import build_services
from deployments.ingress.url_guard import RefusedURL, UrlGuard
from deployments.ingress.webhooks import (
    WebhookSender,
    body_of,
    retry_delay,
    signed_headers,
)
from i2v_core.artifacts import ArtifactStore
from i2v_core.errors import APIError
from i2v_core.jobs import Base, JobStore, WebhookDelivery
from i2v_core.video_object import video_payload
from i2v_core.webhooks import WebhookOutbox, WebhookStore, new_secret
from i2v_testing.jobs import make_job
from serve_app.config import AppConfig

HOOK = "http://127.0.0.1:9/hook"  # never connected to: the tests' transport answers


def _resolver(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("Name or service not known")
        return table[host]

    return resolve


# --- the URL guard ------------------------------------------------------------------------------

NAMES = {
    "hooks.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "internal.example": ["10.1.2.3"],
    "metadata.example": ["169.254.169.254"],
    "split.example": ["93.184.216.34", "127.0.0.1"],  # one bad address is enough
    "v6-local.example": ["fd12:3456::1"],
    "mapped.example": ["::ffff:192.168.0.1"],
}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://127.1.2.3:8080/",
        "http://10.0.0.1/hook",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",  # shared address space (carrier-grade NAT)
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://[ff02::1]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
        "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
        "http://[2002:c0a8:101::1]/",  # 6to4 of 192.168.1.1
        "http://internal.example/hook",
        "http://metadata.example/",
        "http://split.example/",
        "https://v6-local.example/",
        "http://mapped.example/",
        "http://nowhere.example/",  # does not resolve
        "ftp://hooks.example/",
        "file:///etc/passwd",
        "http:///path-only",
        "http://user:secret@hooks.example/",
        "http://hooks.example/a b",
        "http://hooks.example/" + "a" * 100,  # over max_chars
    ],
)
def test_the_guard_refuses_what_is_not_a_public_http_address(url):
    guard = UrlGuard(max_chars=80, resolver=_resolver(NAMES))
    with pytest.raises(RefusedURL):
        guard.check(url)


def test_the_guard_accepts_public_addresses_and_the_allowed_networks():
    guard = UrlGuard(max_chars=200, resolver=_resolver(NAMES))
    target = guard.check("https://hooks.example/hook?x=1")
    assert [str(a) for a in target.addresses] == NAMES["hooks.example"]
    assert guard.check("http://8.8.8.8:8080/").addresses[0].exploded == "8.8.8.8"
    assert guard.check("http://[2001:4860:4860::8888]/")

    allowing = UrlGuard(["127.0.0.1/32", "10.1.0.0/16"], resolver=_resolver(NAMES))
    assert allowing.check("http://127.0.0.1:8123/hook")
    assert allowing.check("http://internal.example/hook")
    for refused in ("http://127.0.0.2/", "http://[::1]/", "http://metadata.example/"):
        with pytest.raises(RefusedURL):
            allowing.check(refused)


def test_the_refusal_says_what_the_name_resolved_to():
    guard = UrlGuard(resolver=_resolver(NAMES))
    with pytest.raises(RefusedURL, match=r"10\.1\.2\.3 is private \(internal\.example resolves"):
        guard.check("http://internal.example/")


def test_a_send_goes_to_the_checked_address_with_the_original_host():
    guard = UrlGuard(resolver=_resolver(NAMES))
    url, host, extensions = guard.check("https://hooks.example:8443/in?a=1").pinned()
    assert str(url) == "https://93.184.216.34:8443/in?a=1"
    assert host == {"host": "hooks.example:8443"}
    assert extensions == {"sni_hostname": "hooks.example"}  # the certificate is checked by name
    url, host, extensions = guard.check("http://hooks.example/in").pinned()
    assert (str(url), host, extensions) == (
        "http://93.184.216.34/in",
        {"host": "hooks.example"},
        {},
    )


def test_the_config_checks_its_networks_and_lease():
    with pytest.raises(ValueError):
        WebhookConfig(allow_networks=["not-a-network"])
    with pytest.raises(ValueError):
        WebhookConfig(timeout_s=30, lease_s=10)
    with pytest.raises(ValueError):
        WebhookConfig(retry_schedule_s=[5, -1])


# --- schedule and signature ----------------------------------------------------------------------


def test_the_default_schedule_follows_the_standard_webhooks_guidance():
    config = WebhookConfig(retry_jitter=0)
    waits = [retry_delay(config, attempt) for attempt in range(1, 9)]
    assert waits == [5, 300, 1800, 7200, 18000, 36000, 36000, None]  # 8 attempts, ~28 h


def test_retry_waits_are_jittered_within_bounds():
    config = WebhookConfig(retry_schedule_s=[100, 200], retry_jitter=0.1)
    assert retry_delay(config, 1, rng=lambda: 0.0) == pytest.approx(90)
    assert retry_delay(config, 1, rng=lambda: 0.999999) == pytest.approx(110, rel=1e-4)
    assert 180 <= retry_delay(config, 2) <= 220
    assert retry_delay(config, 3) is None


def test_the_signature_verifies_with_the_standard_webhooks_library():
    secret = new_secret()
    assert secret.startswith("whsec_")
    body = body_of({"type": "video.completed", "timestamp": "now", "data": {"id": "v", "é": 1}})
    headers = signed_headers(secret, "msg_1", body, datetime.now(UTC))
    assert headers["content-type"] == "application/json"
    assert Webhook(secret).verify(body, headers)["data"] == {"id": "v", "é": 1}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b'"v"', b'"w"'), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


# --- the queue -----------------------------------------------------------------------------------


class Receiver:
    """An httpx transport standing in for receivers: answers `statuses` in turn (then 200), and
    keeps every request it got."""

    def __init__(self, *statuses: int, error: Exception | None = None):
        self.statuses = list(statuses)
        self.error = error
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            if self.error is not None:
                raise self.error
            status = self.statuses.pop(0) if self.statuses else 200
        return httpx.Response(status, text="ok")

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def _store(tmp_path) -> JobStore:
    return JobStore(f"sqlite:///{tmp_path / 'jobs.db'}", on_final=WebhookOutbox(video_payload))


@pytest.fixture(params=["sqlite", "postgresql"])
def jobs(request, tmp_path):
    """The queue's tests on a SQLite file and on a real PostgreSQL server."""
    if request.param == "sqlite":
        store = _store(tmp_path)
    else:
        url = request.getfixturevalue("postgres_server").url
        store = JobStore(url, on_final=WebhookOutbox(video_payload))
    yield store
    with store.engine.begin() as connection:  # PostgreSQL is shared by the session: empty it
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    store.close()


def _ended_job(jobs: JobStore, project: str = "alice", url: str | None = HOOK) -> str:
    job = jobs.create(make_job(project=project, webhook_url=url))
    jobs.start(job.id)
    jobs.complete(job.id, {"generate": 0.1}, [])
    return job.id


def _sender(jobs: JobStore, receiver: Receiver, guard: UrlGuard | None = None, **config):
    settings = WebhookConfig(
        **{"retry_schedule_s": [0, 0], "retry_jitter": 0, "allow_networks": ["127.0.0.1/32"]}
        | config
    )
    guard = guard or UrlGuard(settings.allow_networks)
    return WebhookSender(WebhookStore(jobs), settings, guard, client=receiver.client())


def _deliveries(jobs: JobStore, job_id: str):
    return WebhookStore(jobs).deliveries_of(job_id, "alice")


def test_a_delivery_is_retried_with_the_same_bytes_and_id_until_a_2xx(jobs):
    secret = WebhookStore(jobs).configure("alice").secret
    job_id = _ended_job(jobs)
    receiver = Receiver(500, 503)
    sender = _sender(jobs, receiver)
    for _ in range(3):
        assert sender.send_due() == 1
    assert sender.send_due() == 0

    [(delivery, attempts)] = _deliveries(jobs, job_id)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 3, "HTTP 503")
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 500), (2, 503), (3, 200)]
    assert {r.content for r in receiver.requests} == {body_of(delivery.payload)}
    assert {r.headers["webhook-id"] for r in receiver.requests} == {delivery.id}
    for request in receiver.requests:
        event = Webhook(secret).verify(request.content, dict(request.headers))
        assert event["type"] == "video.completed" and event["data"]["id"] == job_id
        assert event["data"]["status"] == "completed" and event["data"]["object"] == "video"
        assert request.headers["host"] == "127.0.0.1:9"


def test_the_retry_waits_for_its_turn(jobs):
    WebhookStore(jobs).configure("alice")
    job_id = _ended_job(jobs)
    sender = _sender(jobs, Receiver(500), retry_schedule_s=[60])
    before = time.time()
    assert sender.send_due() == 1
    assert sender.send_due() == 0  # not due for a minute
    [(delivery, _)] = _deliveries(jobs, job_id)
    assert delivery.status == "pending" and delivery.next_attempt_at >= before + 60


def test_a_delivery_fails_after_its_schedule_runs_out(jobs):
    WebhookStore(jobs).configure("alice")
    job_id = _ended_job(jobs)
    sender = _sender(jobs, Receiver(error=httpx.ConnectError("connection refused")))
    while sender.send_due():
        pass
    [(delivery, attempts)] = _deliveries(jobs, job_id)
    assert (delivery.status, delivery.attempts) == ("failed", 3)  # the first and two retries
    assert delivery.next_attempt_at is None
    assert delivery.last_error.startswith("gave up after 3 attempts; the last: ConnectError")
    assert [a.status_code for a in attempts] == [None, None, None]


def test_a_url_refused_at_send_fails_at_once(jobs):
    """What a name resolves to may change after the URL was accepted: checked again per send."""
    WebhookStore(jobs).configure("alice")
    job_id = _ended_job(jobs, url="http://hooks.example/in")
    guard = UrlGuard(resolver=_resolver({"hooks.example": ["10.0.0.7"]}))
    receiver = Receiver()
    sender = _sender(jobs, receiver, guard=guard, retry_schedule_s=[0, 0, 0])
    assert sender.send_due() == 1
    assert sender.send_due() == 0
    [(delivery, attempts)] = _deliveries(jobs, job_id)
    assert delivery.status == "failed" and len(attempts) == 1
    assert "refused" in delivery.last_error and "10.0.0.7 is private" in delivery.last_error
    assert receiver.requests == []


def test_a_project_without_a_secret_gets_no_unsigned_event(jobs):
    job_id = _ended_job(jobs)  # a per-job URL, but the project never got a secret
    receiver = Receiver()
    assert _sender(jobs, receiver).send_due() == 1
    [(delivery, _)] = _deliveries(jobs, job_id)
    assert delivery.status == "failed" and "no webhook secret" in delivery.last_error
    assert receiver.requests == []


def test_two_senders_never_send_one_attempt_twice(jobs):
    WebhookStore(jobs).configure("alice")
    ids = [_ended_job(jobs) for _ in range(24)]
    receiver = Receiver()
    senders = [_sender(jobs, receiver, max_concurrent=4) for _ in range(2)]
    start = threading.Barrier(len(senders))

    def drain(sender: WebhookSender) -> None:
        start.wait()
        while sender.send_due():
            pass

    threads = [threading.Thread(target=drain, args=(s,)) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    sent = Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert len(sent) == len(ids) and set(sent.values()) == {1}
    for job_id in ids:
        [(delivery, attempts)] = _deliveries(jobs, job_id)
        assert (delivery.status, delivery.attempts, len(attempts)) == ("delivered", 1, 1)


def test_a_claim_excludes_others_until_its_lease_lapses(jobs):
    """A sender that claimed and died (no attempt recorded) leaves the delivery to another one
    once its lease has passed."""
    WebhookStore(jobs).configure("alice")
    job_id = _ended_job(jobs)
    store, other = WebhookStore(jobs), WebhookStore(jobs)
    now = time.time()
    [claim] = store.claim_due(now, 10, lease_s=30)
    assert other.claim_due(now, 10, lease_s=30) == []
    assert other.claim_due(now + 29, 10, lease_s=30) == []
    [again] = other.claim_due(now + 31, 10, lease_s=30)
    assert again.delivery.id == claim.delivery.id and again.attempt == 1
    # The first sender, back late, may not schedule a retry over the second's claim.
    from i2v_core.webhooks import AttemptResult

    lapsed = AttemptResult(now, 0.1, 500, "HTTP 500")
    assert not store.record(claim, lapsed, "retry", next_attempt_at=now + 5)
    assert other.record(again, AttemptResult(now, 0.1, 200, None), "delivered")
    [(delivery, attempts)] = _deliveries(jobs, job_id)
    assert delivery.status == "delivered" and len(attempts) == 2


def test_the_background_sender_delivers_soon_after_the_job_ends(tmp_path):
    jobs = _store(tmp_path)
    WebhookStore(jobs).configure("alice")
    receiver = Receiver()
    sender = _sender(jobs, receiver, poll_s=0.05).start()
    try:
        job_id = _ended_job(jobs)
        deadline = time.monotonic() + 10
        while _deliveries(jobs, job_id)[0][0].status != "delivered":
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        sender.stop()
    [(delivery, _)] = _deliveries(jobs, job_id)
    assert delivery.delivered_at - delivery.created_at < 5


def test_a_jobs_end_wakes_the_sender_without_waiting_for_the_poll(tmp_path, redis_server):
    from i2v_core.events import JobEventPublisher

    jobs = JobStore(
        f"sqlite:///{tmp_path / 'jobs.db'}",
        on_final=WebhookOutbox(video_payload),
        on_change=JobEventPublisher(redis_server.url),
    )
    WebhookStore(jobs).configure("alice")
    receiver = Receiver()
    settings = WebhookConfig(poll_s=60, allow_networks=["127.0.0.1/32"])
    sender = WebhookSender(
        WebhookStore(jobs),
        settings,
        UrlGuard(settings.allow_networks),
        client=receiver.client(),
        redis_url=redis_server.url,
    ).start()
    try:
        time.sleep(0.5)  # subscribed
        job_id = _ended_job(jobs)
        deadline = time.monotonic() + 10
        while _deliveries(jobs, job_id)[0][0].status != "delivered":
            assert time.monotonic() < deadline, "not woken: the poll is a minute away"
            time.sleep(0.02)
    finally:
        sender.stop()


def test_every_final_status_is_an_event_and_the_project_default_applies(jobs):
    store = WebhookStore(jobs)
    store.configure("alice", "http://127.0.0.1:9/default")
    completed = _ended_job(jobs, url=None)
    failed = jobs.create(make_job(project="alice"))
    jobs.fail(failed.id, "generation_failed", "boom")
    cancelled = jobs.create(make_job(project="alice"))
    jobs.fail(cancelled.id, "cancelled", "Cancelled by a DELETE request.")
    quiet = jobs.create(make_job(project="bob"))
    jobs.fail(quiet.id, "generation_failed", "boom")  # bob has no webhook: no event
    events = {
        job_id: [(d.event_type, d.url) for d, _ in store.deliveries_of(job_id, "alice")]
        for job_id in (completed, failed.id, cancelled.id)
    }
    assert events == {
        completed: [("video.completed", "http://127.0.0.1:9/default")],
        failed.id: [("video.failed", "http://127.0.0.1:9/default")],
        cancelled.id: [("video.cancelled", "http://127.0.0.1:9/default")],
    }
    with jobs._session() as session:
        assert session.query(WebhookDelivery).count() == 3


# --- the HTTP routes -----------------------------------------------------------------------------

ADMIN = "sk-admin-webhooks-0123456789"


async def _unavailable(*_):
    raise APIError(503, "not in this test", code="unavailable")


async def _ready() -> dict[str, bool]:
    return {"database": True}


def _api(tmp_path, redis_url: str, admin: str | None) -> tuple[TestClient, JobStore]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = AppConfig.model_validate(
        {"queue": {"redis_url": redis_url}, "webhooks": {"allow_networks": ["127.0.0.1/32"]}}
    ).ingress_config()
    jobs = _store(tmp_path)
    services = build_services(
        config,
        jobs,
        ArtifactStore(str(tmp_path / "artifacts")),
        classify=_unavailable,
        plan=_unavailable,
        enqueue=_unavailable,
        admin_secret=admin,
    )
    return TestClient(build_api(config, services, _ready)), jobs


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(tmp_path, redis_server):
    client, jobs = _api(tmp_path, redis_server.url, ADMIN)
    alice = client.post(
        "/v1/admin/keys", json={"name": "a", "project": "alice"}, headers=_bearer(ADMIN)
    )
    bob = client.post(
        "/v1/admin/keys", json={"name": "b", "project": "bob"}, headers=_bearer(ADMIN)
    )
    return client, jobs, alice.json()["key"], bob.json()["key"]


def test_the_admin_sets_a_projects_webhook_and_sees_the_secret_once(keyed):
    client, jobs, alice, _ = keyed
    path = "/v1/admin/projects/alice/webhook"
    assert client.get(path, headers=_bearer(ADMIN)).json() == {
        "object": "project.webhook",
        "project": "alice",
        "url": None,
        "has_secret": False,
        "updated_at": None,
        "secret": None,
    }
    first = client.put(path, json={"url": "http://127.0.0.1:9/a"}, headers=_bearer(ADMIN)).json()
    assert first["secret"].startswith("whsec_") and first["url"] == "http://127.0.0.1:9/a"
    again = client.put(path, json={}, headers=_bearer(ADMIN)).json()
    assert again["secret"] is None and again["url"] == "http://127.0.0.1:9/a"  # url kept
    shown = client.get(path, headers=_bearer(ADMIN))
    assert shown.json()["has_secret"] is True and first["secret"] not in shown.text
    rotated = client.put(path, json={"url": None, "rotate_secret": True}, headers=_bearer(ADMIN))
    assert rotated.json()["secret"] not in (None, first["secret"]) and rotated.json()["url"] is None
    assert WebhookStore(jobs).secret_of("alice") == rotated.json()["secret"]

    refused = client.put(path, json={"url": "http://10.0.0.1/"}, headers=_bearer(ADMIN))
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "url"
    assert refused.json()["error"]["code"] == "webhook_url_refused"
    assert client.put(path, json={"url": 5}, headers=_bearer(ADMIN)).status_code == 400
    assert client.put(path, json={}, headers=_bearer(alice)).status_code == 403
    assert (
        client.get("/v1/admin/projects/bad name/webhook", headers=_bearer(ADMIN)).status_code == 400
    )


def _create(client: TestClient, key: str | None, url: str):
    headers = _bearer(key) if key else {}
    return client.post("/v1/videos", data={"prompt": "spin", "webhook_url": url}, headers=headers)


def test_webhook_url_on_create_is_refused_without_keys_a_secret_or_a_public_address(
    keyed, tmp_path, redis_server
):
    client, jobs, alice, _ = keyed
    missing = _create(client, alice, "http://127.0.0.1:9/hook")
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "webhook_secret_missing"
    client.put("/v1/admin/projects/alice/webhook", json={}, headers=_bearer(ADMIN))
    for url in ("http://10.0.0.1/hook", "http://169.254.169.254/", "http://[::1]/", "gopher://x/"):
        refused = _create(client, alice, url)
        assert refused.status_code == 400, url
        assert refused.json()["error"]["param"] == "webhook_url"
        assert refused.json()["error"]["code"] == "webhook_url_refused"
    assert jobs.count() == 0  # nothing written
    # An allowed URL passes the check; the next one finds this form has no picture.
    accepted = _create(client, alice, "http://127.0.0.1:9/hook")
    assert accepted.json()["error"]["param"] == "input_reference"

    open_client, _ = _api(tmp_path / "open", redis_server.url, None)
    unavailable = _create(open_client, None, "http://127.0.0.1:9/hook")
    assert unavailable.status_code == 400
    assert unavailable.json()["error"]["code"] == "webhooks_unavailable"


def test_the_deliveries_list_is_the_projects_own(keyed):
    client, jobs, alice, bob = keyed
    WebhookStore(jobs).configure("alice")
    job_id = _ended_job(jobs)
    receiver = Receiver(500)
    sender = _sender(jobs, receiver)
    sender.send_due()
    sender.send_due()
    answer = client.get(f"/v1/videos/{job_id}/webhook_deliveries", headers=_bearer(alice))
    assert answer.status_code == 200
    [delivery] = answer.json()["data"]
    assert delivery["object"] == "webhook_delivery" and delivery["status"] == "delivered"
    assert delivery["event_type"] == "video.completed" and delivery["attempts"] == 2
    assert [a["status_code"] for a in delivery["attempts_detail"]] == [500, 200]
    assert delivery["id"] == receiver.requests[0].headers["webhook-id"]
    hidden = client.get(f"/v1/videos/{job_id}/webhook_deliveries", headers=_bearer(bob))
    missing = client.get("/v1/videos/video_nope/webhook_deliveries", headers=_bearer(bob))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["code"] == "video_not_found"


def test_the_document_describes_the_webhook_routes_and_field(keyed):
    client, *_ = keyed
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    deliveries = paths["/v1/videos/{video_id}/webhook_deliveries"]["get"]["responses"]
    assert {"200", "400", "401", "404", "429"} <= set(deliveries)
    admin = paths["/v1/admin/projects/{project}/webhook"]
    assert {"get", "put"} <= set(admin) and "403" in admin["put"]["responses"]
    form = paths["/v1/videos"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert form["schema"]["properties"]["webhook_url"]["maxLength"] == 2048
    schemas = document["components"]["schemas"]
    assert {"WebhookDeliveryList", "WebhookDeliveryInfo", "ProjectWebhook"} <= set(schemas)
