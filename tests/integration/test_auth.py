"""API keys, projects and per-key limits through the real service and the official `openai`
client. A second Ingress with auth on (its admin key in its environment, as a Kubernetes secret
would put it) is deployed next to the session's open one, sharing its classifier, router,
generator, job store and queue: the open project's videos must stay invisible to keys too."""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from i2v_testing.conformance import run_schemathesis, summary
from i2v_testing.keyed import deploy_keyed_ingress, new_key, remove_keyed_ingress
from i2v_testing.paths import EXAMPLES

_seeds = itertools.count(int(time.time()) % 100_000 * 10)


@dataclass
class Keyed:
    base_url: str  # the keyed ingress, e.g. http://127.0.0.1:8000/auth
    admin: str

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"}

    def new_key(self, **body) -> dict:
        return new_key(self.base_url, self.admin, **body)

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def keyed(service):
    admin = f"sk-admin-{secrets.token_urlsafe(24)}"
    base_url = deploy_keyed_ingress(
        service.config,
        service.serve_file.name,
        service.base_url,
        admin,
        requests_per_minute=120,
        max_active_jobs=4,
    )
    yield Keyed(base_url, admin)
    remove_keyed_ingress()


def small_job(client: openai.OpenAI, **extra):
    with (EXAMPLES / "cup.jpg").open("rb") as handle:
        return client.videos.create(
            prompt="展示这个杯子旋转",
            input_reference=handle,
            size="64x64",
            extra_body={"num_frames": 8, "num_inference_steps": 2, "seed": next(_seeds), **extra},
        )


def error_of(response: httpx.Response) -> dict:
    return response.json()["error"]


def test_two_projects_cannot_see_each_other(keyed, service):
    alice_key, bob_key = keyed.new_key(project="alice"), keyed.new_key(project="bob")
    alice, bob = keyed.client(alice_key["key"]), keyed.client(bob_key["key"])
    open_video = service.client().videos.poll(small_job(service.client()).id)  # project ""

    video = alice.videos.poll(small_job(alice, session_id="shared-name").id)
    assert video.status == "completed"
    assert [v.id for v in alice.videos.list().data] == [video.id]
    assert bob.videos.list().data == []
    assert open_video.id not in [v.id for v in alice.videos.list(extra_query={"q": "杯子"}).data]

    # Another project's id reads exactly as an id that does not exist.
    for call in (
        lambda c, i: c.videos.retrieve(i),
        lambda c, i: c.videos.download_content(i),
        lambda c, i: c.videos.remix(i, prompt="slower"),
        lambda c, i: c.videos.delete(i),
    ):
        with pytest.raises(openai.NotFoundError) as theirs:
            call(bob, video.id)
        with pytest.raises(openai.NotFoundError) as missing:
            call(bob, "video_" + "0" * 32)
        assert theirs.value.body["code"] == missing.value.body["code"] == "video_not_found"
        assert theirs.value.body["message"].replace(video.id, "X") == missing.value.body[
            "message"
        ].replace("video_" + "0" * 32, "X")
    with pytest.raises(openai.NotFoundError):
        alice.videos.retrieve(open_video.id)
    # Bob's session of the same name holds no picture of Alice's.
    response = httpx.post(
        f"{keyed.base_url}/v1/sessions/shared-name/messages",
        json={"text": "make it spin"},
        headers={"Authorization": f"Bearer {bob_key['key']}"},
        timeout=60,
    )
    assert response.status_code == 400 and error_of(response)["param"] == "input_reference"
    assert alice.videos.retrieve(video.id).status == "completed"  # untouched by Bob's tries


