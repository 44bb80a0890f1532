"""Who is calling: the bearer key of a request resolved to its project and limits. With auth
off every request is the open caller (project ""); on, a missing, malformed, unknown or revoked
key is a 401 `invalid_api_key`, and the admin key opens the admin routes only."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from deployments.ingress.config import AuthConfig
from i2v_core.errors import APIError
from i2v_core.keys import ApiKey, KeyStore, admin_key_matches

logger = logging.getLogger("ray.serve")

OPEN_PROJECT = ""


@dataclass(frozen=True)
class Caller:
    project: str
    key_id: str | None = None
    requests_per_minute: int | None = None  # None: unlimited (auth off, or the admin)
    max_active_jobs: int | None = None
    is_admin: bool = False


OPEN = Caller(project=OPEN_PROJECT)
ADMIN = Caller(project=OPEN_PROJECT, is_admin=True)


def invalid_api_key(message: str) -> APIError:
    return APIError(
        401,
        message,
        code="invalid_api_key",
        headers={"WWW-Authenticate": 'Bearer realm="i2v"'},
    )


def admin_secret_from_env(config: AuthConfig) -> str | None:
    """The admin key if auth is on; None if off (and then one warning). Raises when the config
    asks for auth but the environment holds no admin key."""
    secret = os.environ.get(config.admin_key_env) or None
    if secret is None and config.enabled:
        raise RuntimeError(
            f"auth.enabled is set but ${config.admin_key_env} is empty: set the admin key in "
            "the environment of the Ray nodes (a Kubernetes secret on KubeRay)"
        )
    if secret is None:
        logger.warning(
            "authentication is off: anyone who reaches this port can create, read and delete "
            "every video; set $%s to turn API keys on",
            config.admin_key_env,
        )
    return secret


class Authenticator:
    def __init__(self, config: AuthConfig, keys: KeyStore, admin_secret: str | None):
        self.config = config
        self.keys = keys
        self._admin_secret = admin_secret

    @property
    def enabled(self) -> bool:
        return self._admin_secret is not None

    def caller(self, authorization: str | None) -> Caller:
        if self._admin_secret is None:
            return OPEN
        secret = _bearer(authorization)
        if admin_key_matches(secret, self._admin_secret):
            return ADMIN
        key = self.keys.authenticate(secret)
        if key is None:
            raise invalid_api_key("Incorrect API key provided (unknown or revoked).")
        return self._caller_of(key)

    def _caller_of(self, key: ApiKey) -> Caller:
        return Caller(
            project=key.project,
            key_id=key.id,
            requests_per_minute=key.requests_per_minute or self.config.requests_per_minute,
            max_active_jobs=key.max_active_jobs or self.config.max_active_jobs,
        )


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise invalid_api_key(
            "You didn't provide an API key: send it as 'Authorization: Bearer <key>'."
        )
    scheme, _, secret = authorization.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or " " in secret:
        raise invalid_api_key("The Authorization header must be 'Bearer <key>'.")
    return secret
