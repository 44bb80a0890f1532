"""The job store: one row per video job and one per conversation turn, in a SQL database
reached through SQLAlchemy by URL (SQLite file by default, PostgreSQL for a cluster). Status
only moves forward: every transition is a guarded UPDATE, so a redelivered task or a late
writer cannot undo a final state."""

from __future__ import annotations

import builtins
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from i2v_core.domain import ACTIVE_STATUSES, TERMINAL_STATUSES, VideoStatus
from i2v_core.search_terms import document_terms, query_terms

# From which statuses each transition may start.
_STARTABLE = ACTIVE_STATUSES  # in_progress: a task delivered again after a crash


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    # Whose it is: the project of the API key that created it ("" while auth is off), and the
    # key (its active jobs count against the key's limit).
    project: Mapped[str] = mapped_column(String(64), index=True, default="", server_default="")
    key_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    updated_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    completed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    model: Mapped[str] = mapped_column(String(128))
    instruction: Mapped[str] = mapped_column(Text)
    prompt: Mapped[str] = mapped_column(Text)
    negative_prompt: Mapped[str] = mapped_column(Text)
    session_id: Mapped[str | None] = mapped_column(String(128), index=True, nullable=True)
    remixed_from: Mapped[str | None] = mapped_column(String(64), nullable=True)
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    image_name: Mapped[str] = mapped_column(String(128))
    cache_key: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    category: Mapped[str] = mapped_column(String(32), index=True)
    category_scores: Mapped[dict] = mapped_column(JSON)
    params: Mapped[dict] = mapped_column(JSON)
    plan: Mapped[dict] = mapped_column(JSON)
    timings: Mapped[dict] = mapped_column(JSON, default=dict)
    trace: Mapped[list] = mapped_column(JSON, default=list)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Retention: when the files go (set on completion) and when the sweeper removed them.
    expires_at: Mapped[float | None] = mapped_column(Float, index=True, nullable=True)
    expired_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Where this job's final event is sent (else the project's default URL, if any).
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Extensions and edits: "extension" or "edit", the video of ours it continues (if any), and
    # the stored video (`ArtifactStore.source_video_path`) the result begins with (extensions).
    operation: Mapped[str | None] = mapped_column(String(16), nullable=True)
    source_video_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prefix_video: Mapped[str | None] = mapped_column(String(128), index=True, nullable=True)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class SessionTurn(Base):
    __tablename__ = "session_turns"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(64), default="", server_default="")
    session_id: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(String(16), nullable=True)
    image_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    image_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    plan: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    video_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ApiKey(Base):
    """An API key (`keys.py`): its project and limits; the secret only as its digest."""

    __tablename__ = "api_keys"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(128))
    project: Mapped[str] = mapped_column(String(64), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_active_jobs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Project(Base):
    """A project's settings: its default webhook URL and the secret its webhooks are signed
    with (kept to sign; shown to the admin once, when set)."""

    __tablename__ = "projects"

    project: Mapped[str] = mapped_column(String(64), primary_key=True)
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_secret: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_at: Mapped[float] = mapped_column(Float)


class WebhookDelivery(Base):
    """One webhook event to deliver (the outbox, written in the transaction that ends the job):
    pending until a receiver answers 2xx, retried with backoff until it gives up (failed)."""

    __tablename__ = "webhook_deliveries"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)  # the webhook-id
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    project: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    next_attempt_at: Mapped[float | None] = mapped_column(Float, index=True, nullable=True)
    claimed_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class WebhookAttempt(Base):
    """One try at delivering a webhook: when, how long, the receiver's status or the error."""

    __tablename__ = "webhook_attempts"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_seq: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.seq", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Float)
    duration_s: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class SearchTerm(Base):
    """A term of a job's instruction or English prompt (`search_terms.py`): the index behind
    `GET /v1/videos?q=`. The primary key (term, job) serves exact and prefix lookups."""

    __tablename__ = "search_terms"

    term: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    job_seq: Mapped[int] = mapped_column(
        ForeignKey("jobs.seq", ondelete="CASCADE"), primary_key=True, index=True
    )


