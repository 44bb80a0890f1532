"""The artifact store: input pictures kept content-addressed, a job's outputs (video, thumbnail,
spritesheet) kept by job id, in a local folder (a shared volume in a cluster). Every write is
atomic (temp file, rename)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


class ArtifactStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        for sub in ("images", "videos", "thumbnails", "spritesheets"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # --- paths -------------------------------------------------------------------------------

    def image_path(self, name: str) -> Path:
        """`name` is `<sha256>.<ext>`; a two-level fan-out keeps folders small."""
        return self.root / "images" / name[:2] / name

    def video_path(self, job_id: str) -> Path:
        return self.root / "videos" / f"{job_id}.mp4"

    def thumbnail_path(self, job_id: str) -> Path:
        return self.root / "thumbnails" / f"{job_id}.webp"

    def spritesheet_path(self, job_id: str) -> Path:
        return self.root / "spritesheets" / f"{job_id}.jpg"

    def output_paths(self, job_id: str) -> tuple[Path, ...]:
        """A job's outputs; the video last (written last, so its presence means all are)."""
        return (self.thumbnail_path(job_id), self.spritesheet_path(job_id), self.video_path(job_id))

    # --- writes ------------------------------------------------------------------------------

    def put_image(self, name: str, data: bytes) -> Path:
        path = self.image_path(name)
        if not path.exists():
            _write_atomic(path, data)
        return path

    def put_video(self, job_id: str, mp4: bytes, thumbnail: bytes, spritesheet: bytes) -> None:
        _write_atomic(self.thumbnail_path(job_id), thumbnail)
        _write_atomic(self.spritesheet_path(job_id), spritesheet)
        _write_atomic(self.video_path(job_id), mp4)

    def copy_outputs(self, source_id: str, job_id: str) -> bool:
        """Give `job_id` the outputs of `source_id` (hard links where possible, so deleting one
        job never removes the other's files); False if the source has not all of them."""
        try:
            for source, target in zip(
                self.output_paths(source_id), self.output_paths(job_id), strict=True
            ):
                _link_or_copy(source, target)
        except FileNotFoundError:
            self.delete_outputs(job_id)
            return False
        return True

    def delete_outputs(self, job_id: str) -> int:
        """Removes a job's outputs; returns the bytes freed."""
        freed = 0
        for path in self.output_paths(job_id):
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            freed += size
        return freed

    def delete_image(self, name: str) -> None:
        self.image_path(name).unlink(missing_ok=True)

    # --- videos an extension begins with (content-addressed, like pictures) -------------------

    def source_video_path(self, name: str) -> Path:
        """`name` is `<sha256>.<container>`: an uploaded video, or a copy of one of ours, kept
        while a job that extends it exists (the source may be deleted or expire meanwhile)."""
        return self.root / "sources" / name[:2] / name

    def put_source_video(self, name: str, data: bytes) -> Path:
        path = self.source_video_path(name)
        if not path.exists():
            _write_atomic(path, data)
        return path

    def link_source_video(self, job_id: str, name: str) -> bool:
        """Keep the video of `job_id` as the source video `name` (a hard link where possible);
        False if that video is gone."""
        target = self.source_video_path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            _link_or_copy(self.video_path(job_id), target)
        except FileNotFoundError:
            return False
        return True

    def delete_source_video(self, name: str) -> int:
        """Removes a stored source video; returns the bytes freed."""
        path = self.source_video_path(name)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def usage(self) -> int:
        """Bytes stored (every file under the root); files removed meanwhile count nothing."""
        total = 0
        for path in self.files():
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    def files(self) -> list[Path]:
        """Every stored file (temp files included), for checks that nothing was left behind."""
        return sorted(p for p in self.root.rglob("*") if p.is_file())


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        return
    try:
        os.link(source, target)
    except FileNotFoundError:
        raise
    except OSError:  # another filesystem, or links not supported
        _write_atomic(target, source.read_bytes())


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
