"""What other packages may know of the generator without loading it (no ML library here): the
name of the queue task that runs one job."""

from __future__ import annotations

TASK_NAME = "generate_video"
