"""`i2v batch`: many pictures, one archive. Items run concurrently; an overloaded service
(429, or 503 with Retry-After) is waited out and asked again; every step is written to the
manifest, and each submission carries an Idempotency-Key derived from the archive and the
item, so a batch run again skips finished items and re-attaches to jobs already submitted."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, TaskID

from i2v_cli.client import JobOptions, NotRunning, Service, ServiceError
from i2v_cli.manifest import Manifest
from i2v_cli.naming import Item, idempotency_key

MAX_503_RETRIES = 5


class Interrupted(Exception):
    """The batch was asked to stop (Ctrl-C); the manifest says how far it got."""


@dataclass
class BatchResult:
    completed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)
    interrupted: bool = False
    fatal: ServiceError | None = None
    elapsed_s: float = 0.0


class Batch:
    def __init__(
        self,
        service: Service,
        archive: Path,
        items: list[Item],
        options: JobOptions,
        concurrency: int = 4,
        progress: Progress | None = None,
        console: Console | None = None,
    ):
        self.service = service
        self.archive = archive
        self.items = items
        self.options = options
        self.concurrency = max(1, concurrency)
        self.manifest = Manifest(archive)
        self.progress = progress
        self.console = console or Console(stderr=True)
        self.stop = threading.Event()
        self._overall: TaskID | None = None

    def run(self) -> BatchResult:
        started = time.perf_counter()
        result = BatchResult()
        todo: list[tuple[Item, str]] = []
        for item in self.items:
            sha = _sha256(item.source)
            if self.manifest.is_done(item.name, sha):
                result.skipped.append(item.name)
            else:
                todo.append((item, sha))
        if self.progress is not None:
            self._overall = self.progress.add_task(
                "batch", total=len(self.items), completed=len(result.skipped), status=""
            )
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="i2v-batch")
        pending: dict[Future, Item] = {pool.submit(self._run_item, i, s): i for i, s in todo}
        try:
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    item = pending.pop(future)
                    self._collect(item, future, result)
        except KeyboardInterrupt:
            result.interrupted = True
        finally:
            self.stop.set()
            self.service.interrupt_streams()  # workers reading progress streams notice now
            pool.shutdown(wait=True, cancel_futures=True)
            for future, item in pending.items():  # finished while stopping
                if future.done() and not future.cancelled():
                    self._collect(item, future, result)
        result.elapsed_s = time.perf_counter() - started
        return result

    def _collect(self, item: Item, future: Future, result: BatchResult) -> None:
        try:
            record = future.result()
        except Interrupted:
            return
        except NotRunning as exc:
            result.fatal = exc
            self.stop.set()
            return
        except ServiceError as exc:
            result.failed.append((item.name, str(exc)))
            self._advance(f"[red]✗[/] {item.key}: {exc}")
            return
        except OSError as exc:
            result.failed.append((item.name, f"{type(exc).__name__}: {exc}"))
            self._advance(f"[red]✗[/] {item.key}: {exc}")
            return
        if record["status"] == "completed":
            result.completed.append(item.name)
            self._advance(
                f"[green]✓[/] {item.key} → {item.name}  ({record['job_id']}, "
                f"{record['timings']['wall_s']:.1f} s)"
            )
        else:
            error = record.get("error") or {}
            reason = f"{error.get('message', 'failed')} (code: {error.get('code')})"
            result.failed.append((item.name, reason))
            self._advance(f"[red]✗[/] {item.key}: {reason}")

    def _advance(self, line: str) -> None:
        self.console.print(line, highlight=False)
        if self.progress is not None and self._overall is not None:
            self.progress.advance(self._overall)

    # --- one item, in a worker thread ----------------------------------------------------

    def _run_item(self, item: Item, sha: str) -> dict[str, Any]:
        if self.stop.is_set():
            raise Interrupted
        task = (
            self.progress.add_task(item.key, total=100, status="submitting")
            if self.progress is not None
            else None
        )
        try:
            return self._submit_wait_download(item, sha, task)
        finally:
            if task is not None:
                self.progress.remove_task(task)

    def _submit_wait_download(self, item: Item, sha: str, task: TaskID | None) -> dict[str, Any]:
        earlier = self.manifest.get(item.name) or {}
        attempt = int(earlier.get("attempt", 0))
        if earlier.get("status") == "failed":
            attempt += 1  # the failed job keeps its key; a new attempt needs a new one
        key = idempotency_key(self.archive, item.name, sha, self.options.fields(), attempt)
        started = time.time()
        self.manifest.update(
            item.name,
            source=str(item.source),
            source_sha256=sha,
            instruction=item.instruction,
            idempotency_key=key,
            attempt=attempt,
            status="submitting",
            error=None,
        )
        video, capacity_wait_s = self._create(item, key, task)
        submitted = time.time()
        plan = video.get("plan") or {}
        self.manifest.update(
            item.name,
            job_id=video["id"],
            status=video["status"],
            category=video.get("category"),
            prompt=plan.get("prompt"),
            negative_prompt=plan.get("negative_prompt"),
            params=plan.get("params"),
            param_sources=plan.get("param_sources"),
            timings={"started_at": started, "submitted_at": submitted},
        )

        def show(current: dict[str, Any]) -> None:
            if self.stop.is_set():
                raise Interrupted
            if task is not None:
                self.progress.update(task, completed=current["progress"], status=current["status"])

        final = self.service.wait(video["id"], on_update=show)
        timings = {
            "started_at": started,
            "submitted_at": submitted,
            "capacity_wait_s": round(capacity_wait_s, 3),
            "service": final.get("timings") or {},
        }
        if final["status"] != "completed":
            finished = time.time()
            timings |= {"finished_at": finished, "wall_s": round(finished - started, 3)}
            return self.manifest.update(
                item.name, status="failed", error=final.get("error"), timings=timings
            )
        if task is not None:
            self.progress.update(task, completed=100, status="downloading")
        self.service.download(final["id"], self.archive / item.name)
        finished = time.time()
        timings |= {"finished_at": finished, "wall_s": round(finished - started, 3)}
        return self.manifest.update(
            item.name,
            status="completed",
            output=item.name,
            params=(final.get("plan") or {}).get("params") or plan.get("params"),
            timings=timings,
        )

    def _create(self, item: Item, key: str, task: TaskID | None) -> tuple[dict[str, Any], float]:
        """Submits, waiting out 429 (and 503 with Retry-After) as often as it takes."""
        waited = 0.0
        unavailable = 0
        while True:
            if self.stop.is_set():
                raise Interrupted
            try:
                return self.service.create(item.source, item.instruction, self.options, key), waited
            except ServiceError as exc:
                if not exc.retryable:
                    raise
                if exc.status == 503:
                    unavailable += 1
                    if unavailable > MAX_503_RETRIES:
                        raise
                delay = (exc.retry_after or 1.0) * random.uniform(1.0, 1.25)
                if task is not None:
                    self.progress.update(task, status=f"service busy, retry in {delay:.0f} s")
                if self.stop.wait(delay):
                    raise Interrupted from exc
                waited += delay


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
