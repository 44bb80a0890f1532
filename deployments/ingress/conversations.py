"""Conversations: one message at a time, answered with a clarifying question or a video; a
yes-style reply to the service's question goes ahead with the plan it proposed. Every turn is a
row (`sessions.py`)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from deployments.ingress.admission import Admission
from deployments.ingress.auth import OPEN, OPEN_PROJECT, Caller
from deployments.ingress.intake import Draft, JobIntake, picture_of
from deployments.ingress.protocol import ChatReply, SessionTurn, video_of
from deployments.ingress.sessions import SessionStore, is_affirmative
from deployments.router.protocol import Plan
from i2v_core.artifacts import ArtifactStore


class ConversationService:
    def __init__(
        self,
        sessions: SessionStore,
        artifacts: ArtifactStore,
        admission: Admission,
        intake: JobIntake,
    ):
        self.sessions = sessions
        self.artifacts = artifacts
        self.admission = admission
        self.intake = intake

    async def converse(
        self, session_id: str, text: str, image: bytes | None, caller: Caller = OPEN
    ) -> ChatReply:
        """One message of a conversation: the answer is a clarifying question or a video. A
        yes-style reply to the service's question goes ahead with the plan it proposed."""
        text = text.strip()
        project = caller.project
        await run_in_threadpool(self.admission.admit, caller)
        pending = await run_in_threadpool(self.sessions.pending_question, project, session_id)
        if (
            pending is not None
            and pending.plan is not None
            and pending.image_name is not None
            and image is None
            and is_affirmative(text)
        ):
            draft = Draft(
                instruction=pending.plan["instruction"],
                session_id=session_id,
                caller=caller,
                image=await run_in_threadpool(self.intake.stored_picture, pending.image_name),
                category=pending.category,
            )
            draft.trace.append(
                {"stage": "clarify", "decision": "confirmed", "detail": {"reply": text}}
            )
            await run_in_threadpool(self.sessions.add, project, session_id, "user", text)
            plan = Plan.model_validate(pending.plan["plan"])
            return ChatReply(
                session_id=session_id,
                type="video",
                video=video_of(await self.intake.accept(draft, plan, record_turn=False)),
            )

        draft = Draft(instruction=text, session_id=session_id, caller=caller)
        await run_in_threadpool(self.intake.attach_picture, draft, image, None)
        plan = await self.intake.plan(draft, allow_clarify=True)
        if plan.action != "clarify":
            return ChatReply(
                session_id=session_id,
                type="video",
                video=video_of(await self.intake.accept(draft, plan)),
            )
        question = plan.question or plan.prompt
        await run_in_threadpool(self._record_question, draft, plan, question)
        return ChatReply(
            session_id=session_id, type="question", question=question, proposed_prompt=plan.prompt
        )

    def messages(self, session_id: str, project: str = OPEN_PROJECT) -> list[SessionTurn]:
        return [
            SessionTurn(
                role=t.role,
                text=t.text,
                action=t.action,
                video_id=t.video_id,
                prompt=t.prompt,
                category=t.category,
                created_at=int(t.created_at),
            )
            for t in self.sessions.turns(project, session_id)
        ]

    def _record_question(self, draft: Draft, plan: Plan, question: str) -> None:
        image = picture_of(draft)
        if draft.session_id is None:
            raise RuntimeError("a clarifying question belongs to a session")
        self.artifacts.put_image(image.name, image.data)
        self.sessions.add(
            draft.caller.project,
            draft.session_id,
            "user",
            draft.instruction,
            image_sha256=image.sha256,
            image_name=image.name,
            category=draft.category,
        )
        proposal = {
            "instruction": draft.instruction,
            "plan": plan.model_copy(update={"action": "generate"}).model_dump(),
        }
        self.sessions.add(
            draft.caller.project,
            draft.session_id,
            "assistant",
            question,
            action="clarify",
            image_sha256=image.sha256,
            image_name=image.name,
            category=draft.category,
            prompt=plan.prompt,
            plan=proposal,
        )
