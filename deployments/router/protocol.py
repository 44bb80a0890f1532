"""The typed messages of the router: what it is asked (PlanRequest) and what it decides (Plan)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Where the picture's category in a PlanRequest came from. A subject named in the instruction
# overrides a classifier's (or a session picture's) category; a user's or a remixed source's
# category stays.
CategorySource = Literal["classifier", "session", "user", "source"]


class Label(BaseModel):
    """Something the classifier saw in the picture ("espresso"), its score and its category, as
    the router reads it (the router takes it by value, so it imports nothing of the classifier)."""

    name: str
    score: float = Field(ge=0.0, le=1.0)
    category: str


class UserParams(BaseModel):
    """Generation settings the user gave explicitly (already range-checked by the ingress)."""

    model_config = ConfigDict(extra="forbid")

    num_frames: int | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    fps: int | None = None
    seed: int | None = None
    seconds: float | None = None
    size: tuple[int, int] | None = None  # (width, height)


class GenerationParams(BaseModel):
    """The settings one generation runs with."""

    model_config = ConfigDict(extra="forbid")

    width: int
    height: int
    num_frames: int
    num_inference_steps: int
    guidance_scale: float
    fps: int
    seed: int

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps


class PlanRequest(BaseModel):
    """Everything the router looks at for one request."""

    model_config = ConfigDict(extra="forbid")

    instruction: str
    category: str = Field(description="the picture's category before the instruction is read")
    category_source: CategorySource = "classifier"
    labels: list[Label] = Field(
        default_factory=list, description="what the classifier saw in the picture, best first"
    )
    image_width: int = Field(gt=0)
    image_height: int = Field(gt=0)
    user: UserParams = Field(default_factory=UserParams)
    history: list[str] = Field(
        default_factory=list, description="the session's earlier English prompts, oldest first"
    )
    previous: GenerationParams | None = Field(
        default=None, description="settings of the video this request continues (remix)"
    )
    allow_clarify: bool = Field(
        default=False,
        description="the conversation endpoint may ask a question; /v1/videos never does",
    )


class Decision(BaseModel):
    """One line of the decision trace."""

    stage: str
    decision: str
    detail: dict = Field(default_factory=dict)


class Plan(BaseModel):
    """The router's answer: what to generate and how, with the reasons."""

    action: Literal["generate", "clarify"] = "generate"
    planner: Literal["rules", "llm"]
    category: str | None = Field(
        default=None, description="the category the plan is for: its parameters' table row"
    )
    subject: str | None = Field(
        default=None,
        description="what the prompt is about, in English, as the instruction or "
        "the picture's label named it",
    )
    prompt: str
    negative_prompt: str
    motion: str
    question: str | None = None
    overrides: dict[str, float] = Field(
        default_factory=dict, description="parameter changes the planner asked for"
    )
    params: GenerationParams
    param_sources: dict[str, str] = Field(
        description="for each parameter: table, user, plan, seconds, size, image, default, "
        "random, with ',clamped' appended when a limit changed it"
    )
    trace: list[Decision] = Field(default_factory=list)
