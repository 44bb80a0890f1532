"""A webhook receiver on 127.0.0.1 for tests and benchmarks: a small threaded HTTP server that
verifies every request with the Standard Webhooks library, answers what the test tells it to, and
keeps a record of each request (arrival time, webhook-id, answer, the verified event)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

# (the verified event, how many requests with this webhook-id came before) -> HTTP status
Answer = Callable[[dict[str, Any], int], int]


@dataclass(frozen=True)
class Received:
    at: float  # time.time() on arrival
    path: str
    webhook_id: str
    status: int  # what the receiver answered
    event: dict[str, Any] | None  # the verified body; None when verification failed
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.event is not None and 200 <= self.status < 300


class WebhookReceiver:
    def __init__(self, secret: str = "", answer: Answer | None = None):
        self.secret = secret  # set it once the project's secret is known
        self.answer: Answer = answer or (lambda event, earlier: 200)
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def requests_for(self, video_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.event and r.event["data"]["id"] == video_id]

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.accepted]

    def wait_until(self, condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"{what}: not within {timeout_s} s; received {self.received}")

    def _handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        arrived = time.time()
        webhook_id = headers.get("webhook-id", "")
        try:
            event = Webhook(self.secret).verify(body, headers)
        except (WebhookVerificationError, ValueError) as exc:
            with self._lock:
                self.received.append(Received(arrived, path, webhook_id, 401, None, str(exc)))
            return 401
        with self._lock:
            earlier = sum(1 for r in self.received if r.webhook_id == webhook_id)
        status = self.answer(event, earlier)
        with self._lock:
            self.received.append(Received(arrived, path, webhook_id, status, event))
        return status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._handle(self.path, headers, body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        return Handler
