"""Wire models of the Videos API, mirroring OpenAI's Video object field for field; our additions
(`plan`, `category`, `timings`, `trace`, ...) are extra fields, never changed standard ones."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from i2v_core.domain import VideoStatus


class VideoError(BaseModel):
    code: str
    message: str


class Video(BaseModel):
    """OpenAI's Video object plus extension fields."""

    id: str
    object: Literal["video"] = "video"
    model: str
    status: VideoStatus
    progress: int = Field(ge=0, le=100)
    created_at: int
    completed_at: int | None = None
    expires_at: int | None = None
    prompt: str | None = None
    remixed_from_video_id: str | None = None
    seconds: str
    size: str
    error: VideoError | None = None
    # Extensions.
    session_id: str | None = None
    category: str | None = None
    category_scores: dict[str, float] | None = None
    plan: dict[str, Any] | None = None
    timings: dict[str, float] | None = None
    trace: list[dict[str, Any]] | None = None


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
