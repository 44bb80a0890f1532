"""The HTTP ingress: thin FastAPI routes of OpenAI's Videos API on a Ray Serve deployment. Each
route parses, calls `VideoService`, and maps errors; the logic lives in `serving.py`."""

import asyncio
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from fastapi import Body, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from ray import serve
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle
from ray.serve.task_consumer import instantiate_adapter_from_config
from starlette.concurrency import run_in_threadpool

from deployments.classifier.protocol import Classification
from deployments.generator.protocol import TASK_NAME
from deployments.ingress.config import IngressConfig
from deployments.ingress.protocol import (
    ChatReply,
    RemixRequest,
    Video,
    VideoDeleted,
    VideoList,
)
from deployments.ingress.serving import CreateRequest, VideoService
from deployments.router.protocol import Plan, PlanRequest
from i2v_core import logs, metrics
from i2v_core.artifacts import ArtifactStore
from i2v_core.domain import ACTIVE_STATUSES
from i2v_core.errors import APIError, install_error_handlers, invalid
from i2v_core.jobs import JobStore

app = FastAPI(
    title="Image-to-video service",
    description="OpenAI Videos API over I2VGen-XL on Ray Serve.",
    version="0.1.0",
)
install_error_handlers(app)
# The web page: plain files, no build step; it only calls the public HTTP API.
STATIC_DIR = Path(__file__).resolve().parent / "static"
app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

_FORM_FIELDS = (
    "prompt",
    "model",
    "seconds",
    "size",
    "session_id",
    "seed",
    "num_frames",
    "num_inference_steps",
    "guidance_scale",
    "fps",
    "category",
)
_MULTIPART_SLACK_BYTES = 1024 * 1024


