"""What a request is about before any planner writes a prompt: the subject the instruction names,
the picture's own label, and which category wins (the user knows their picture)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from deployments.router.protocol import PlanRequest
from deployments.router.subjects import Subject, find_subject, subject_phrase

DecidedBy = Literal["instruction", "classifier", "session", "user", "source"]


@dataclass(frozen=True)
class Understanding:
    category: str
    decided_by: DecidedBy
    subject: Subject | None  # named in the instruction
    picture_subject: str | None  # "A tabby cat": the picture's top label, when it fits

    @property
    def head(self) -> str | None:
        """The prompt's subject phrase: the instruction's, else the picture's."""
        return subject_phrase(self.subject) if self.subject is not None else self.picture_subject

    def trace_detail(self, request: PlanRequest) -> dict[str, Any]:
        named = None
        if self.subject is not None:
            named = {
                "subject": self.subject.text,
                "words": list(self.subject.words),
                "category": self.subject.category,
            }
        return {
            "decided_by": self.decided_by,
            "picture": {"category": request.category, "source": request.category_source},
            "instruction": named,
            "labels": [label.model_dump() for label in request.labels[:3]],
            "subject": self.head,
        }


def understand(request: PlanRequest, min_label_score: float) -> Understanding:
    """A subject named in the instruction that maps to a category decides it over the classifier
    (and over a session picture's earlier category); a category the user gave, or the one of the
    video being remixed, stays. The picture's top label supplies the subject only when it belongs
    to the category decided and the classifier is sure enough of it."""
    subject = find_subject(request.instruction)
    category, decided_by = request.category, request.category_source
    overridable = request.category_source in ("classifier", "session")
    if overridable and subject is not None and subject.category is not None:
        category, decided_by = subject.category, "instruction"
    label = next(
        (lb for lb in request.labels if lb.category == category and lb.score >= min_label_score),
        None,
    )
    picture_subject = None
    if label is not None:
        picture_subject = subject_phrase(
            Subject(text=label.name, words=(), category=label.category, plural=False)
        )
    return Understanding(category, decided_by, subject, picture_subject)
