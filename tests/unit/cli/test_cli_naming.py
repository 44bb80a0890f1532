"""The batch's pure logic: which files are pictures, archive names (stable, filesystem-safe,
readable in Chinese, never colliding), Idempotency-Keys, CSV rows and the manifest."""

from __future__ import annotations

import json
from pathlib import Path

from i2v_cli.manifest import MANIFEST_NAME, Manifest, read_manifest
from i2v_cli.naming import (
    Item,
    idempotency_key,
    items_from_csv,
    items_from_folder,
    safe_stem,
    slugify,
    unique_items,
    video_name,
)


def test_slugs_keep_chinese_and_english_words_readable():
    assert slugify("展示这个杯子旋转") == "展示这个杯子旋转"
    assert slugify("Make the Cup SPIN, slowly!") == "make-the-cup-spin-slowly"
    assert slugify("让花 慢慢/绽放?") == "让花-慢慢-绽放"
    assert slugify("ｆｕｌｌ　ｗｉｄｔｈ") == "full-width"  # NFKC folds full-width forms
    assert slugify("!!! ... ???") == ""
    assert slugify("a" * 100) == "a" * 40


def test_names_are_stable_and_filesystem_safe():
    name = video_name("IMG 0012 (copy).JPG", "展示这个杯子旋转")
    assert name == video_name("IMG 0012 (copy).JPG", "展示这个杯子旋转")
    stem, slug, tail = name.split("__")
    assert stem == "IMG-0012-copy" and slug == "展示这个杯子旋转"
    assert tail.endswith(".mp4") and len(tail) == len("0123456789.mp4")
    for key, instruction in [
        ("../../etc/passwd.png", "rm -rf /"),
        ("a\\b:c*d?e.png", 'quote " and <angle>'),
        ("con.png", "\x00\n\t"),
    ]:
        name = video_name(key, instruction)
        assert "/" not in name and "\\" not in name and "\x00" not in name
        assert not set(name) & set(':*?"<>|\n\t')
        assert not name.startswith(".")


def test_names_fit_in_255_bytes_even_in_chinese():
    name = video_name("图" * 200 + ".png", "让" * 500)
    assert len(name.encode()) <= 255
    assert name.startswith("图" * 10)


def test_no_collisions_between_similar_items():
    names = {
        video_name("cup.png", "spin"),
        video_name("cup.jpg", "spin"),  # same stem, other picture
        video_name("cup.png", "Spin!"),  # same slug, other instruction
        video_name("sub/cup.png", "spin"),
        video_name("cup.png", "spin slowly"),
    }
    assert len(names) == 5


def test_without_a_readable_slug_the_hash_names_the_video():
    name = video_name("cup.png", "???")
    stem, tail = name.split("__")
    assert stem == "cup" and len(tail) == len("0123456789.mp4")


def test_stems_squeeze_underscores_so_the_separator_stays_unambiguous():
    assert safe_stem("a__b___c") == "a_b_c"
    assert safe_stem("...") == "picture"


def test_idempotency_key_changes_with_what_makes_a_different_job(tmp_path):
    base = dict(archive=tmp_path / "a", item_name="x.mp4", picture_sha256="ab", options={})
    key = idempotency_key(**base)
    assert key == idempotency_key(**base)
    assert key.startswith("i2v-batch-") and len(key) <= 255 and key.isprintable()
    assert key != idempotency_key(**{**base, "archive": tmp_path / "b"})
    assert key != idempotency_key(**{**base, "picture_sha256": "cd"})
    assert key != idempotency_key(**{**base, "options": {"seed": 1}})
    assert key != idempotency_key(**base, attempt=1)
    assert key == idempotency_key(**{**base, "options": {"seed": None}})


def test_folder_items_are_the_pictures_in_name_order(tmp_path):
    for name in [
        "b.PNG",
        "a.jpg",
        "c.webp",
        "d.bmp",
        "e.gif",
        "f.jpeg",
        "notes.txt",
        ".hidden.png",
    ]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()
    items = items_from_folder(tmp_path, "spin")
    assert [i.key for i in items] == ["a.jpg", "b.PNG", "c.webp", "d.bmp", "e.gif", "f.jpeg"]
    assert all(i.instruction == "spin" for i in items)


def test_csv_rows_with_header_comments_commas_and_defaults(tmp_path):
    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text(
        "image,instruction\n"
        "cup.png,展示这个杯子旋转\n"
        "# a comment\n"
        "\n"
        'pics/cat.jpg,"make it blink, slowly"\n'
        "dog.png,\n",
        encoding="utf-8",
    )
    items = items_from_csv(csv_file, default_instruction="slight movement")
    assert [(i.key, i.instruction) for i in items] == [
        ("cup.png", "展示这个杯子旋转"),
        ("pics/cat.jpg", "make it blink, slowly"),
        ("dog.png", "slight movement"),
    ]
    assert items[1].source == tmp_path / "pics" / "cat.jpg"


def test_duplicate_rows_are_one_item(tmp_path):
    item = Item(tmp_path / "cup.png", "cup.png", "spin")
    items, duplicates = unique_items([item, item, Item(tmp_path / "cup.png", "cup.png", "zoom")])
    assert len(items) == 2 and duplicates == [item]


def test_manifest_is_rewritten_whole_and_read_back(tmp_path):
    archive = tmp_path / "archive"
    manifest = Manifest(archive)
    manifest.update("a.mp4", status="submitted", job_id="video_1", instruction="转")
    manifest.update("b.mp4", status="submitted", job_id="video_2")
    manifest.update("a.mp4", status="completed")
    lines = (archive / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["item"] for line in lines] == ["a.mp4", "b.mp4"]
    assert "转" in lines[0]  # kept readable, not \u-escaped
    again = Manifest(archive)
    assert again.get("a.mp4") == {
        "item": "a.mp4",
        "status": "completed",
        "job_id": "video_1",
        "instruction": "转",
    }
    assert not list(archive.glob(".*.tmp"))


def test_an_item_is_done_only_with_its_video_and_the_same_picture(tmp_path):
    manifest = Manifest(tmp_path)
    manifest.update("a.mp4", status="completed", source_sha256="s1")
    assert not manifest.is_done("a.mp4")  # no video file
    (tmp_path / "a.mp4").write_bytes(b"mp4")
    assert manifest.is_done("a.mp4", "s1")
    assert not manifest.is_done("a.mp4", "s2")  # the picture changed
    manifest.update("b.mp4", status="failed")
    (tmp_path / "b.mp4").write_bytes(b"mp4")
    assert not manifest.is_done("b.mp4")


def test_a_torn_manifest_line_is_skipped(tmp_path):
    path = tmp_path / MANIFEST_NAME
    path.write_text('{"item": "a.mp4", "status": "completed"}\n{"item": "b.mp', encoding="utf-8")
    assert list(read_manifest(path)) == ["a.mp4"]
    assert read_manifest(Path(tmp_path / "missing.jsonl")) == {}
