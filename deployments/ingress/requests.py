"""The request contract of the HTTP API: pydantic models of the create form, the conversation
message, the list query and the remix body, built from the ingress config so that the limits the
service enforces are the limits the OpenAPI document states.

Multipart forms are read by `read_form` (size and content-type checks first, then the fields) and
validated by these models; FastAPI documents them through `openapi_extra`. An empty optional text
field counts as not sent only where the schema says so (`prompt`/`text` may be empty: an empty
instruction means the default motion)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    create_model,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from starlette.datastructures import UploadFile
from starlette.requests import Request

from deployments.ingress.config import IngressConfig
from i2v_core.domain import CATEGORIES, VideoStatus
from i2v_core.errors import APIError, invalid, validation_error

M = TypeVar("M", bound=BaseModel)
V = TypeVar("V", bound="VideoSourceForm")

# No control characters: what a session id, an idempotency key or a search may contain.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
# The same for a header value, where HTTP allows a tab and strips it at either end: a key with
# a tab around it is the key without, so the schema must not call the tab invalid.
HEADER_TEXT = r"^[^\x00-\x08\x0a-\x1f\x7f]*$"
SIZE_PATTERN = r"^[1-9][0-9]{0,3}x[1-9][0-9]{0,3}$"
MAX_QUERY_CHARS = 200  # the search words of GET /v1/videos?q=
_MULTIPART_SLACK_BYTES = 1024 * 1024


def _optional(annotation: Any) -> Any:
    """An optional form or query field: absent means unset; a form cannot send null, so the
    schema does not offer it."""
    return annotation | SkipJsonSchema[None]  # type: ignore[misc]


class Picture(BaseModel):
    """An uploaded picture's bytes (read up to one byte over the limit, so the size check can
    reject), before any image check."""

    model_config = ConfigDict(frozen=True)

    data: bytes
    filename: str | None = None


class FormModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("input_reference", mode="before", check_fields=False)
    @classmethod
    def _a_file(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("must be a file upload, not a text field")
        return value


UploadedPicture = Annotated[Picture, WithJsonSchema({"type": "string", "format": "binary"})]


class CreateVideoForm(FormModel):
    """Create a video: OpenAI's fields (`prompt`, `input_reference`, `model`, `seconds`, `size`)
    plus extensions. Values given here win over the planner's; unknown fields are refused."""

    # `request_models` gives the fields marked "per config" this deployment's limits.
    prompt: str  # per config
    input_reference: UploadedPicture | SkipJsonSchema[None] = None  # per config
    image_url: str | SkipJsonSchema[None] = Field(
        default=None,
        alias="input_reference[image_url]",
        description="the picture as a base64 data: URL instead of a file",
    )
    model: str | SkipJsonSchema[None] = Field(
        default=None, description="the model; this service runs one"
    )
    seconds: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] | SkipJsonSchema[None] = (
        Field(default=None, description="the video's length; with fps it sets the frames")
    )
    size: Annotated[str, Field(pattern=SIZE_PATTERN)] | SkipJsonSchema[None] = Field(
        default=None, description="WIDTHxHEIGHT, e.g. 1280x720 (fitted to the limits)"
    )
    session_id: str | None = None  # per config
    seed: int | None = None  # per config
    num_frames: int | None = None  # per config
    num_inference_steps: int | None = None  # per config
    guidance_scale: float | None = None  # per config
    fps: int | None = None  # per config
    category: Literal[CATEGORIES] | SkipJsonSchema[None] = Field(  # type: ignore[valid-type]
        default=None, description="the picture's category: the classifier is skipped"
    )
    webhook_url: str | SkipJsonSchema[None] = None  # per config

    def size_pixels(self) -> tuple[int, int] | None:
        if self.size is None:
            return None
        width, height = self.size.lower().split("x")
        return int(width), int(height)


class MessageForm(FormModel):
    """One message of a conversation: the person's text and, optionally, a picture."""

    text: str  # per config
    input_reference: UploadedPicture | SkipJsonSchema[None] = None  # per config


class MessageText(BaseModel):
    """One message of a conversation as JSON: the person's text only."""

    model_config = ConfigDict(extra="forbid")

    text: str  # per config


