"""The batch manifest: `manifest.jsonl` in the archive, one JSON object per item (job id,
source file, instruction, English prompt, parameters, status, timings). Rewritten whole and
renamed into place on every change, so an interrupted batch leaves a readable manifest that
the next run resumes from."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.jsonl"


class Manifest:
    """The records of one archive by item name, in the order items were first seen.
    Safe to update from several threads."""

    def __init__(self, archive: Path):
        self.archive = archive
        self.path = archive / MANIFEST_NAME
        self._lock = threading.Lock()
        self.records: dict[str, dict[str, Any]] = read_manifest(self.path)

    def get(self, item: str) -> dict[str, Any] | None:
        with self._lock:
            record = self.records.get(item)
            return dict(record) if record is not None else None

    def update(self, item: str, **fields: Any) -> dict[str, Any]:
        """Merge `fields` into the item's record and write the manifest."""
        with self._lock:
            record = {**self.records.get(item, {"item": item}), **fields}
            self.records[item] = record
            self._write()
            return dict(record)

    def is_done(self, item: str, source_sha256: str | None = None) -> bool:
        """Completed, its video is in the archive and (when given) made from this picture."""
        record = self.get(item)
        return (
            record is not None
            and record.get("status") == "completed"
            and (self.archive / item).is_file()
            and (source_sha256 is None or record.get("source_sha256") == source_sha256)
        )

    def _write(self) -> None:
        self.archive.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{MANIFEST_NAME}.{os.getpid()}.tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            for record in self.records.values():
                handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)


def read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """Records by item name; a line that is not a JSON object with an `item` is skipped, and a
    later line for the same item wins."""
    records: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("item"), str):
            records[record["item"]] = record
    return records