@serve.ingress(app)
class Ingress:
    def __init__(
        self,
        config: IngressConfig,
        classifier: DeploymentHandle,
        router: DeploymentHandle,
        generator: DeploymentHandle,
    ):
        self.config = config
        self._classifier = classifier
        self._router = router
        self._generator = generator
        self._queue = instantiate_adapter_from_config(config.queue.task_processor_config())
        self.service = VideoService(
            config,
            JobStore(config.stores.database_url),
            ArtifactStore(config.stores.artifact_dir),
            classify=self._classify,
            plan=self._plan,
            enqueue=self._enqueue,
        )
        logs.keep_job_ids()
        metrics.watch_backlog(self.service.jobs.count)

    async def _classify(self, image: bytes) -> Classification:
        with self._overload_is_429("classifier"):
            return await self._classifier.classify.remote(image)

    async def _plan(self, request: PlanRequest) -> Plan:
        with self._overload_is_429("router"):
            return await self._router.plan.remote(request)

    @contextmanager
    def _overload_is_429(self, what: str):
        """A deployment's `max_queued_requests` reached: the client hears 429, never a 500."""
        try:
            yield
        except BackPressureError as exc:
            retry_after = str(self.config.admission.retry_after_s)
            raise APIError(
                429,
                f"The {what} is overloaded; nothing was created. Retry later.",
                code=f"{what}_overloaded",
                headers={"Retry-After": retry_after},
            ) from exc

    def _enqueue(self, job_id: str) -> None:
        self._queue.enqueue_task_sync(TASK_NAME, args=[job_id])

    def _poll_headers(self, video: Video) -> dict[str, str]:
        if video.status in ACTIVE_STATUSES:
            return {"openai-poll-after-ms": str(self.config.poll_after_ms)}
        return {}

    # --- Videos API --------------------------------------------------------------------------

    @app.post("/v1/videos", response_model=Video)
    async def create_video(self, request: Request) -> JSONResponse:
        form = await self._read_form(request)
        form.idempotency_key = request.headers.get("idempotency-key")
        video = await self.service.create(form)
        return JSONResponse(video.model_dump(), headers=self._poll_headers(video))

    @app.get("/v1/videos", response_model=VideoList)
    def list_videos(
        self,
        after: str | None = None,
        limit: int = Query(default=20, ge=1, le=100),
        order: Literal["asc", "desc"] = "desc",
        session_id: str | None = None,
        status: str | None = None,
        category: str | None = None,
        q: str | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
    ) -> VideoList:
        """OpenAI's paging plus extension filters for searching past results."""
        return self.service.list(
            after,
            limit,
            order,
            session_id=session_id,
            status=status,
            category=category,
            q=q,
            created_after=created_after,
            created_before=created_before,
        )

    @app.get("/v1/videos/{video_id}", response_model=Video)
    def retrieve_video(self, video_id: str) -> JSONResponse:
        video = self.service.retrieve(video_id)
        return JSONResponse(video.model_dump(), headers=self._poll_headers(video))

    @app.delete("/v1/videos/{video_id}", response_model=VideoDeleted)
    def delete_video(self, video_id: str) -> VideoDeleted:
        return self.service.delete(video_id)

    @app.get("/v1/videos/{video_id}/content")
    def download_content(self, video_id: str, variant: str = "video") -> FileResponse:
        path = self.service.content_path(video_id, variant)
        media_type = "video/mp4" if variant == "video" else "image/webp"
        return FileResponse(path, media_type=media_type, filename=path.name)

    @app.post("/v1/videos/{video_id}/remix", response_model=Video)
    async def remix_video(self, video_id: str, body: RemixRequest = Body(...)) -> JSONResponse:
        video = await self.service.remix(video_id, body.prompt)
        return JSONResponse(video.model_dump(), headers=self._poll_headers(video))

    # --- conversations ---------------------------------------------------------------------

    @app.post("/v1/sessions/{session_id}/messages", response_model=ChatReply)
    async def post_message(self, session_id: str, request: Request) -> ChatReply:
        """Text (and optionally a picture, as multipart `input_reference`): the answer is a
        clarifying question or the created Video. JSON `{"text": ...}` works too."""
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = await request.json()
            except ValueError as exc:
                raise invalid("The body is not valid JSON.", None, "invalid_json") from exc
            text = body.get("text") if isinstance(body, dict) else None
            if text is not None and not isinstance(text, str):
                raise invalid("'text' must be a string.", "text")
            return await self.service.converse(session_id, text, None)
        form = await self._read_form(request, text_fields=("text",))
        return await self.service.converse(session_id, form.prompt, form.image)

    @app.get("/v1/sessions/{session_id}/messages")
    def list_messages(self, session_id: str) -> dict:
        return {
            "object": "list",
            "session_id": session_id,
            "data": self.service.messages(session_id),
        }

    # --- web page ----------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def index(self) -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    # --- health ------------------------------------------------------------------------------

    @app.get("/healthz")
    def healthz(self) -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(self) -> JSONResponse:
        checks = {
            "classifier": self._classifier.check_health.remote(),
            "router": self._router.check_health.remote(),
            "generator": self._generator.ping.remote(),
        }
        results: dict[str, bool] = {}
        for name, call in checks.items():
            try:
                await asyncio.wait_for(call, 5.0)
                results[name] = True
            except Exception:
                results[name] = False
        results["database"] = await run_in_threadpool(self._database_ok)
        ready = all(results.values())
        return JSONResponse({"ready": ready, "checks": results}, status_code=200 if ready else 503)

    def _database_ok(self) -> bool:
        try:
            self.service.jobs.count()
            return True
        except Exception:
            return False

    # --- parsing -----------------------------------------------------------------------------

    async def _read_form(
        self, request: Request, text_fields: tuple[str, ...] = _FORM_FIELDS
    ) -> CreateRequest:
        """The multipart form as text fields and picture bytes; `text` is read as the prompt."""
        declared = request.headers.get("content-length")
        limit = self.config.uploads.max_image_bytes + _MULTIPART_SLACK_BYTES
        if declared and declared.isdigit() and int(declared) > limit:
            raise APIError(
                413,
                f"The request is {declared} bytes; the limit is {limit}.",
                code="request_too_large",
            )
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith(
            ("multipart/form-data", "application/x-www-form-urlencoded")
        ):
            raise APIError(
                415,
                "POST /v1/videos takes multipart/form-data with the picture in 'input_reference'.",
                code="unsupported_media_type",
            )
        try:
            form = await request.form(max_files=1, max_fields=64)
        except Exception as exc:
            raise invalid(f"The form could not be read: {exc}", None, "invalid_form") from exc
        try:
            values = {}
            for name in text_fields:
                value = form.get(name)
                if value is not None and not isinstance(value, str):
                    raise invalid(f"'{name}' must be a text field.", name)
                values["prompt" if name == "text" else name] = value
            upload = form.get("input_reference")
            image = None
            if upload is not None:
                if isinstance(upload, str):
                    raise invalid("'input_reference' must be a file upload.", "input_reference")
                # One byte over the limit is enough for the size check to reject.
                image = await upload.read(self.config.uploads.max_image_bytes + 1)
            image_url = form.get("input_reference[image_url]")
            if form.get("input_reference[file_id]") is not None:
                raise invalid(
                    "input_reference.file_id is not supported; upload the file.",
                    "input_reference.file_id",
                    "unsupported_parameter",
                )
            return CreateRequest(image=image, image_url=image_url, **values)
        finally:
            await form.close()