class ListQuery(BaseModel):
    """OpenAI's paging plus extension filters for searching past results. All filters must
    hold; `q`'s whitespace-separated words must each occur in the instruction or the English
    prompt; the times are unix seconds, inclusive (a range that is empty matches nothing).
    `after` pages through the filtered list."""

    model_config = ConfigDict(extra="forbid")

    after: str | None = Field(default=None, description="a video id: the page starts after it")
    limit: int = Field(default=20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"
    session_id: str | None = None  # per config
    status: VideoStatus | None = None
    category: Literal[CATEGORIES] | None = None  # type: ignore[valid-type]
    q: str | None = Field(
        default=None, max_length=MAX_QUERY_CHARS, pattern=PRINTABLE, description="search words"
    )
    created_after: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    created_before: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    def words(self) -> list[str]:
        return self.q.split() if self.q else []


class RemixBody(BaseModel):
    """A new video from a finished one: same picture, category, size, frames and seed."""

    model_config = ConfigDict(extra="forbid")

    prompt: str  # per config


UploadedVideo = Annotated[Picture, WithJsonSchema({"type": "string", "format": "binary"})]


class VideoSourceForm(FormModel):
    """A new video from an existing one: the video as an uploaded file (`video`) or as a
    completed video of yours (`video[id]`), exactly one of the two."""

    prompt: str  # per config
    video: UploadedVideo | SkipJsonSchema[None] = None  # per config
    video_id: (
        Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)] | SkipJsonSchema[None]
    ) = Field(
        default=None,
        alias="video[id]",
        description="the id of a completed video of yours instead of a file (openai client: "
        '`video=openai.omit, extra_body={"video[id]": id}`)',
    )
    model: str | SkipJsonSchema[None] = Field(
        default=None, description="the model; this service runs one"
    )
    seed: int | None = None  # per config
    num_inference_steps: int | None = None  # per config
    guidance_scale: float | None = None  # per config
    category: Literal[CATEGORIES] | SkipJsonSchema[None] = Field(  # type: ignore[valid-type]
        default=None, description="the frame's category: the classifier is skipped"
    )

    @field_validator("video", mode="before")
    @classmethod
    def _a_video_file(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("must be a file upload; name a video of yours with video[id]")
        return value


class ExtendVideoForm(VideoSourceForm):
    """Extend a video: its last frame starts `seconds` more, at the video's size and frame rate;
    the result is one MP4 of the video followed by the new frames."""

    seconds: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = Field(
        description="the length of the new segment; with the video's fps it sets the frames "
        "(clamped to the limits)"
    )


class EditVideoForm(VideoSourceForm):
    """Edit a video: a new video generated from its first frame, the instruction revising the
    video's prompt (when the video is ours) as a remix does. The pixels of the video are not
    edited."""


@dataclass(frozen=True)
class RequestModels:
    create: type[CreateVideoForm]
    message: type[MessageForm]
    message_text: type[MessageText]
    remix: type[RemixBody]
    list_query: type[ListQuery]
    extend: type[ExtendVideoForm]
    edit: type[EditVideoForm]


def request_models(config: IngressConfig) -> RequestModels:
    """The request models with this deployment's limits in their fields (and so in OpenAPI)."""
    limits, uploads = config.limits, config.uploads

    def ranged(kind: type, low: float, high: float) -> Any:
        bounded = Annotated[kind, Field(ge=low, le=high, allow_inf_nan=False)]  # type: ignore[valid-type]
        return (_optional(bounded), None)

    text: Any = (
        Annotated[
            str,
            Field(
                max_length=uploads.max_prompt_chars,
                description="the instruction in plain language (Chinese or English); empty "
                "means the default motion",
            ),
        ],
        ...,
    )
    session_id: Any = (
        _optional(
            Annotated[
                str,
                Field(
                    min_length=1,
                    max_length=uploads.max_session_id_chars,
                    pattern=PRINTABLE,
                    description="a conversation: the session's picture and history are used",
                ),
            ]
        ),
        None,
    )
    picture: Any = (
        _optional(UploadedPicture),
        Field(
            default=None,
            description=f"the picture to animate (PNG, JPEG, WebP, BMP or GIF, at most "
            f"{uploads.max_image_bytes} bytes)",
        ),
    )
    create = create_model(
        "CreateVideoForm",
        __base__=CreateVideoForm,
        __doc__=CreateVideoForm.__doc__,
        prompt=text,
        input_reference=picture,
        session_id=session_id,
        seed=ranged(int, 0, limits.max_seed),
        num_frames=ranged(int, limits.min_frames, limits.max_frames),
        num_inference_steps=ranged(int, limits.min_steps, limits.max_steps),
        guidance_scale=ranged(float, limits.min_guidance, limits.max_guidance),
        fps=ranged(int, limits.min_fps, limits.max_fps),
        webhook_url=(
            _optional(
                Annotated[
                    str,
                    Field(
                        min_length=1,
                        max_length=config.webhooks.max_url_chars,
                        description="where this job's final event (video.completed, "
                        "video.failed or video.cancelled) is POSTed, signed per Standard "
                        "Webhooks with the project's secret; instead of the project's default "
                        "URL. http(s) to a public address (API keys required)",
                    ),
                ]
            ),
            None,
        ),
    )
    video: Any = (
        _optional(UploadedVideo),
        Field(
            default=None,
            description=f"the video ({', '.join(uploads.video_containers)}; at most "
            f"{uploads.max_video_bytes} bytes, {uploads.max_video_seconds:g} s, "
            f"{uploads.max_video_frames} frames and {uploads.max_video_pixels} pixels a frame)",
        ),
    )

    def source_form(base: type[V]) -> type[V]:
        return create_model(
            base.__name__,
            __base__=base,
            __doc__=base.__doc__,
            prompt=text,
            video=video,
            seed=ranged(int, 0, limits.max_seed),
            num_inference_steps=ranged(int, limits.min_steps, limits.max_steps),
            guidance_scale=ranged(float, limits.min_guidance, limits.max_guidance),
        )

    return RequestModels(
        create=create,
        message=create_model(
            "MessageForm",
            __base__=MessageForm,
            __doc__=MessageForm.__doc__,
            text=text,
            input_reference=picture,
        ),
        message_text=create_model(
            "MessageText", __base__=MessageText, __doc__=MessageText.__doc__, text=text
        ),
        remix=create_model("RemixBody", __base__=RemixBody, __doc__=RemixBody.__doc__, prompt=text),
        list_query=create_model(
            "ListQuery", __base__=ListQuery, __doc__=ListQuery.__doc__, session_id=session_id
        ),
        extend=source_form(ExtendVideoForm),
        edit=source_form(EditVideoForm),
    )


def multipart_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` of a route whose multipart form `read_form` parses into `model`."""
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": model.model_json_schema(by_alias=True)}},
        }
    }


async def read_form(request: Request, model: type[M], max_file_bytes: int) -> M:
    """The multipart form of `request` validated by `model`: 413 before reading an oversized
    body, 415 for another content type, 400 for a form that breaks the model."""
    declared = request.headers.get("content-length")
    limit = max_file_bytes + _MULTIPART_SLACK_BYTES
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(
            413, f"The request is {declared} bytes; the limit is {limit}.", code="request_too_large"
        )
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise APIError(
            415,
            f"{request.method} {request.url.path} takes multipart/form-data (the picture in "
            "'input_reference').",
            code="unsupported_media_type",
        )
    try:
        form = await request.form(max_files=1, max_fields=64)
    except Exception as exc:
        raise invalid(f"The form could not be read: {exc}", None, "invalid_form") from exc
    try:
        if form.get("input_reference[file_id]") is not None:
            raise invalid(
                "input_reference.file_id is not supported; upload the file.",
                "input_reference.file_id",
                "unsupported_parameter",
            )
        values: dict[str, Any] = {}
        value: Any
        for name, value in form.multi_items():
            if name in values:
                raise invalid(f"'{name}' is given more than once.", name)
            if isinstance(value, UploadFile):
                value = Picture(data=await value.read(max_file_bytes + 1), filename=value.filename)
            values[name] = value
        return validated(model, values)
    finally:
        await form.close()


def validated(model: type[M], values: Any) -> M:
    """`model` from `values`, or a 400 in OpenAI's shape naming the first field at fault."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


class CreateKeyRequest(BaseModel):
    """A new API key: its project (a new one named after the key when left out) and its own
    limits (the config's defaults when left out)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=PRINTABLE)
    project: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
    )
    requests_per_minute: int | None = Field(default=None, gt=0, le=1_000_000)
    max_active_jobs: int | None = Field(default=None, gt=0, le=1_000_000)


class ProjectWebhookRequest(BaseModel):
    """A project's webhook settings: `url` sets its default URL (null clears it; left out, it
    stays); the signing secret is created on the first call and replaced with `rotate_secret`.
    The answer shows a new secret once."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=8192)
    rotate_secret: bool = False
