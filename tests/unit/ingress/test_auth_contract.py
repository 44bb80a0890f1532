"""Auth on the HTTP layer without Ray: `build_api` over real services on SQLite and a real Redis
(the request-rate window). With an admin key, the OpenAPI document declares bearer security and
401/429 on every /v1 route and lists the admin routes; without, it declares neither."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from deployments.ingress.config import AuthConfig
from deployments.ingress.routes import build_api
from deployments.ingress.services import build_services
from i2v_core.artifacts import ArtifactStore
from i2v_core.errors import APIError
from i2v_core.jobs import JobStore
from i2v_core.keys import KeyStore, digest
from serve_app.config import AppConfig

ADMIN = "sk-admin-test-0123456789"


async def _unavailable(*_):
    raise APIError(503, "not in this test", code="unavailable")


async def _ready() -> dict[str, bool]:
    return {"database": True}


def _client(tmp_path, redis_url: str | None, admin: str | None) -> TestClient:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = AppConfig.model_validate(
        {"auth": {"requests_per_minute": 50}, "queue": {"redis_url": redis_url or "redis://x"}}
    ).ingress_config()
    services = build_services(
        config,
        JobStore(f"sqlite:///{tmp_path / 'jobs.db'}"),
        ArtifactStore(str(tmp_path / "artifacts")),
        classify=_unavailable,
        plan=_unavailable,
        enqueue=_unavailable,
        admin_secret=admin,
    )
    return TestClient(build_api(config, services, _ready))


@pytest.fixture
def keyed(tmp_path, redis_server) -> TestClient:
    return _client(tmp_path, redis_server.url, ADMIN)


def test_the_document_declares_bearer_auth_only_when_it_is_on(tmp_path, keyed):
    document = keyed.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, item in document["paths"].items():
        for operation in item.values():
            if path.startswith("/v1/"):
                assert operation["security"], path
                assert {"401", "429"} <= set(operation["responses"]) or "admin" in path, path
    assert "/v1/admin/keys" in document["paths"]
    open_document = _client(tmp_path / "open", None, None).get("/openapi.json").json()
    assert "securitySchemes" not in open_document.get("components", {})
    assert "/v1/admin/keys" not in open_document["paths"]
    assert "401" not in open_document["paths"]["/v1/videos"]["get"]["responses"]


def test_keys_are_random_hashed_and_shown_once(tmp_path, keyed):
    created = keyed.post(
        "/v1/admin/keys", json={"name": "ci"}, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("sk-i2v-") and len(body["key"]) >= 7 + 43  # 256 bits
    assert body["project"].startswith("proj_") and body["requests_per_minute"] == 50
    stored = KeyStore(JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")).list()
    assert [k.secret_sha256 for k in stored] == [digest(body["key"])]
    listed = keyed.get("/v1/admin/keys", headers={"Authorization": f"Bearer {ADMIN}"})
    assert body["key"] not in listed.text
    answer = keyed.get("/v1/videos", headers={"Authorization": f"Bearer {body['key']}"})
    assert answer.status_code == 200 and answer.json()["data"] == []


def test_errors_have_openais_shape(keyed):
    response = keyed.get("/v1/videos")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert response.headers["www-authenticate"].startswith("Bearer")
    response = keyed.delete("/v1/admin/keys/key_nope", headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "key_not_found"


def test_auth_config_without_the_secret_refuses_to_start(monkeypatch):
    from deployments.ingress.auth import admin_secret_from_env

    monkeypatch.delenv("I2V_ADMIN_KEY", raising=False)
    with pytest.raises(RuntimeError, match="I2V_ADMIN_KEY"):
        admin_secret_from_env(AuthConfig(enabled=True))
    assert admin_secret_from_env(AuthConfig()) is None
    monkeypatch.setenv("I2V_ADMIN_KEY", "s3cret")
    assert admin_secret_from_env(AuthConfig()) == "s3cret"
