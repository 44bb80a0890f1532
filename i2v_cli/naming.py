"""Names of batch items: which files in a folder are pictures, the archive name of each video
(stable, filesystem-safe, readable in Chinese and English, never colliding), and the
Idempotency-Key that maps a resubmitted item to the job the service already has."""

from __future__ import annotations

import csv
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
SLUG_CHARS = 40  # characters of the instruction kept in a name
STEM_CHARS = 60  # characters of the picture's name kept in a name
HASH_CHARS = 10  # hex digits of the item hash: 40 bits
PART_BYTES = 90  # UTF-8 bytes of the stem and of the slug: a whole name stays under 255 bytes

_SEPARATORS = re.compile(r"-{2,}")
_UNDERSCORES = re.compile(r"_{2,}")


@dataclass(frozen=True)
class Item:
    """One picture with one instruction. `key` names the picture relative to the batch's
    folder (or the CSV's folder), so moving the whole folder keeps every name."""

    source: Path
    key: str
    instruction: str

    @property
    def name(self) -> str:
        return video_name(self.key, self.instruction)


def slugify(text: str, limit: int = SLUG_CHARS) -> str:
    """Letters and digits of any script (Chinese stays Chinese), ASCII lowercased, everything
    else one '-'; at most `limit` characters; '' when nothing readable is left."""
    text = unicodedata.normalize("NFKC", text)
    chars = [c.lower() if c.isascii() else c for c in text]
    kept = "".join(c if _is_word_char(c) else "-" for c in chars)
    slug = _SEPARATORS.sub("-", kept).strip("-")
    return _fit(slug, limit).rstrip("-")


def safe_stem(stem: str, limit: int = STEM_CHARS) -> str:
    """A picture's name made filesystem-safe, case kept; '_' runs squeezed so that the '__'
    between the parts of a video name stays unambiguous."""
    stem = unicodedata.normalize("NFKC", stem)
    kept = "".join(c if _is_word_char(c) or c in "_" else "-" for c in stem)
    kept = _UNDERSCORES.sub("_", _SEPARATORS.sub("-", kept)).strip("-_.")
    return _fit(kept, limit).rstrip("-_") or "picture"


def item_hash(key: str, instruction: str) -> str:
    material = f"{unicodedata.normalize('NFC', key)}\n{instruction.strip()}"
    return hashlib.sha256(material.encode()).hexdigest()[:HASH_CHARS]


def video_name(key: str, instruction: str) -> str:
    """`<picture-stem>__<slug-of-instruction>__<hash>.mp4`; the hash covers the picture's full
    relative name and the whole instruction, so `cup.png` and `cup.jpg`, or two instructions
    that slug alike, never share a file. Without a readable slug: `<picture-stem>__<hash>.mp4`."""
    stem = safe_stem(Path(key).stem)
    slug = slugify(instruction)
    parts = (
        [stem, slug, item_hash(key, instruction)] if slug else [stem, item_hash(key, instruction)]
    )
    return "__".join(parts) + ".mp4"


def idempotency_key(
    archive: Path, item_name: str, picture_sha256: str, options: dict, attempt: int = 0
) -> str:
    """The same archive, item, picture and options give the same key, so a batch run again
    gets back the job it already submitted; `attempt` moves on after a failed job."""
    material = "\n".join(
        [
            str(archive.resolve()),
            item_name,
            picture_sha256,
            repr(sorted((k, str(v)) for k, v in options.items() if v is not None)),
            str(attempt),
        ]
    )
    return "i2v-batch-" + hashlib.sha256(material.encode()).hexdigest()[:48]


def is_picture(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in PICTURE_SUFFIXES and not path.name.startswith(".")
    )


def items_from_folder(folder: Path, instruction: str) -> list[Item]:
    """Every picture directly in `folder`, in name order."""
    return [
        Item(source=path, key=path.name, instruction=instruction)
        for path in sorted(folder.iterdir(), key=lambda p: p.name)
        if is_picture(path)
    ]


def items_from_csv(csv_path: Path, default_instruction: str | None = None) -> list[Item]:
    """One `image,instruction` per row (a header row with those words is skipped); a relative
    image path is read from the CSV's folder; an empty instruction takes the default."""
    base = csv_path.parent
    items: list[Item] = []
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            image = row[0].strip()
            instruction = ",".join(row[1:]).strip() if len(row) > 1 else ""
            if number == 1 and image.lower() == "image" and instruction.lower() == "instruction":
                continue
            instruction = instruction or (default_instruction or "")
            if not instruction:
                raise ValueError(f"{csv_path}:{number}: no instruction for {image}")
            path = Path(image)
            source = path if path.is_absolute() else base / path
            key = path.as_posix() if not path.is_absolute() else _relative_key(path, base)
            items.append(Item(source=source, key=key, instruction=instruction))
    return items


def unique_items(items: list[Item]) -> tuple[list[Item], list[Item]]:
    """(items, duplicates): the same picture with the same instruction is one item."""
    seen: dict[str, Item] = {}
    duplicates: list[Item] = []
    for item in items:
        if item.name in seen:
            duplicates.append(item)
        else:
            seen[item.name] = item
    return list(seen.values()), duplicates


def _relative_key(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _fit(text: str, chars: int) -> str:
    """At most `chars` characters and PART_BYTES bytes of UTF-8, cut between characters."""
    text = text[:chars]
    while len(text.encode()) > PART_BYTES:
        text = text[:-1]
    return text


def _is_word_char(c: str) -> bool:
    return c.isalnum() and c.isprintable()
