"""The HTTP API as a FastAPI app built from the ingress config: OpenAI's Videos API, the
conversation routes, health and the web page. Routes parse (the models of `requests.py`), call
`VideoService` and answer; every status a route can answer is in the OpenAPI document with
OpenAI's error body."""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from deployments.ingress.auth import OPEN, Caller
from deployments.ingress.config import IngressConfig
from deployments.ingress.events import (
    EventStreamResponse,
    VideoStream,
    last_event_id,
    stream_responses,
)
from deployments.ingress.protocol import (
    CONTENT_TYPES,
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyList,
    ApiKeyRevoked,
    ChatReply,
    ContentVariant,
    ProjectWebhook,
    SessionMessages,
    Video,
    VideoDeleted,
    VideoList,
    WebhookDeliveryList,
)
from deployments.ingress.requests import (
    HEADER_TEXT,
    PRINTABLE,
    CreateKeyRequest,
    MessageForm,
    MessageText,
    ProjectWebhookRequest,
    multipart_body,
    read_form,
    request_models,
    validated,
)
from deployments.ingress.services import Services
from i2v_core.domain import ACTIVE_STATUSES
from i2v_core.errors import APIError, ErrorResponse, install_error_handlers, invalid
from i2v_core.jobs import ApiKey

audit = logging.getLogger("ray.serve")
STATIC_DIR = FilePath(__file__).resolve().parent / "static"
VIDEO_ID = Annotated[str, Path(min_length=1, max_length=64, description="a video's id")]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "invalid request (OpenAI error body; `param` names the field)",
        401: "no API key, a malformed Authorization header, or an unknown or revoked key",
        403: "the key may not use this route",
        404: "no such video or model",
        409: "the video is not ready",
        410: "the video expired: its files were removed (its record remains)",
        413: "the upload is too large",
        415: "the body is not multipart/form-data",
        429: "over capacity or over the key's limits; retry after Retry-After seconds",
        503: "a deployment did not answer in time",
    }
    return {s: {"model": ErrorResponse, "description": descriptions[s]} for s in statuses}


ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


