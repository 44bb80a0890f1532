"""Wire models of the Videos API, mirroring OpenAI's Video object field for field; our additions
(`plan`, `category`, `timings`, `trace`, ...) are extra fields, never changed standard ones."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from i2v_core.domain import VideoStatus

# The Video object lives in the core (the generator renders it into webhook events).
from i2v_core.video_object import Video as Video
from i2v_core.video_object import video_of as video_of

# What `GET /v1/videos/{id}/content?variant=` serves, and as which media type.
ContentVariant = Literal["video", "thumbnail", "spritesheet"]
CONTENT_TYPES: dict[str, str] = {
    "video": "video/mp4",
    "thumbnail": "image/webp",
    "spritesheet": "image/jpeg",
}


class VideoProgress(BaseModel):
    """The data of a `status` or `progress` event of `GET /v1/videos/{id}/events`: a video's
    status and progress at one moment (the stream ends with a `video` event: the Video)."""

    id: str = Field(description="the video's id")
    object: Literal["video.progress"] = "video.progress"
    status: VideoStatus
    progress: int = Field(ge=0, le=100)
    published_at: float | None = Field(
        default=None,
        description="when the change was published (Unix seconds, fractional); null on the "
        "first event, which is the state read from the record",
    )


class VideoList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Video]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool


class VideoDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool = True


class ChatReply(BaseModel):
    """The answer to one conversation message: a clarifying question or a created video."""

    object: Literal["session.message"] = "session.message"
    session_id: str
    type: Literal["question", "video"]
    question: str | None = None
    proposed_prompt: str | None = None
    video: Video | None = None


class SessionTurn(BaseModel):
    """One turn of a conversation: the person's message or the service's answer."""

    role: str = Field(description="user or assistant")
    text: str
    action: str | None = None
    video_id: str | None = None
    prompt: str | None = None
    category: str | None = None
    created_at: int


class SessionMessages(BaseModel):
    object: Literal["list"] = "list"
    session_id: str
    data: list[SessionTurn]


class ApiKeyInfo(BaseModel):
    """An API key as the admin API shows it: never its secret."""

    id: str
    object: Literal["api_key"] = "api_key"
    name: str
    project: str
    requests_per_minute: int
    max_active_jobs: int
    created_at: int
    revoked_at: int | None = None


class ApiKeyCreated(ApiKeyInfo):
    key: str = Field(description="the secret: shown in this answer only, store it now")


class ApiKeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ApiKeyInfo]


class ApiKeyRevoked(BaseModel):
    id: str
    object: Literal["api_key"] = "api_key"
    revoked: bool = True


class ProjectWebhook(BaseModel):
    """A project's webhook settings: its default URL and whether it has a signing secret."""

    object: Literal["project.webhook"] = "project.webhook"
    project: str
    url: str | None = Field(description="where the project's events go unless a job names one")
    has_secret: bool = Field(description="whether the project has a signing secret")
    updated_at: float | None = Field(default=None, description="unix seconds")
    secret: str | None = Field(
        default=None,
        description="the signing secret (`whsec_...`): only in the answer that created or "
        "rotated it, store it now; otherwise null",
    )


class WebhookAttemptInfo(BaseModel):
    """One attempt at a delivery."""

    attempt: int = Field(ge=1)
    started_at: float = Field(description="unix seconds")
    duration_s: float
    status_code: int | None = Field(description="the receiver's HTTP status; null if none came")
    error: str | None = None


class WebhookDeliveryInfo(BaseModel):
    """One event sent (or being sent) to a webhook, with every attempt."""

    id: str = Field(description="the event's `webhook-id` (the same on every attempt)")
    object: Literal["webhook_delivery"] = "webhook_delivery"
    event_type: Literal["video.completed", "video.failed", "video.cancelled"]
    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int = Field(ge=0)
    created_at: float = Field(description="when the job ended (unix seconds)")
    delivered_at: float | None = None
    next_attempt_at: float | None = Field(
        default=None, description="when the next attempt is due, while pending"
    )
    last_error: str | None = None
    attempts_detail: list[WebhookAttemptInfo]


class WebhookDeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WebhookDeliveryInfo]
