"""A scripted OpenAI-compatible chat server for tests: a real HTTP server on 127.0.0.1 that
answers `POST /v1/chat/completions` in the real protocol shape and records what it was sent."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Build it with `structured`, `text` or `error`; `.after(s)` delays it."""

    status: int = 200
    payload: Any = None
    kind: str = "structured"  # structured | text | error
    delay_s: float = 0.0

    @classmethod
    def structured(cls, obj: dict) -> Reply:
        """The object as the model's structured answer: JSON content when the request asked for
        a `response_format`, a call of the requested tool when it sent `tools`."""
        return cls(payload=obj, kind="structured")

    @classmethod
    def text(cls, content: str) -> Reply:
        """Raw assistant content, e.g. invalid JSON."""
        return cls(payload=content, kind="text")

    @classmethod
    def error(cls, status: int = 500, message: str = "internal server error") -> Reply:
        return cls(status=status, payload=message, kind="error")

    def after(self, seconds: float) -> Reply:
        return replace(self, delay_s=seconds)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict = field(default_factory=dict)

    @property
    def messages(self) -> list[dict]:
        return self.body.get("messages", [])

    def message_text(self, role: str) -> str:
        """All content of the messages with this role, joined."""
        parts = [m.get("content") or "" for m in self.messages if m.get("role") == role]
        return "\n".join(p if isinstance(p, str) else json.dumps(p) for p in parts)


def completion_body(reply: Reply, request: dict, number: int) -> dict:
    """The chat.completion object the real API returns for this reply."""
    message: dict[str, Any] = {"role": "assistant", "content": None}
    finish_reason = "stop"
    if reply.kind == "text":
        message["content"] = reply.payload
    elif request.get("tools"):
        choice = request.get("tool_choice")
        name = (
            choice["function"]["name"]
            if isinstance(choice, dict)
            else request["tools"][0]["function"]["name"]
        )
        message["tool_calls"] = [
            {
                "id": f"call_{number}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(reply.payload)},
            }
        ]
        finish_reason = "tool_calls"
    else:
        message["content"] = json.dumps(reply.payload)
    completion_tokens = len(json.dumps(message)) // 4
    prompt_tokens = len(json.dumps(request.get("messages", []))) // 4
    return {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "fake"),
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def error_body(message: str, kind: str = "server_error") -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class FakeOpenAIServer:
    """Start with `with FakeOpenAIServer() as server:`; point a client at `server.url`
    (non-streaming chat completions only).

    Replies are played in the order `script` gave them; the last one repeats once the script
    runs out, so client retries see the same answer. `requests` lists what arrived."""

    def __init__(self, replies: list[Reply] | None = None):
        self.requests: list[RecordedRequest] = []
        self._replies: list[Reply] = list(replies or [])
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._numbers = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @staticmethod
    def closed_url() -> str:
        """A URL on a port nothing listens on (connection refused)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def script(self, replies: list[Reply]) -> None:
        """Replace the scripted replies and forget the recorded requests."""
        with self._lock:
            self._replies = list(replies)
            self.requests.clear()

    def _next(self, recorded: RecordedRequest) -> tuple[Reply | None, int]:
        with self._lock:
            self.requests.append(recorded)
            if len(self._replies) > 1:
                reply: Reply | None = self._replies.pop(0)
            else:
                reply = self._replies[0] if self._replies else None
            return reply, next(self._numbers)

    def start(self) -> FakeOpenAIServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False  # idle keep-alive connections must not hold close()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # releases replies still waiting out their delay
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _handler_for(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real API
        disable_nagle_algorithm = True  # else small replies wait out the client's delayed ACK

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (timeout) before the reply

        def do_GET(self) -> None:
            self._send(404, error_body(f"no route GET {self.path}", "invalid_request_error"))

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, error_body(f"no route POST {self.path}", "invalid_request_error"))
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send(400, error_body("request body is not JSON", "invalid_request_error"))
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            recorded = RecordedRequest("POST", self.path, headers, body)
            reply, number = server._next(recorded)
            if reply is None:
                self._send(500, error_body("fake server: no reply scripted"))
                return
            if reply.delay_s and server._closing.wait(reply.delay_s):
                self.close_connection = True
                return
            if reply.kind == "error":
                self._send(reply.status, error_body(reply.payload))
            else:
                self._send(reply.status, completion_body(reply, body, number))

    return Handler
