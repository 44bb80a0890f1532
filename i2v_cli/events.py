"""Reading `text/event-stream` (Server-Sent Events) line by line, as the WHATWG spec parses it:
`event:`, `data:` (joined with newlines), `id:`, comments (`:`) ignored, a blank line ends an
event. Used by the CLI to follow `GET /v1/videos/{id}/events`, and by tests and benchmarks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServerEvent:
    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


class EventParser:
    """Feed it the stream's lines (without their line endings); it returns each complete
    event once its blank line arrives. `last_id` is what to send as `Last-Event-ID`."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerEvent | None:
        if line == "":
            if not self._data:
                self._event = ""
                return None
            event = ServerEvent(self._event or "message", "\n".join(self._data), self.last_id)
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        return None
