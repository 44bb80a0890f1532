"""Webhooks through the real service: a keyed Ingress beside the session's open one (sharing its
generator, job store and queue; both run a webhook sender over the same outbox) and a receiver on
127.0.0.1 that verifies every request with the Standard Webhooks library. The test service allows
127.0.0.1 and retries every 0.5 s (tests/conftest.py)."""

from __future__ import annotations

import itertools
import secrets
import time

import httpx
import openai
import pytest

from i2v_testing.keyed import deploy_keyed_ingress, new_key, remove_keyed_ingress
from i2v_testing.paths import EXAMPLES
from i2v_testing.webhooks import WebhookReceiver

_seeds = itertools.count(int(time.time()) % 100_000 * 10 + 7)
KEYED_APP = "i2v-auth"


class Keyed:
    def __init__(self, base_url: str, admin: str):
        self.base_url = base_url
        self.admin = admin

    def admin_call(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin}"}
        return httpx.request(
            method, f"{self.base_url}{path}", headers=headers, timeout=30, **kwargs
        )

    def project(self, name: str, **body) -> tuple[openai.OpenAI, str, str]:
        """A key of a new project and the project's webhook secret (set with `body`)."""
        created = self.admin_call("PUT", f"/v1/admin/projects/{name}/webhook", json=body)
        assert created.status_code == 200, created.text
        key = new_key(self.base_url, self.admin, project=name)["key"]
        client = openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=key, max_retries=0)
        return client, key, created.json()["secret"]

    def deliveries(self, key: str, video_id: str) -> httpx.Response:
        return httpx.get(
            f"{self.base_url}/v1/videos/{video_id}/webhook_deliveries",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )


@pytest.fixture(scope="module")
def keyed(service):
    admin = f"sk-admin-{secrets.token_urlsafe(24)}"
    base_url = deploy_keyed_ingress(
        service.config, service.serve_file.name, service.base_url, admin, max_active_jobs=8
    )
    yield Keyed(base_url, admin)
    remove_keyed_ingress()


def small_job(client: openai.OpenAI, **extra):
    with (EXAMPLES / "cup.jpg").open("rb") as handle:
        return client.videos.create(
            prompt="展示这个杯子旋转",
            input_reference=handle,
            size="64x64",
            extra_body={"num_frames": 4, "num_inference_steps": 2, "seed": next(_seeds), **extra},
        )


def wait_delivered(keyed: Keyed, key: str, video_id: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        answer = keyed.deliveries(key, video_id)
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        if data and all(d["status"] != "pending" for d in data):
            return answer.json()
        assert time.monotonic() < deadline, f"still pending: {data}"
        time.sleep(0.2)


def test_each_job_is_one_accepted_signed_event_after_two_500s(keyed):
    twice_500 = WebhookReceiver(answer=lambda event, earlier: 500 if earlier < 2 else 200)
    with twice_500 as receiver:
        client, key, secret = keyed.project(
            f"hooks-{secrets.token_hex(4)}", url=receiver.url("/default")
        )
        assert secret.startswith("whsec_")
        receiver.secret = secret
        own = small_job(client, webhook_url=receiver.url("/own"))
        default = small_job(client)  # the project's default URL
        for video in (own, default):
            assert client.videos.poll(video.id, poll_interval_ms=200).status == "completed"
        for video, path in ((own, "/own"), (default, "/default")):
            listing = wait_delivered(keyed, key, video.id)
            [delivery] = listing["data"]
            assert delivery["status"] == "delivered" and delivery["event_type"] == "video.completed"
            assert delivery["url"] == receiver.url(path) and delivery["attempts"] == 3
            assert [a["status_code"] for a in delivery["attempts_detail"]] == [500, 500, 200]
            assert [a["attempt"] for a in delivery["attempts_detail"]] == [1, 2, 3]
            assert delivery["delivered_at"] >= delivery["created_at"]
            requests = receiver.requests_for(video.id)
            assert [r.status for r in requests] == [500, 500, 200]  # every one verified
            assert {r.webhook_id for r in requests} == {delivery["id"]}
            assert {r.path for r in requests} == {path}
            [accepted] = [r for r in requests if r.accepted]
            event = accepted.event
            assert event["type"] == "video.completed" and event["data"]["status"] == "completed"
            assert event["data"]["id"] == video.id and event["data"]["object"] == "video"
        time.sleep(1.5)  # nothing more arrives after the 2xx
        assert sorted(r.event["data"]["id"] for r in receiver.accepted()) == sorted(
            [own.id, default.id]
        )
        assert all(r.event is not None for r in receiver.received)  # all signatures valid


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data/", "http://[::1]/"]
)
def test_a_private_address_is_refused_and_nothing_is_written(keyed, service, url):
    project = f"refused-{secrets.token_hex(4)}"
    client, _, _ = keyed.project(project)
    before = service.snapshot()
    with pytest.raises(openai.BadRequestError) as caught:
        small_job(client, webhook_url=url)
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == "webhook_url"
    assert caught.value.body["code"] == "webhook_url_refused"
    assert service.snapshot() == before
    default = keyed.admin_call("PUT", f"/v1/admin/projects/{project}/webhook", json={"url": url})
    assert default.status_code == 400 and default.json()["error"]["param"] == "url"
    shown = keyed.admin_call("GET", f"/v1/admin/projects/{project}/webhook").json()
    assert shown["url"] is None and shown["has_secret"] is True and shown["secret"] is None


def _replica_actor(app: str, deployment: str):
    import ray

    [actor] = [
        a
        for a in ray._private.state.actors().values()
        if a["ActorClassName"] == f"ServeReplica:{app}:{deployment}" and a["State"] == "ALIVE"
    ]
    return ray.get_actor(actor["Name"], namespace="serve")


def _wait_ready(url: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready again")


def test_a_pending_delivery_survives_restarts_of_the_generator_and_a_sender(keyed, service):
    """The receiver fails every attempt until the Generator replica (which wrote the event when
    it ended the job) and the keyed Ingress replica (one of the two senders) have been killed;
    then the delivery completes, once."""
    import ray

    released = False
    with WebhookReceiver(answer=lambda event, earlier: 200 if released else 500) as receiver:
        client, key, receiver.secret = keyed.project(f"restart-{secrets.token_hex(4)}")
        video = small_job(client, webhook_url=receiver.url())
        assert client.videos.poll(video.id, poll_interval_ms=200).status == "completed"
        receiver.wait_until(lambda: receiver.requests_for(video.id), 30, "a first attempt")
        [delivery] = keyed.deliveries(key, video.id).json()["data"]
        assert delivery["status"] == "pending" and delivery["attempts"] >= 1

        ray.kill(_replica_actor(service.serve_file.name, "Generator"), no_restart=True)
        ray.kill(_replica_actor(KEYED_APP, "Ingress"), no_restart=True)
        failed_before = len(receiver.requests_for(video.id))
        released = True

        _wait_ready(keyed.base_url)
        listing = wait_delivered(keyed, key, video.id)
        [delivery] = listing["data"]
        assert delivery["status"] == "delivered"
        codes = [a["status_code"] for a in delivery["attempts_detail"]]
        assert codes.count(200) == 1 and codes[-1] == 200 and set(codes[:-1]) == {500}
        time.sleep(1.5)
        requests = receiver.requests_for(video.id)
        assert [r.status for r in requests].count(200) == 1
        assert len(requests) >= failed_before + 1
        assert {r.webhook_id for r in requests} == {delivery["id"]}
    _wait_ready(service.base_url)  # a new Generator replica is up for the tests after this one
