"""Domain types every part shares: the picture categories and a video's statuses."""

from __future__ import annotations

from typing import Literal

CATEGORIES = ("person", "animal", "landscape", "still_life")

VideoStatus = Literal["queued", "in_progress", "completed", "failed"]
TERMINAL_STATUSES: tuple[VideoStatus, ...] = ("completed", "failed")
ACTIVE_STATUSES: tuple[VideoStatus, ...] = ("queued", "in_progress")  # the backlog
