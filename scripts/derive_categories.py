"""Derives the picture categories of words and ImageNet classes from WordNet 3.0's hierarchy, as
data files the classifier and the router read at run time (nothing here runs in the service).

A synset's category is that of its lexicographer file (noun.animal, noun.person, ...), unless it
or one of its hypernyms is named in OVERRIDES (a landscape filed under noun.group, a bubble
filed under noun.object). WordNet comes from Debian's `wordnet-base` package (/usr/share/wordnet);
ImageNet-1k's synset ids and lemmas from the `timm` wheel.

    python scripts/derive_categories.py            # rewrite both files
    python scripts/derive_categories.py --check    # exit 1 when a committed file differs
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

WORDNET_DIR = Path("/usr/share/wordnet")
ROOT = Path(__file__).resolve().parent.parent
IMAGENET_FILE = ROOT / "deployments/classifier/data/imagenet_categories.tsv"
NOUN_FILE = ROOT / "deployments/router/data/noun_categories.tsv.gz"

# WordNet 3.0 lexicographer files (lexnames(5WN)) that name a picture category.
LEXNAME_CATEGORIES: dict[int, str] = {
    5: "animal",  # noun.animal
    20: "animal",  # noun.plant: "animal / living thing" in the product table
    8: "person",  # noun.body: hands, hair, faces
    18: "person",  # noun.person
    17: "landscape",  # noun.object: natural objects (mountains, seas, sky, rocks)
    15: "landscape",  # noun.location
    6: "still_life",  # noun.artifact: objects, vehicles and buildings
    13: "still_life",  # noun.food
}
LEXNAMES = {5: "animal", 6: "artifact", 8: "body", 13: "food", 14: "group", 15: "location"}
LEXNAMES |= {17: "object", 18: "person", 19: "phenomenon", 20: "plant", 27: "substance"}

# Synsets whose lexicographer file misleads, by offset (they apply to all their hyponyms).
OVERRIDES: dict[str, str] = {
    "00007846": "person",  # person, individual (noun.Tops)
    "00015388": "animal",  # animal, animate being, beast (noun.Tops)
    "00017222": "animal",  # plant, flora, plant life (noun.Tops)
    "08438533": "landscape",  # forest, wood, woods (noun.group)
    "03417345": "landscape",  # garden (noun.artifact): a garden is scenery, not an object
    "09229709": "still_life",  # bubble (noun.object): a soap bubble is no landscape
    "13134947": "still_life",  # fruit (noun.plant): a bowl of fruit is a still life
    # Structures that stand in scenery (noun.artifact): a photo labelled "pier" or
    # "suspension bridge" is a view, not an object on a table.
    "02898711": "landscape",  # bridge, span
    "03160309": "landscape",  # dam, dike
    "02894605": "landscape",  # breakwater, groin, jetty
    "03933529": "landscape",  # pier, wharf (covers the ImageNet class n03933933 pier)
    "03933933": "landscape",  # pier (a support of a bridge)
    "03216828": "landscape",  # dock, dockage
    "03327234": "landscape",  # fence, fencing
    "04326547": "landscape",  # stone wall
    "04532670": "landscape",  # viaduct
    "03743016": "landscape",  # megalith
    "02814860": "landscape",  # beacon, lighthouse
    "03042490": "landscape",  # cliff dwelling
    "03792972": "landscape",  # mountain tent
}
DEFAULT_CATEGORY = "still_life"  # ImageNet classes of other files: menus, web sites, puzzles


@dataclass(frozen=True)
class Synset:
    offset: str
    lexname: int
    words: tuple[str, ...]
    hypernyms: tuple[str, ...]
    instance: bool


def read_synsets(wordnet_dir: Path) -> dict[str, Synset]:
    """data.noun as synsets (wndb(5WN): offset lex_filenum ss_type w_cnt word lex_id ...)."""
    synsets: dict[str, Synset] = {}
    with open(wordnet_dir / "data.noun", encoding="utf-8") as data:
        for line in data:
            if line.startswith("  "):
                continue  # the licence header
            fields = line.split(" | ", 1)[0].split()
            offset, lexname = fields[0], int(fields[1])
            count = int(fields[3], 16)
            words = tuple(fields[4 + 2 * i].lower() for i in range(count))
            at = 4 + 2 * count
            pointers = [fields[at + 1 + 4 * i : at + 5 + 4 * i] for i in range(int(fields[at]))]
            hypernyms = tuple(p[1] for p in pointers if p[0] in ("@", "@i"))
            instance = any(p[0] == "@i" for p in pointers)
            synsets[offset] = Synset(offset, lexname, words, hypernyms, instance)
    return synsets


def category_of(offset: str, synsets: dict[str, Synset]) -> str | None:
    """The category of a synset: the nearest override up its hypernym paths, else its file's."""
    frontier, seen = [offset], set()
    while frontier:
        next_frontier = []
        for current in frontier:
            if current in OVERRIDES:
                return OVERRIDES[current]
            seen.add(current)
            next_frontier += [h for h in synsets[current].hypernyms if h not in seen]
        frontier = next_frontier
    return LEXNAME_CATEGORIES.get(synsets[offset].lexname)


