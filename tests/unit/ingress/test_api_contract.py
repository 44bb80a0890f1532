"""The HTTP contract without Ray: the app `build_api` makes from a config, over a real
VideoService on SQLite. The OpenAPI document describes every route, field and status with the
deployment's own limits; bad requests get OpenAI's error body with the codes the service has
always used; other methods get 405 with Allow."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from deployments.ingress.routes import build_api
from deployments.ingress.services import build_services
from i2v_core.artifacts import ArtifactStore
from i2v_core.errors import APIError
from i2v_core.jobs import JobStore
from serve_app.config import AppConfig


async def _unavailable(*_):
    raise APIError(503, "not in this test", code="unavailable")


async def _ready() -> dict[str, bool]:
    return {"database": True}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    config = AppConfig.model_validate(
        {"router": {"limits": {"max_frames": 12}}, "uploads": {"max_prompt_chars": 300}}
    ).ingress_config()
    services = build_services(
        config,
        JobStore(f"sqlite:///{folder / 'jobs.db'}"),
        ArtifactStore(str(folder / "artifacts")),
        classify=_unavailable,
        plan=_unavailable,
        enqueue=_unavailable,
    )
    return TestClient(build_api(config, services, _ready))


def _operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_openapi_describes_the_create_form_with_this_deployments_limits(client):
    document = client.get("/openapi.json").json()
    body = document["paths"]["/v1/videos"]["post"]["requestBody"]
    schema = body["content"]["multipart/form-data"]["schema"]
    assert body["required"] and schema["required"] == ["prompt"]
    assert schema["additionalProperties"] is False
    fields = schema["properties"]
    assert fields["input_reference"] == {**fields["input_reference"], "type": "string"}
    assert fields["input_reference"]["format"] == "binary"
    assert fields["num_frames"]["maximum"] == 12  # from this config, not the default
    assert fields["prompt"]["maxLength"] == 300
    assert fields["category"]["enum"] == ["person", "animal", "landscape", "still_life"]
    assert {"seconds", "size", "model", "seed", "session_id", "input_reference[image_url]"} <= set(
        fields
    )


def test_every_api_operation_documents_its_errors_and_no_422(client):
    document = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in document.get("components", {}).get("schemas", {})
    for path, method, operation in _operations(document):
        assert "422" not in operation["responses"], (method, path)
        if path.startswith("/v1/"):
            error = operation["responses"]["400"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path)
    messages = document["paths"]["/v1/sessions/{session_id}/messages"]["post"]["requestBody"]
    assert set(messages["content"]) == {"multipart/form-data", "application/json"}
    query = {p["name"] for p in document["paths"]["/v1/videos"]["get"]["parameters"]}
    assert query == {
        "after",
        "limit",
        "order",
        "session_id",
        "status",
        "category",
        "q",
        "created_after",
        "created_before",
    }


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({}, "prompt", "missing_required_parameter"),
        ({"prompt": "x" * 301}, "prompt", "string_above_max_length"),
        ({"prompt": "x", "num_frames": "13"}, "num_frames", "invalid_value"),
        ({"prompt": "x", "seed": "1.5"}, "seed", "invalid_value"),
        ({"prompt": "x", "guidance_scale": "inf"}, "guidance_scale", "invalid_value"),
        ({"prompt": "x", "size": "1280×720"}, "size", "invalid_value"),
        ({"prompt": "x", "webhook": "http://x"}, "webhook", "unknown_parameter"),
    ],
)
def test_bad_forms_are_400_with_the_field_and_code(client, fields, param, code):
    response = client.post(
        "/v1/videos", data=fields, files={"input_reference": ("a.png", b"not read", "image/png")}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert param in error["message"]


def test_an_empty_prompt_is_an_instruction_not_a_missing_field(client):
    """An empty instruction means the default motion: the form passes and the request reaches
    the picture check."""
    response = client.post(
        "/v1/videos", data={"prompt": ""}, files={"input_reference": ("a.png", b"", "image/png")}
    )
    assert response.json()["error"]["code"] == "invalid_image"
    response = client.post("/v1/videos", data={"prompt": ""})
    assert response.json()["error"]["param"] == "input_reference"


def test_other_methods_get_405_with_every_allowed_method(client):
    response = client.request("PUT", "/v1/videos/video_x")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert client.request("PATCH", "/v1/videos").headers["allow"] == "GET, POST"