def search_term_rows(job: Job) -> list[dict[str, Any]]:
    return [{"term": t, "job_seq": job.seq} for t in document_terms(job.instruction, job.prompt)]


MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(engine: Engine, attempts: int = 3, revision: str = "head") -> None:
    """Create or upgrade the schema to the newest Alembic revision (or `revision`). Replicas
    starting together take turns (an advisory lock on PostgreSQL; a retry where SQLite lost a
    race)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    tables = set(inspect(engine).get_table_names())
    if "jobs" in tables and "alembic_version" not in tables:
        raise RuntimeError(
            f"the job database {engine.url!r} was created before schema migrations existed; "
            "move it aside (or delete it) and start again"
        )
    for attempt in range(attempts):
        try:
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                alembic_command.upgrade(config, revision)
            return
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def new_job_id() -> str:
    return f"video_{uuid.uuid4().hex}"


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


# Called inside the transaction that ends a job (completed or failed), with the final row: what
# must happen exactly when the job ends, or not at all (the webhook outbox).
FinalHook = Callable[[Session, "Job"], None]
# Called after each committed change of a job's status or progress: (job id, status, progress).
ChangeHook = Callable[[str, str, int], None]


class JobStore:
    """All reads and writes of job rows. Safe to share between threads.

    `retention_s`: a completed video's files are kept this long (`expires_at`); `on_final` and
    `on_change` are the hooks above (the webhook outbox and the progress events)."""

    def __init__(
        self,
        url: str,
        create_schema: bool = True,
        *,
        retention_s: float | None = None,
        on_final: FinalHook | None = None,
        on_change: ChangeHook | None = None,
    ):
        self.engine = make_engine(url)
        if create_schema:
            migrate(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self.retention_s = retention_s
        self.on_final = on_final
        self.on_change = on_change

    def _changed(self, job_id: str, status: str, progress: int) -> None:
        if self.on_change is not None:
            try:
                self.on_change(job_id, status, progress)
            except Exception:  # an event lost is a stream that polls; never a failed write
                logging.getLogger("ray.serve").exception("publishing a job change failed")

    def _expiry(self, completed_at: float) -> float | None:
        return completed_at + self.retention_s if self.retention_s is not None else None

    def close(self) -> None:
        self.engine.dispose()

    # --- reads -------------------------------------------------------------------------------

    def get(self, job_id: str, project: str | None = None) -> Job | None:
        """The job; with `project`, only if it belongs to that project (else None, exactly as
        for an id that does not exist)."""
        with self._session() as session:
            query = select(Job).where(Job.id == job_id)
            if project is not None:
                query = query.where(Job.project == project)
            return session.scalar(query)

    def list(
        self,
        after: str | None,
        limit: int,
        order: Literal["asc", "desc"],
        *,
        project: str | None = None,
        session_id: str | None = None,
        status: str | None = None,
        category: str | None = None,
        words: Sequence[str] = (),
        created_after: float | None = None,
        created_before: float | None = None,
    ) -> tuple[list[Job], bool] | None:
        """A page of jobs and whether more follow; None when `after` names no job. Filters
        combine with AND: each of `words` must occur in the instruction or the English prompt
        (case-insensitive for ASCII) where words begin (`search_terms.py`: a prefix of a word,
        any part of Chinese text); `created_after`/`created_before` bound `created_at`
        inclusively."""
        with self._session() as session:
            query = select(Job)
            if project is not None:
                query = query.where(Job.project == project)
            if after is not None:
                anchor_query = select(Job.seq).where(Job.id == after)
                if project is not None:
                    anchor_query = anchor_query.where(Job.project == project)
                anchor = session.scalar(anchor_query)
                if anchor is None:
                    return None
                query = query.where(Job.seq > anchor if order == "asc" else Job.seq < anchor)
            if session_id is not None:
                query = query.where(Job.session_id == session_id)
            if status is not None:
                query = query.where(Job.status == status)
            if category is not None:
                query = query.where(Job.category == category)
            if created_after is not None:
                query = query.where(Job.created_at >= created_after)
            if created_before is not None:
                query = query.where(Job.created_at <= created_before)
            for word in words:
                for term in query_terms(word):  # through the index first
                    matching = SearchTerm.term == term.term
                    if term.prefix:
                        matching = SearchTerm.term.between(term.term, term.upper_bound)
                    query = query.where(Job.seq.in_(select(SearchTerm.job_seq).where(matching)))
                query = query.where(
                    or_(
                        Job.instruction.icontains(word, autoescape=True),
                        Job.prompt.icontains(word, autoescape=True),
                    )
                )
            query = query.order_by(Job.seq.asc() if order == "asc" else Job.seq.desc())
            rows = list(session.scalars(query.limit(limit + 1)))
            return rows[:limit], len(rows) > limit

    def count(self, statuses: Iterable[str] | None = None, key_id: str | None = None) -> int:
        with self._session() as session:
            query = select(func.count()).select_from(Job)
            if statuses is not None:
                query = query.where(Job.status.in_(list(statuses)))
            if key_id is not None:
                query = query.where(Job.key_id == key_id)
            return session.scalar(query) or 0

    def expired_due(self, now: float, limit: int) -> builtins.list[Job]:
        """Completed jobs past `expires_at` whose files are not yet removed, oldest first."""
        with self._session() as session:
            query = (
                select(Job)
                .where(Job.expires_at <= now, Job.expired_at.is_(None))
                .order_by(Job.expires_at.asc())
                .limit(limit)
            )
            return builtins.list(session.scalars(query))

    def mark_expired(self, job_id: str, now: float) -> bool:
        """Records that the job's files were removed; False if another sweep did it first."""
        with self._session.begin() as session:
            result = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.expired_at.is_(None))
                .values(expired_at=now, updated_at=now)
            )
            return _rowcount(result) == 1

    def image_in_use(self, sha256: str) -> bool:
        with self._session() as session:
            return (
                session.scalar(select(Job.id).where(Job.image_sha256 == sha256).limit(1))
                is not None
            )

    def prefix_video_in_use(self, name: str) -> bool:
        """Whether a job not yet expired begins with the stored source video `name`."""
        with self._session() as session:
            query = select(Job.id).where(Job.prefix_video == name, Job.expired_at.is_(None))
            return session.scalar(query.limit(1)) is not None

    def is_active(self, job_id: str) -> bool:
        with self._session() as session:
            status = session.scalar(select(Job.status).where(Job.id == job_id))
            return status in ACTIVE_STATUSES

    # --- writes ------------------------------------------------------------------------------

    def find_by_idempotency_key(self, key: str) -> Job | None:
        """The job created with this stored key (`scoped_idempotency_key`: per project)."""
        with self._session() as session:
            return session.scalar(select(Job).where(Job.idempotency_key == key))

    def find_cached(self, cache_key: str, project: str = "") -> Job | None:
        """The newest completed job of `project` with this cache key: the result cache never
        answers one project with another's video."""
        with self._session() as session:
            return session.scalar(
                select(Job)
                .where(
                    Job.cache_key == cache_key,
                    Job.status == "completed",
                    Job.project == project,
                    Job.expired_at.is_(None),
                )
                .order_by(Job.seq.desc())
                .limit(1)
            )

    def create(self, job: Job, completed: bool = False) -> Job:
        """Insert a new job, queued; or already completed (a result-cache hit)."""
        now = time.time()
        job.created_at = job.created_at or now
        job.updated_at = now
        job.status = "completed" if completed else "queued"
        job.completed_at = now if completed else None
        job.progress = 100 if completed else 0
        job.attempts = 0
        job.timings = job.timings or {}
        job.trace = job.trace or []
        job.expires_at = self._expiry(now) if completed else None
        with self._session.begin() as session:
            session.add(job)
            session.flush()  # assigns job.seq
            if terms := search_term_rows(job):
                session.execute(insert(SearchTerm), terms)
            if completed and self.on_final is not None:
                self.on_final(session, job)
        self._changed(job.id, job.status, job.progress)
        return job

    def delete(self, job_id: str, project: str | None = None) -> Job | None:
        with self._session.begin() as session:
            query = select(Job).where(Job.id == job_id)
            if project is not None:
                query = query.where(Job.project == project)
            job = session.scalar(query)
            if job is None:
                return None
            session.execute(delete(SearchTerm).where(SearchTerm.job_seq == job.seq))
            session.execute(delete(Job).where(Job.id == job_id))
            return job

    def _transition(self, job_id: str, allowed_from: Iterable[VideoStatus], **values: Any) -> bool:
        values["updated_at"] = time.time()
        with self._session.begin() as session:
            result = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status.in_(list(allowed_from)))
                .values(**values)
            )
            return _rowcount(result) == 1

    def start(self, job_id: str) -> Job | None:
        """Mark a job in progress and count the attempt; None if it is gone or already final."""
        now = time.time()
        with self._session.begin() as session:
            started = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status.in_(_STARTABLE))
                .values(
                    status="in_progress",
                    attempts=Job.attempts + 1,
                    started_at=now,
                    updated_at=now,
                    progress=0,
                )
            )
            if _rowcount(started) != 1:
                return None
            job = session.scalar(select(Job).where(Job.id == job_id))
        self._changed(job_id, "in_progress", 0)
        return job

    def set_progress(self, job_id: str, progress: int) -> bool:
        progress = max(0, min(99, progress))
        if not self._transition(job_id, ("in_progress",), progress=progress):
            return False
        self._changed(job_id, "in_progress", progress)
        return True

    def announce_progress(self, job_id: str, progress: int) -> None:
        """Progress told to listeners (the event stream) without writing the row: every
        denoising step is announced, the row is written at a bounded rate."""
        self._changed(job_id, "in_progress", max(0, min(99, progress)))

    def complete(
        self,
        job_id: str,
        timings: dict[str, float],
        trace: builtins.list[dict],
        params: dict | None = None,
    ) -> bool:
        """`params`: what finally ran, when out-of-memory recovery lowered the size or frames."""
        extra = {"params": params} if params is not None else {}
        return self._finish(job_id, "completed", timings, trace, **extra)

    def fail(
        self,
        job_id: str,
        code: str,
        message: str,
        timings: dict[str, float] | None = None,
        trace: builtins.list[dict] | None = None,
    ) -> bool:
        return self._finish(
            job_id, "failed", timings or {}, trace or [], error_code=code, error_message=message
        )

    def _finish(
        self,
        job_id: str,
        status: VideoStatus,
        timings: dict[str, float],
        trace: builtins.list[dict],
        **values: Any,
    ) -> bool:
        """One guarded UPDATE decides the race (on SQLite and PostgreSQL alike): only the writer
        that moves the row out of an active status wins and then adds its timings and trace."""
        now = time.time()
        final = {"status": status, "completed_at": now, "updated_at": now, **values}
        if status == "completed":
            final.update(progress=100, expires_at=self._expiry(now))
        with self._session.begin() as session:
            won = session.execute(
                update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE_STATUSES)).values(**final)
            )
            if _rowcount(won) != 1:
                return False
            job = session.scalars(select(Job).where(Job.id == job_id)).one()
            job.timings = {**(job.timings or {}), **timings}
            job.trace = [*(job.trace or []), *trace]
            if self.on_final is not None:
                session.flush()
                self.on_final(session, job)
            progress = job.progress
        self._changed(job_id, status, progress)
        return True


def _rowcount(result: Any) -> int:
    """The rows an UPDATE or DELETE matched (a CursorResult's; SQLAlchemy types execute() as the
    general Result)."""
    return int(result.rowcount)


def scoped_idempotency_key(project: str, key: str) -> str:
    """What is stored for a client's Idempotency-Key: a digest of (project, key), so that one
    project's key never finds another project's job (the column is unique across projects)."""
    return hashlib.sha256(f"{project}\x00{key}".encode()).hexdigest()
