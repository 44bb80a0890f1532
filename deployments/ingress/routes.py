"""The HTTP API as a FastAPI app built from the ingress config: OpenAI's Videos API, the
conversation routes, health and the web page. Routes parse (the models of `requests.py`), call
`VideoService` and answer; every status a route can answer is in the OpenAPI document with
OpenAI's error body."""

from collections.abc import Awaitable, Callable
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from deployments.ingress.config import IngressConfig
from deployments.ingress.protocol import ChatReply, SessionMessages, Video, VideoDeleted, VideoList
from deployments.ingress.requests import (
    PRINTABLE,
    MessageForm,
    MessageText,
    multipart_body,
    read_form,
    request_models,
    validated,
)
from deployments.ingress.services import Services
from i2v_core.domain import ACTIVE_STATUSES
from i2v_core.errors import ErrorResponse, install_error_handlers, invalid

STATIC_DIR = FilePath(__file__).resolve().parent / "static"
VIDEO_ID = Annotated[str, Path(min_length=1, max_length=64, description="a video's id")]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "invalid request (OpenAI error body; `param` names the field)",
        404: "no such video or model",
        409: "the video is not ready",
        413: "the upload is too large",
        415: "the body is not multipart/form-data",
        429: "over capacity; retry after the Retry-After header's seconds",
        503: "a deployment did not answer in time",
    }
    return {s: {"model": ErrorResponse, "description": descriptions[s]} for s in statuses}


ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


def build_api(config: IngressConfig, services: Services, readiness: ReadinessCheck) -> FastAPI:
    models = request_models(config)
    videos, conversations = services.videos, services.conversations
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
        pattern=PRINTABLE,
        description="a retry with the same key returns the first request's video",
    )

    # --- Videos API ------------------------------------------------------------------------

    @app.post(
        "/v1/videos",
        response_model=Video,
        openapi_extra=multipart_body(models.create),
        responses=_errors(400, 404, 413, 415, 429, 503),
        summary="Create a video from a picture and an instruction",
    )
    async def create_video(
        request: Request,
        key: Annotated[str | None, idempotency_key] = None,
    ) -> JSONResponse:
        form = await read_form(request, models.create, max_file_bytes)
        return answer(await videos.create(form, idempotency_key=key))

    @app.get("/v1/videos", response_model=VideoList, responses=_errors(400, 404))
    def list_videos(query: Annotated[models.list_query, Query()]) -> VideoList:  # type: ignore[name-defined]
        return videos.list(query)

    @app.get("/v1/videos/{video_id}", response_model=Video, responses=_errors(400, 404))
    def retrieve_video(video_id: VIDEO_ID) -> JSONResponse:
        return answer(videos.retrieve(video_id))

    @app.delete("/v1/videos/{video_id}", response_model=VideoDeleted, responses=_errors(400, 404))
    def delete_video(video_id: VIDEO_ID) -> VideoDeleted:
        return videos.delete(video_id)

    @app.get(
        "/v1/videos/{video_id}/content",
        response_class=FileResponse,
        responses={
            200: {
                "description": "the MP4, or the thumbnail as WebP",
                "content": {
                    "video/mp4": {"schema": {"type": "string", "format": "binary"}},
                    "image/webp": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            **_errors(400, 404, 409),
        },
    )
    def download_content(
        video_id: VIDEO_ID, variant: Literal["video", "thumbnail"] = "video"
    ) -> FileResponse:
        path = videos.content_path(video_id, variant)
        media_type = "video/mp4" if variant == "video" else "image/webp"
        return FileResponse(path, media_type=media_type, filename=path.name)

    @app.post(
        "/v1/videos/{video_id}/remix",
        response_model=Video,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": models.remix.model_json_schema()}},
            }
        },
        responses=_errors(400, 404, 429, 503),
    )
    async def remix_video(video_id: VIDEO_ID, request: Request) -> JSONResponse:
        body = validated(models.remix, await _json_body(request))
        return answer(await videos.remix(video_id, body.prompt))

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
        responses=_errors(400, 413, 415, 429, 503),
    )
    async def post_message(session_id: session_id_path, request: Request) -> ChatReply:
        """Text, and optionally a picture (multipart `input_reference`); JSON `{"text": ...}`
        works too. The answer is a clarifying question or the created Video."""
        message: MessageForm | MessageText
        if request.headers.get("content-type", "").startswith("application/json"):
            message = validated(models.message_text, await _json_body(request))
        else:
            message = await read_form(request, models.message, max_file_bytes)
        upload = getattr(message, "input_reference", None)
        picture = upload.data if upload is not None else None
        return await conversations.converse(session_id, message.text, picture)

    @app.get(
        "/v1/sessions/{session_id}/messages", response_model=SessionMessages, responses=_errors(400)
    )
    def list_messages(session_id: session_id_path) -> SessionMessages:
        return SessionMessages(session_id=session_id, data=conversations.messages(session_id))

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