def build_api(config: IngressConfig, services: Services, readiness: ReadinessCheck) -> FastAPI:
    models = request_models(config)
    videos, conversations = services.videos, services.conversations
    auth_on = services.auth.enabled
    caller_of = _caller_dependency(services)
    CallerDep = Annotated[Caller, Depends(caller_of)]  # noqa: N806

    def errs(*statuses: int) -> dict[int | str, dict[str, Any]]:
        """The statuses a /v1 route answers, with 401 and 429 when keys are required."""
        return _errors(*sorted({*statuses, *((401, 429) if auth_on else ())}))

    max_file_bytes = config.uploads.max_image_bytes
    app = FastAPI(
        title="Image-to-video service",
        description="OpenAI's Videos API over I2VGen-XL on Ray Serve, plus conversations. "
        'Errors have OpenAI\'s shape: `{"error": {"message", "type", "param", "code"}}`.',
        version="0.1.0",
    )
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def poll_headers(video: Video) -> dict[str, str]:
        if video.status in ACTIVE_STATUSES:
            return {"openai-poll-after-ms": str(config.poll_after_ms)}
        return {}

    def answer(video: Video) -> JSONResponse:
        return JSONResponse(video.model_dump(), headers=poll_headers(video))

    session_id_path = Annotated[
        str,
        Path(
            min_length=1,
            max_length=config.uploads.max_session_id_chars,
            pattern=PRINTABLE,
            description="the conversation's id, chosen by the client",
        ),
    ]
    idempotency_key = Header(
        alias="Idempotency-Key",
        max_length=config.admission.max_idempotency_key_chars,
        pattern=HEADER_TEXT,
        description="a retry with the same key returns the first request's video",
    )

    # --- Videos API ------------------------------------------------------------------------

    @app.post(
        "/v1/videos",
        response_model=Video,
        openapi_extra=multipart_body(models.create),
        responses=errs(400, 404, 413, 415, 429, 503),
        summary="Create a video from a picture and an instruction",
    )
    async def create_video(
        request: Request,
        caller: CallerDep,
        key: Annotated[str | None, idempotency_key] = None,
    ) -> JSONResponse:
        form = await read_form(request, models.create, max_file_bytes)
        return answer(await videos.create(form, caller, idempotency_key=key))

    @app.get("/v1/videos", response_model=VideoList, responses=errs(400, 404))
    def list_videos(
        query: Annotated[models.list_query, Query()],  # type: ignore[name-defined]
        caller: CallerDep,
    ) -> VideoList:
        return videos.list(query, caller.project)

    @app.get("/v1/videos/{video_id}", response_model=Video, responses=errs(400, 404))
    def retrieve_video(video_id: VIDEO_ID, caller: CallerDep) -> JSONResponse:
        return answer(videos.retrieve(video_id, caller.project))

    async def open_stream(
        video_id: VIDEO_ID,
        caller: CallerDep,
        resume: Annotated[
            str | None,
            Header(
                alias="Last-Event-ID",
                max_length=64,
                pattern=HEADER_TEXT,
                description="the id of the last event received: a reconnecting client skips "
                "the current state when it has it already",
            ),
        ] = None,
    ) -> AsyncIterator[VideoStream]:
        """Opens the stream before the answer starts (404, 429 and 503 stay real statuses)
        and closes it when the answer ends or the client goes away."""
        stream = await services.events.open(video_id, caller, last_event_id(resume))
        try:
            yield stream
        finally:
            await stream.close()

    @app.get(
        "/v1/videos/{video_id}/events",
        response_class=EventStreamResponse,
        responses=stream_responses(errs(400, 404, 429, 503)),
        summary="Follow a video's status and progress as Server-Sent Events",
    )
    async def video_events(
        stream: Annotated[VideoStream, Depends(open_stream)],
    ) -> EventStreamResponse:
        """One event per change of status or progress (every denoising step), the final Video,
        then the end of the stream. A key holds at most `events.max_streams_per_key` open."""
        return EventStreamResponse(stream.frames())

    @app.delete("/v1/videos/{video_id}", response_model=VideoDeleted, responses=errs(400, 404))
    def delete_video(video_id: VIDEO_ID, caller: CallerDep) -> VideoDeleted:
        return videos.delete(video_id, caller.project)

    @app.get(
        "/v1/videos/{video_id}/webhook_deliveries",
        response_model=WebhookDeliveryList,
        responses=errs(400, 404),
        summary="The webhook events of a video, with every delivery attempt",
    )
    def list_webhook_deliveries(video_id: VIDEO_ID, caller: CallerDep) -> WebhookDeliveryList:
        return services.webhooks.deliveries(video_id, caller.project)

    @app.get(
        "/v1/videos/{video_id}/content",
        response_class=FileResponse,
        responses={
            200: {
                "description": "the MP4, the thumbnail as WebP, or the spritesheet (a grid of "
                "evenly spaced frames, row by row) as JPEG",
                "content": {
                    media_type: {"schema": {"type": "string", "format": "binary"}}
                    for media_type in CONTENT_TYPES.values()
                },
            },
            **errs(400, 404, 409, 410),
        },
    )
    def download_content(
        video_id: VIDEO_ID, caller: CallerDep, variant: ContentVariant = "video"
    ) -> FileResponse:
        path = videos.content_path(video_id, variant, caller.project)
        return FileResponse(path, media_type=CONTENT_TYPES[variant], filename=path.name)

    @app.post(
        "/v1/videos/{video_id}/remix",
        response_model=Video,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": models.remix.model_json_schema()}},
            }
        },
        responses=errs(400, 404, 429, 503),
    )
    async def remix_video(video_id: VIDEO_ID, request: Request, caller: CallerDep) -> JSONResponse:
        body = validated(models.remix, await _json_body(request))
        return answer(await videos.remix(video_id, body.prompt, caller))

    max_video_bytes = config.uploads.max_video_bytes

    @app.post(
        "/v1/videos/extensions",
        response_model=Video,
        openapi_extra=multipart_body(models.extend),
        responses=errs(400, 404, 409, 410, 413, 415, 429, 503),
        summary="Extend a video: its last frame starts `seconds` more; one MP4 of both",
    )
    async def extend_video(request: Request, caller: CallerDep) -> JSONResponse:
        form = await read_form(request, models.extend, max_video_bytes)
        return answer(await services.continuations.extend(form, caller))

    @app.post(
        "/v1/videos/edits",
        response_model=Video,
        openapi_extra=multipart_body(models.edit),
        responses=errs(400, 404, 409, 410, 413, 415, 429, 503),
        summary="Edit a video: a new video from its first frame, the prompt revised",
    )
    async def edit_video(request: Request, caller: CallerDep) -> JSONResponse:
        form = await read_form(request, models.edit, max_video_bytes)
        return answer(await services.continuations.edit(form, caller))

    # --- conversations ---------------------------------------------------------------------

    @app.post(
        "/v1/sessions/{session_id}/messages",
        response_model=ChatReply,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    **multipart_body(models.message)["requestBody"]["content"],
                    "application/json": {"schema": models.message_text.model_json_schema()},
                },
            }
        },
        responses=errs(400, 413, 415, 429, 503),
    )
    async def post_message(
        session_id: session_id_path, request: Request, caller: CallerDep
    ) -> ChatReply:
        """Text, and optionally a picture (multipart `input_reference`); JSON `{"text": ...}`
        works too. The answer is a clarifying question or the created Video."""
        message: MessageForm | MessageText
        if request.headers.get("content-type", "").startswith("application/json"):
            message = validated(models.message_text, await _json_body(request))
        else:
            message = await read_form(request, models.message, max_file_bytes)
        upload = getattr(message, "input_reference", None)
        picture = upload.data if upload is not None else None
        return await conversations.converse(session_id, message.text, picture, caller)

    @app.get(
        "/v1/sessions/{session_id}/messages", response_model=SessionMessages, responses=errs(400)
    )
    def list_messages(session_id: session_id_path, caller: CallerDep) -> SessionMessages:
        turns = conversations.messages(session_id, caller.project)
        return SessionMessages(session_id=session_id, data=turns)

    if auth_on:
        _add_admin_routes(app, services)

    # --- web page and health ---------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"description": "a part is not ready"}})
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise invalid("The body is not valid JSON.", None, "invalid_json") from None


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document without its 422 answers (ours are 400s with OpenAI's error body)."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
    return app.openapi_schema


def _caller_dependency(services: Services) -> Callable[..., Caller]:
    """The dependency every /v1 route takes: the open caller with auth off; with auth on, the
    key's caller (401 without a valid key, 403 for the admin key, 429 over the key's rate)."""
    auth, rate = services.auth, services.rate
    if not auth.enabled:

        def open_caller() -> Caller:
            return OPEN

        return open_caller

    bearer = HTTPBearer(auto_error=False, description="an API key: `Bearer sk-i2v-...`")

    def key_caller(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        caller = auth.caller(request.headers.get("authorization"))
        if caller.is_admin:
            raise APIError(
                403,
                "The admin key manages keys only (/v1/admin/keys); create a key for API calls.",
                code="insufficient_permissions",
            )
        if rate is not None:
            rate.count_request(caller)
        return caller

    return key_caller


def _add_admin_routes(app: FastAPI, services: Services) -> None:
    """`/v1/admin/keys`: create, list and revoke API keys, with the admin key only. Each action
    writes one audit log line (key id, name, project; never a secret)."""
    auth, keys, defaults = services.auth, services.keys, services.auth.config
    bearer = HTTPBearer(auto_error=False, description="the admin key ($I2V_ADMIN_KEY)")

    def admin(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if not auth.caller(request.headers.get("authorization")).is_admin:
            raise APIError(
                403,
                "Only the admin key may use the admin routes (keys, project webhooks).",
                code="insufficient_permissions",
            )

    def info(key: ApiKey) -> dict[str, Any]:
        return {
            "id": key.id,
            "name": key.name,
            "project": key.project,
            "requests_per_minute": key.requests_per_minute or defaults.requests_per_minute,
            "max_active_jobs": key.max_active_jobs or defaults.max_active_jobs,
            "created_at": int(key.created_at),
            "revoked_at": int(key.revoked_at) if key.revoked_at else None,
        }

    admin_errors = _errors(400, 401, 403)
    guarded = [Depends(admin)]

    @app.post(
        "/v1/admin/keys",
        status_code=201,
        response_model=ApiKeyCreated,
        responses=admin_errors,
        dependencies=guarded,
        tags=["admin"],
    )
    def create_key(body: CreateKeyRequest) -> ApiKeyCreated:
        created = keys.create(
            body.name, body.project, body.requests_per_minute, body.max_active_jobs
        )
        key = created.key
        audit.info(
            "admin: api key %s created (project %s)",
            key.id,
            key.project,
            extra={"key_id": key.id, "key_name": key.name, "project": key.project},
        )
        return ApiKeyCreated(**info(key), key=created.secret)

    @app.get(
        "/v1/admin/keys",
        response_model=ApiKeyList,
        responses=admin_errors,
        dependencies=guarded,
        tags=["admin"],
    )
    def list_keys() -> ApiKeyList:
        return ApiKeyList(data=[ApiKeyInfo(**info(key)) for key in keys.list()])

    @app.delete(
        "/v1/admin/keys/{key_id}",
        response_model=ApiKeyRevoked,
        responses={**admin_errors, **_errors(404)},
        dependencies=guarded,
        tags=["admin"],
    )
    def revoke_key(key_id: Annotated[str, Path(min_length=1, max_length=64)]) -> ApiKeyRevoked:
        key = keys.revoke(key_id)
        if key is None:
            raise APIError(
                404, f"No API key with id '{key_id}'.", param="key_id", code="key_not_found"
            )
        audit.info(
            "admin: api key %s revoked (project %s)",
            key.id,
            key.project,
            extra={"key_id": key.id, "key_name": key.name, "project": key.project},
        )
        return ApiKeyRevoked(id=key.id)

    _add_webhook_admin_routes(app, services, guarded, admin_errors)


PROJECT = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="a project",
    ),
]


def _add_webhook_admin_routes(
    app: FastAPI, services: Services, guarded: list[Any], admin_errors: dict[int | str, Any]
) -> None:
    """`/v1/admin/projects/{project}/webhook`: a project's default webhook URL and its signing
    secret, with the admin key only. The secret is shown in the answer that creates or rotates
    it, never again."""
    webhooks = services.webhooks

    @app.get(
        "/v1/admin/projects/{project}/webhook",
        response_model=ProjectWebhook,
        responses=admin_errors,
        dependencies=guarded,
        tags=["admin"],
    )
    def get_project_webhook(project: PROJECT) -> ProjectWebhook:
        return webhooks.settings(project)

    @app.put(
        "/v1/admin/projects/{project}/webhook",
        response_model=ProjectWebhook,
        responses=admin_errors,
        dependencies=guarded,
        tags=["admin"],
    )
    def put_project_webhook(project: PROJECT, body: ProjectWebhookRequest) -> ProjectWebhook:
        settings = webhooks.configure(
            project, body.model_dump(include=body.model_fields_set & {"url"}), body.rotate_secret
        )
        audit.info(
            "admin: project %s webhook set (url %s, secret %s)",
            project,
            "set" if settings.url else "none",
            "new" if settings.secret else "kept",
            extra={"project": project},
        )
        return settings
