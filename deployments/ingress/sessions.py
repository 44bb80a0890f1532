"""Conversation sessions, per project: every turn (a user's instruction or the service's question
or video) is a row tied to a `session_id`, so follow-ups reuse the last picture and the earlier
prompts. Two projects may use the same session id without seeing each other's turns."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select

from i2v_core.jobs import JobStore, SessionTurn

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class SessionPicture:
    sha256: str
    name: str
    category: str | None


class SessionStore:
    """Reads and writes session turns, in the same database as the jobs."""

    def __init__(self, jobs: JobStore):
        self._session = jobs._session

    def add(self, project: str, session_id: str, role: Role, text: str, **fields) -> SessionTurn:
        turn = SessionTurn(
            project=project,
            session_id=session_id,
            created_at=time.time(),
            role=role,
            text=text,
            **fields,
        )
        with self._session.begin() as session:
            session.add(turn)
        return turn

    def turns(self, project: str, session_id: str, limit: int = 100) -> list[SessionTurn]:
        with self._session() as session:
            rows = session.scalars(
                select(SessionTurn)
                .where(SessionTurn.project == project, SessionTurn.session_id == session_id)
                .order_by(SessionTurn.seq.desc())
                .limit(limit)
            )
            return list(rows)[::-1]

    def last_picture(self, project: str, session_id: str) -> SessionPicture | None:
        with self._session() as session:
            turn = session.scalar(
                select(SessionTurn)
                .where(
                    SessionTurn.project == project,
                    SessionTurn.session_id == session_id,
                    SessionTurn.image_name.is_not(None),
                    SessionTurn.category.is_not(None),
                )
                .order_by(SessionTurn.seq.desc())
                .limit(1)
            )
            if turn is None or turn.image_sha256 is None or turn.image_name is None:
                return None
            return SessionPicture(turn.image_sha256, turn.image_name, turn.category)

    def prompts(self, project: str, session_id: str, limit: int = 5) -> list[str]:
        """The English prompts of the session's videos, oldest first."""
        with self._session() as session:
            rows = session.scalars(
                select(SessionTurn.prompt)
                .where(
                    SessionTurn.project == project,
                    SessionTurn.session_id == session_id,
                    SessionTurn.video_id.is_not(None),
                    SessionTurn.prompt.is_not(None),
                )
                .order_by(SessionTurn.seq.desc())
                .limit(limit)
            )
            return [prompt for prompt in rows if prompt is not None][::-1]

    def pending_question(self, project: str, session_id: str) -> SessionTurn | None:
        """The service's question, if it is the session's last turn."""
        with self._session() as session:
            turn = session.scalar(
                select(SessionTurn)
                .where(SessionTurn.project == project, SessionTurn.session_id == session_id)
                .order_by(SessionTurn.seq.desc())
                .limit(1)
            )
            if turn is not None and turn.role == "assistant" and turn.action == "clarify":
                return turn
            return None


_AFFIRMATIVE = {
    "对",
    "对的",
    "对啊",
    "对呀",
    "是",
    "是的",
    "是啊",
    "好",
    "好的",
    "好啊",
    "嗯",
    "嗯嗯",
    "可以",
    "没错",
    "行",
    "就是这样",
    "正是",
    "yes",
    "y",
    "yeah",
    "yep",
    "yup",
    "sure",
    "ok",
    "okay",
    "correct",
    "right",
    "exactly",
    "go ahead",
    "please do",
    "yes please",
    "that's right",
}
_PUNCTUATION = re.compile(r"[\s,.!?;:~，。！？；：、…]+")


def is_affirmative(text: str) -> bool:
    """A yes-style reply ("对", "是的", "yes, please") to the service's question."""
    words = [w for w in _PUNCTUATION.split(text.strip().lower()) if w]
    if not words:
        return False
    return " ".join(words) in _AFFIRMATIVE or (words[0] in _AFFIRMATIVE and len(words) <= 2)
