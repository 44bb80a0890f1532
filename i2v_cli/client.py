"""The service seen from the command line: the official `openai` client for the Videos API
and plain httpx for the extension endpoints (search filters, conversations). Every failure
becomes a `ServiceError` whose text is one line: the service's message and code, or that
nothing answers at the URL."""

from __future__ import annotations

import contextlib
import mimetypes
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai

from i2v_cli.events import EventParser

# openai 3.x marks its videos methods deprecated (OpenAI's hosted video API was retired); the
# same /v1/videos shape is this service's contract.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"i2v_cli\..*")
warnings.filterwarnings("ignore", message=".*Sora API.*")

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
FINAL = ("completed", "failed")
# The service sends a keep-alive every `events.heartbeat_s` (15 s by default): a progress stream
# silent for this long is broken, and the client polls instead.
STREAM_IDLE_S = 60.0


class ServiceError(Exception):
    """A request the service refused or could not answer, as one line for a person."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after

    def __str__(self) -> str:
        details = [
            f"code: {self.code}" if self.code else None,
            f"HTTP {self.status}" if self.status else None,
        ]
        details = [d for d in details if d]
        return f"{self.message} ({', '.join(details)})" if details else self.message

    @property
    def retryable(self) -> bool:
        """Overloaded (429) or briefly unavailable with a Retry-After (503): nothing was
        created, so the same request may be sent again."""
        return self.status == 429 or (self.status == 503 and self.retry_after is not None)


class NotRunning(ServiceError):
    """Nothing answers at the base URL."""


@dataclass
class JobOptions:
    """Generation settings a user may give; None leaves the choice to the service."""

    size: str | None = None
    seconds: str | None = None
    seed: int | None = None
    num_frames: int | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    fps: int | None = None
    category: str | None = None
    session_id: str | None = None

    def fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class Service:
    def __init__(self, base_url: str | None = None, timeout_s: float = 120.0):
        self.base_url = (base_url or os.environ.get("I2V_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        if self.base_url.endswith("/v1"):
            self.base_url = self.base_url[: -len("/v1")]
        # The service's API key (auth on) as the openai client takes it: $OPENAI_API_KEY.
        api_key = os.environ.get("OPENAI_API_KEY") or "unused"
        self.openai = openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=api_key, max_retries=0, timeout=timeout_s
        )
        self.http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {api_key}"},
        )
        self._streams: set[httpx.Response] = set()  # progress streams being read

    def close(self) -> None:
        self.http.close()
        self.openai.close()

    # --- the Videos API, through the openai client ----------------------------------------

    def create(
        self,
        image: Path,
        instruction: str,
        options: JobOptions,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        fields = options.fields()
        standard = {k: fields.pop(k) for k in ("size", "seconds") if k in fields}
        mime = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        with self._errors():
            video = self.openai.videos.create(
                prompt=instruction,
                input_reference=(image.name, image.read_bytes(), mime),
                **standard,
                extra_body=fields or None,
                extra_headers=headers,
            )
        return video.model_dump()

    def retrieve(self, video_id: str) -> tuple[dict[str, Any], float]:
        """The Video and how long the service asks to wait before the next poll (seconds)."""
        with self._errors():
            raw = self.openai.videos.with_raw_response.retrieve(video_id)
            video = raw.parse().model_dump()
        poll_ms = raw.headers.get("openai-poll-after-ms")
        return video, float(poll_ms) / 1000 if poll_ms and poll_ms.isdigit() else 1.0

    def wait(
        self,
        video_id: str,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        min_poll_s: float = 0.1,
        max_poll_s: float = 2.0,
    ) -> dict[str, Any]:
        """Follows the job's progress stream until it is completed or failed; when the stream
        cannot be had (an older service, a 429) or breaks, polls instead, honouring
        openai-poll-after-ms."""
        final = self.follow(video_id, on_update)
        if final is not None:
            return final
        while True:
            video, poll_s = self.retrieve(video_id)
            if on_update is not None:
                on_update(video)
            if video["status"] in FINAL:
                return video
            time.sleep(min(max(poll_s, min_poll_s), max_poll_s))

    def follow(
        self, video_id: str, on_update: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any] | None:
        """The final Video from `GET /v1/videos/{id}/events`, calling `on_update` with the video
        as each event leaves it; None when the stream is refused or breaks before the end (the
        caller polls)."""
        current: dict[str, Any] = {"id": video_id}
        parser = EventParser()
        timeout = httpx.Timeout(self.http.timeout.connect, read=STREAM_IDLE_S)
        try:
            with self.http.stream(
                "GET",
                f"/v1/videos/{video_id}/events",
                headers={"Accept": "text/event-stream"},
                timeout=timeout,
            ) as response:
                if response.status_code != 200:
                    return None
                self._streams.add(response)
                try:
                    for line in response.iter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        if event.event == "video":
                            final = event.json()
                            if on_update is not None:
                                on_update(final)
                            return final
                        if event.event in ("status", "progress"):
                            data = event.json()
                            current = {
                                **current,
                                "status": data["status"],
                                "progress": data["progress"],
                            }
                            if on_update is not None:
                                on_update(current)
                        elif event.event == "error":
                            return None  # gone meanwhile: polling says how, in one line
                finally:
                    self._streams.discard(response)
        except (httpx.HTTPError, ValueError, KeyError, OSError):
            return None
        return None

    def interrupt_streams(self) -> None:
        """Ends the progress streams other threads are reading (a batch stopping): their
        `wait` falls back to polling, where the stop is noticed."""
        for response in list(self._streams):
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def download(self, video_id: str, target: Path) -> Path:
        """The MP4, written beside `target` first and renamed into place."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")
        with self._errors():
            self.openai.videos.download_content(video_id).write_to_file(partial)
        os.replace(partial, target)
        return target

    # --- extension endpoints, through httpx ----------------------------------------------

    def search(self, **filters: Any) -> dict[str, Any]:
        params = {k: v for k, v in filters.items() if v is not None and v != ""}
        return self._json("GET", "/v1/videos", params=params)

    # --- the admin API (the admin key, $I2V_ADMIN_KEY) -------------------------------------

    def admin(self, method: str, path: str, admin_key: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {admin_key}"}
        return self._json(method, f"/v1/admin/keys{path}", headers=headers, **kwargs)

    def message(self, session_id: str, text: str, image: Path | None = None) -> dict[str, Any]:
        path = f"/v1/sessions/{session_id}/messages"
        if image is None:
            return self._json("POST", path, json={"text": text})
        mime = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
        files = {"input_reference": (image.name, image.read_bytes(), mime)}
        return self._json("POST", path, data={"text": text}, files=files)

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise self._not_running() from exc
        except httpx.TimeoutException as exc:
            raise ServiceError(f"The service at {self.base_url} did not answer in time.") from exc
        except httpx.HTTPError as exc:
            raise ServiceError(f"Could not reach {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise _from_response(response.status_code, response.headers, _body(response))
        return response.json()

    # --- errors ----------------------------------------------------------------------------

    def _not_running(self) -> NotRunning:
        return NotRunning(f"The service is not running at {self.base_url} (connection refused).")

    def _errors(self):
        return _OpenAIErrors(self)


class _OpenAIErrors:
    """Turns the openai client's exceptions into ServiceError."""

    def __init__(self, service: Service):
        self.service = service

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, traceback) -> bool:
        if exc is None:
            return False
        if isinstance(exc, openai.APITimeoutError):
            raise ServiceError(
                f"The service at {self.service.base_url} did not answer in time."
            ) from exc
        if isinstance(exc, openai.APIConnectionError):
            raise self.service._not_running() from exc
        if isinstance(exc, openai.APIStatusError):
            body = exc.body if isinstance(exc.body, dict) else {}
            if "error" not in body and isinstance(body.get("message"), str):
                body = {"error": body}  # the SDK hands over the inner error object
            raise _from_response(exc.status_code, exc.response.headers, body) from exc
        return False


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _from_response(status: int, headers: Any, body: dict[str, Any]) -> ServiceError:
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    message = error.get("message") or f"The service answered HTTP {status}."
    retry_after = headers.get("retry-after")
    try:
        retry_s = float(retry_after) if retry_after is not None else None
    except ValueError:
        retry_s = None
    return ServiceError(message, status=status, code=error.get("code"), retry_after=retry_s)