def display_label(lemmas: str) -> str:
    """The first lemma, or a longer one that spells it out ("tabby, tabby cat" -> "tabby cat")."""
    names = [name.strip() for name in lemmas.split(",")]
    return next((n for n in names[1:] if n.startswith(names[0] + " ")), names[0])


def imagenet_rows(synsets: dict[str, Synset]) -> list[list[str]]:
    """index, wnid, label (the first lemma), category, WordNet file, for the 1000 classes."""
    info = resources.files("timm") / "data" / "_info"
    wnids = (info / "imagenet_synsets.txt").read_text().split()
    lemmas = dict(
        line.split("\t", 1)
        for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines()
    )
    rows = []
    for index, wnid in enumerate(wnids):
        synset = synsets[wnid[1:]]
        category = category_of(wnid[1:], synsets) or DEFAULT_CATEGORY
        label = display_label(lemmas[wnid])
        lexname = LEXNAMES.get(synset.lexname, str(synset.lexname))
        rows.append([str(index), wnid, label, category, lexname])
    return rows


def noun_rows(synsets: dict[str, Synset], wordnet_dir: Path) -> list[list[str]]:
    """Each noun of one or two words with the category of its most frequent sense (index.noun
    lists senses by frequency) where that has one. Names (every sense an instance, "einstein")
    are left out; "sun", a word with an instance sense first, stays."""
    rows = []
    with open(wordnet_dir / "index.noun", encoding="utf-8") as index:
        for line in index:
            if line.startswith("  "):
                continue
            fields = line.split()
            lemma, pointer_count = fields[0], int(fields[3])
            senses = fields[4 + pointer_count + 2 :]
            word = lemma.replace("_", " ")
            if len(word.split()) > 2 or not word.replace(" ", "").replace("-", "").isalpha():
                continue
            if all(synsets[offset].instance for offset in senses):
                continue
            category = category_of(senses[0], synsets)
            if category is not None:
                rows.append([word, category])
    return rows


def to_tsv(header: list[str], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def expected_files(wordnet_dir: Path = WORDNET_DIR) -> dict[Path, str]:
    synsets = read_synsets(wordnet_dir)
    return {
        IMAGENET_FILE: to_tsv(
            ["index", "wnid", "label", "category", "wordnet_file"], imagenet_rows(synsets)
        ),
        NOUN_FILE: to_tsv(["noun", "category"], noun_rows(synsets, wordnet_dir)),
    }


def read_text(path: Path) -> str:
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode("utf-8")
    return path.read_text(encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    parser.add_argument("--wordnet", type=Path, default=WORDNET_DIR)
    args = parser.parse_args()
    stale = []
    for path, text in expected_files(args.wordnet).items():
        if args.check:
            if not path.exists() or read_text(path) != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".gz":
            path.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
        else:
            path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)} ({text.count(chr(10)) - 1} rows)")
    if stale:
        sys.exit("stale: " + ", ".join(str(p.relative_to(ROOT)) for p in stale))


if __name__ == "__main__":
    main()