def test_two_keys_of_one_project_share_it(keyed):
    first, second = keyed.new_key(project="shared"), keyed.new_key(project="shared")
    video = small_job(keyed.client(first["key"]))
    assert keyed.client(second["key"]).videos.retrieve(video.id).id == video.id
    keyed.client(second["key"]).videos.delete(video.id)


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer sk-i2v-not-a-key", "sk-i2v-x", "Bearer a b"],
)
def test_missing_or_bad_keys_are_401(keyed, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in (
        ("GET", "/v1/videos"),
        ("GET", "/v1/videos/video_x"),
        ("POST", "/v1/videos"),
    ):
        response = httpx.request(method, f"{keyed.base_url}{path}", headers=headers, timeout=30)
        assert response.status_code == 401, (authorization, path, response.text)
        assert error_of(response)["code"] == "invalid_api_key"
    assert httpx.get(f"{keyed.base_url}/healthz", headers=headers).status_code == 200
    assert httpx.get(f"{keyed.base_url}/openapi.json", headers=headers).status_code == 200


def test_revoked_key_is_refused_at_once_and_secrets_are_never_shown_again(keyed):
    created = keyed.new_key(name="to-revoke")
    client = keyed.client(created["key"])
    assert client.videos.list().data == []
    listed = httpx.get(f"{keyed.base_url}/v1/admin/keys", headers=keyed.admin_headers(), timeout=30)
    assert listed.status_code == 200
    assert created["key"] not in listed.text and "key" not in listed.json()["data"][0]
    assert created["id"] in listed.text
    revoked = httpx.delete(
        f"{keyed.base_url}/v1/admin/keys/{created['id']}", headers=keyed.admin_headers()
    )
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    with pytest.raises(openai.AuthenticationError) as caught:
        client.videos.list()
    assert caught.value.body["code"] == "invalid_api_key"


def test_admin_routes_need_the_admin_key_and_the_admin_key_is_not_an_api_key(keyed):
    user = keyed.new_key()
    headers = {"Authorization": f"Bearer {user['key']}"}
    response = httpx.get(f"{keyed.base_url}/v1/admin/keys", headers=headers)
    assert response.status_code == 403 and error_of(response)["type"] == "permission_error"
    response = httpx.post(f"{keyed.base_url}/v1/admin/keys", json={"name": "x"}, headers=headers)
    assert response.status_code == 403
    response = httpx.get(f"{keyed.base_url}/v1/admin/keys")
    assert response.status_code == 401
    response = httpx.get(f"{keyed.base_url}/v1/videos", headers=keyed.admin_headers())
    assert response.status_code == 403
    response = httpx.post(
        f"{keyed.base_url}/v1/admin/keys",
        json={"name": "bad", "project": "a b"},
        headers=keyed.admin_headers(),
    )
    assert response.status_code == 400 and error_of(response)["param"] == "project"


def test_a_key_over_its_request_rate_gets_429_and_another_key_does_not(keyed):
    limited = keyed.new_key(requests_per_minute=3)
    other = keyed.new_key()
    headers = {"Authorization": f"Bearer {limited['key']}"}
    answers = [httpx.get(f"{keyed.base_url}/v1/videos", headers=headers) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert error_of(answers[3])["code"] == "rate_limit_exceeded"
    assert 1 <= int(answers[3].headers["retry-after"]) <= 60
    assert keyed.client(other["key"]).videos.list().data is not None


def test_a_key_over_its_active_jobs_gets_429_and_nothing_is_written(keyed, service):
    limited = keyed.new_key(max_active_jobs=1)
    client = keyed.client(limited["key"])
    first = small_job(client, num_inference_steps=50, num_frames=16)  # long: stays active
    rows = service.jobs.count()
    with pytest.raises(openai.RateLimitError) as caught:
        small_job(client)
    assert caught.value.body["code"] == "too_many_active_jobs"
    assert caught.value.response.headers["retry-after"]
    assert service.jobs.count() == rows
    other = keyed.client(keyed.new_key()["key"])
    other.videos.delete(small_job(other).id)  # the other key is not held back
    client.videos.delete(first.id)


def test_secrets_never_reach_the_logs(keyed):
    created = keyed.new_key(name="log-check")
    keyed.client(created["key"]).videos.list()
    httpx.get(f"{keyed.base_url}/v1/videos", headers={"Authorization": "Bearer sk-i2v-wrong"})
    time.sleep(1)  # log lines are flushed
    logs = Path("/tmp/ray/session_latest/logs")
    # The service's own logs: Serve's (every replica, proxy, controller) and the workers'
    # stdout/stderr. Not Ray's runtime-env agent, which logs the env_vars this test hands the
    # keyed ingress (README: give the admin key through the node's environment, not runtime_env).
    files = [p for p in (logs / "serve").rglob("*") if p.is_file()]
    files += [p for p in logs.glob("worker-*") if p.suffix in (".out", ".err")]
    text = "\n".join(p.read_text(errors="ignore") for p in files)
    assert created["id"] in text  # the audit line names the key by its id
    assert created["key"] not in text and keyed.admin not in text


def test_schemathesis_with_a_key_finds_no_failure(keyed, service):
    """The keyed document (bearer security, 401 and 429 on every route) conforms too, with
    schemathesis's auth checks: requests without or with a wrong key must get 401."""
    key = keyed.new_key(requests_per_minute=1_000_000, max_active_jobs=2)
    headers = {"Authorization": f"Bearer {key['key']}"}
    try:
        result = run_schemathesis(
            f"{keyed.base_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {key['key']}",
            "--exclude-path-regex",
            "^/v1/admin",
        )
    finally:
        listed = httpx.get(f"{keyed.base_url}/v1/videos?limit=100", headers=headers, timeout=30)
        for video in listed.json().get("data", []):
            httpx.delete(f"{keyed.base_url}/v1/videos/{video['id']}", headers=headers)
    assert result.returncode == 0, summary(result)


def test_operators_manage_keys_from_the_command_line(keyed, capsys, monkeypatch):
    from i2v_cli.main import main

    monkeypatch.setenv("I2V_ADMIN_KEY", keyed.admin)
    admin = ["admin", "--base-url", keyed.base_url, "keys"]
    assert main([*admin, "create", "ops", "--project", "ops", "--max-active-jobs", "2"]) == 0
    out = capsys.readouterr().out
    secret = out.strip().splitlines()[-1]
    key_id = out.split()[1]
    assert secret.startswith("sk-i2v-") and key_id.startswith("key_") and "project ops" in out
    assert keyed.client(secret).videos.list().data == []
    assert main([*admin, "list"]) == 0
    listed = capsys.readouterr().out
    assert key_id in listed and secret not in listed
    assert main([*admin, "revoke", key_id]) == 0
    with pytest.raises(openai.AuthenticationError):
        keyed.client(secret).videos.list()
    monkeypatch.delenv("I2V_ADMIN_KEY")
    assert main([*admin, "list"]) == 2  # no admin key: a clear one-line error
    assert "I2V_ADMIN_KEY" in capsys.readouterr().err


def test_the_result_cache_never_answers_one_project_with_anothers_video(keyed):
    seed = next(_seeds)
    first = keyed.client(keyed.new_key(project="cache-a")["key"])
    second_key = keyed.new_key(project="cache-b")["key"]
    second = keyed.client(second_key)
    done = first.videos.poll(small_job(first, seed=seed).id)
    assert done.status == "completed"
    again = first.videos.poll(small_job(first, seed=seed).id)  # same project: a cache hit
    assert any(entry["stage"] == "cache" for entry in again.model_extra["trace"])
    theirs = second.videos.poll(small_job(second, seed=seed).id)  # same request, other project
    assert theirs.status == "completed"
    assert not any(entry["stage"] == "cache" for entry in theirs.model_extra["trace"])
