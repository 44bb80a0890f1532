"""API keys: who may call the service, in which project, within which limits. A key's secret is
random (256 bits), shown once when it is created, and stored only as its SHA-256 digest (a
digest of a random 256-bit secret needs no slow hash); it is never logged, only its id."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update

from i2v_core.jobs import ApiKey, JobStore

SECRET_PREFIX = "sk-i2v-"


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    secret: str  # shown to the caller once, never stored


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """Reads and writes API keys, in the same database as the jobs."""

    def __init__(self, jobs: JobStore):
        self._session = jobs._session

    def create(
        self,
        name: str,
        project: str | None = None,
        requests_per_minute: int | None = None,
        max_active_jobs: int | None = None,
    ) -> NewKey:
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        key_id = f"key_{uuid.uuid4().hex}"
        key = ApiKey(
            id=key_id,
            name=name,
            project=project or f"proj_{uuid.uuid4().hex[:16]}",
            secret_sha256=digest(secret),
            requests_per_minute=requests_per_minute,
            max_active_jobs=max_active_jobs,
            created_at=time.time(),
        )
        with self._session.begin() as session:
            session.add(key)
        return NewKey(key, secret)

    def list(self) -> list[ApiKey]:
        with self._session() as session:
            return list(session.scalars(select(ApiKey).order_by(ApiKey.seq)))

    def revoke(self, key_id: str) -> ApiKey | None:
        """The key, revoked now (its next request gets 401); None if no such key."""
        with self._session.begin() as session:
            key = session.scalar(select(ApiKey).where(ApiKey.id == key_id))
            if key is None:
                return None
            if key.revoked_at is None:
                session.execute(
                    update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=time.time())
                )
                key.revoked_at = time.time()
            return key

    def authenticate(self, secret: str) -> ApiKey | None:
        """The live key whose secret this is, or None."""
        wanted = digest(secret)
        with self._session() as session:
            key = session.scalar(select(ApiKey).where(ApiKey.secret_sha256 == wanted))
        if key is None or key.revoked_at is not None:
            return None
        # The lookup went by digest; compare in constant time all the same.
        return key if hmac.compare_digest(key.secret_sha256, wanted) else None


def admin_key_matches(secret: str, admin_secret: str) -> bool:
    return hmac.compare_digest(digest(secret), digest(admin_secret))
