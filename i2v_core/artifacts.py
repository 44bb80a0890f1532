"""The artifact store: input pictures kept content-addressed, videos and thumbnails kept by job
id, in a local folder (a shared volume in a cluster). Every write is atomic (temp file, rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class ArtifactStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        for sub in ("images", "videos", "thumbnails"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # --- paths -------------------------------------------------------------------------------

    def image_path(self, name: str) -> Path:
        """`name` is `<sha256>.<ext>`; a two-level fan-out keeps folders small."""
        return self.root / "images" / name[:2] / name

    def video_path(self, job_id: str) -> Path:
        return self.root / "videos" / f"{job_id}.mp4"

    def thumbnail_path(self, job_id: str) -> Path:
        return self.root / "thumbnails" / f"{job_id}.webp"

    # --- writes ------------------------------------------------------------------------------

    def put_image(self, name: str, data: bytes) -> Path:
        path = self.image_path(name)
        if not path.exists():
            _write_atomic(path, data)
        return path

    def put_video(self, job_id: str, mp4: bytes, thumbnail: bytes) -> None:
        _write_atomic(self.thumbnail_path(job_id), thumbnail)
        _write_atomic(self.video_path(job_id), mp4)

    def copy_outputs(self, source_id: str, job_id: str) -> bool:
        """Give `job_id` the video and thumbnail of `source_id` (hard links where possible, so
        deleting one job never removes the other's files); False if the source has none."""
        pairs = [
            (self.video_path(source_id), self.video_path(job_id)),
            (self.thumbnail_path(source_id), self.thumbnail_path(job_id)),
        ]
        try:
            for source, target in pairs:
                _link_or_copy(source, target)
        except FileNotFoundError:
            self.delete_outputs(job_id)
            return False
        return True

    def delete_outputs(self, job_id: str) -> None:
        for path in (self.video_path(job_id), self.thumbnail_path(job_id)):
            path.unlink(missing_ok=True)

    def delete_image(self, name: str) -> None:
        self.image_path(name).unlink(missing_ok=True)

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
