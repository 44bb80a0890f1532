"""The `i2v` command line against the running service: create, batch (one MP4 per picture and a
manifest that matches the job records; an interrupted batch resumes without redoing anything; an
overloaded service is waited out), search, chat, and errors as one clear line."""

from __future__ import annotations

import io
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import av
import httpx
import pytest
from PIL import Image

from i2v_cli.main import main
from i2v_cli.manifest import MANIFEST_NAME, read_manifest
from i2v_cli.naming import video_name
from i2v_core.jobs import scoped_idempotency_key
from i2v_testing.paths import EXAMPLES, ROOT
from i2v_testing.servers import free_port

_seeds = itertools.count(int(time.time()) % 1_000_000 * 100 + 7)
QUICK = ["--size", "64x64", "--num-frames", "4", "--steps", "1"]


def pictures(folder: Path, count: int, prefix: str = "p") -> list[Path]:
    """Small PNGs, each a different colour (so a different picture hash)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"{prefix}{index:02d}.png"
        Image.new("RGB", (64, 64), (index * 19 % 256, 120, 255 - index * 7 % 256)).save(path)
        paths.append(path)
    return paths


def cli(service, capsys, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--base-url", service.base_url])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def decode(path: Path) -> tuple[int, int, int]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return len(frames), frames[0].width, frames[0].height


def test_create_prints_the_plan_and_writes_the_mp4(service, capsys, tmp_path):
    target = tmp_path / "cup.mp4"
    seed = str(next(_seeds))
    code, out, err = cli(
        service,
        capsys,
        *["create", str(EXAMPLES / "cup.jpg"), "展示这个杯子旋转", "-o", str(target)],
        *QUICK,
        *["--seed", seed, "--session", f"cli-{seed}"],
    )
    assert code == 0, err
    assert "category" in out and "rotating" in out
    assert "num_frames=4 (user)" in out and f"seed={seed} (user)" in out
    assert f"saved {target}" in out
    assert decode(target) == (4, 64, 64)


def test_batch_makes_one_video_per_picture_and_a_matching_manifest(service, capsys, tmp_path):
    folder, archive = tmp_path / "photos", tmp_path / "archive"
    sources = pictures(folder, 5)
    (folder / "notes.txt").write_text("not a picture")
    instruction = "展示这个杯子旋转"
    args = ["batch", str(folder), "--instruction", instruction, "--out", str(archive), *QUICK]
    args += ["--seed", str(next(_seeds)), "--concurrency", "3"]
    code, out, err = cli(service, capsys, *args)
    assert code == 0, err
    assert "5 made, 0 already in the archive, 0 failed" in out

    expected = {video_name(p.name, instruction) for p in sources}
    assert {p.name for p in archive.glob("*.mp4")} == expected
    for name in expected:
        assert decode(archive / name) == (4, 64, 64)
    records = read_manifest(archive / MANIFEST_NAME)
    assert set(records) == expected
    for record in records.values():
        job = service.jobs.get(record["job_id"])
        assert job.status == record["status"] == "completed"
        assert job.instruction == record["instruction"] == instruction
        assert job.prompt == record["prompt"] and "rotating" in job.prompt
        assert job.params == record["params"]
        assert job.category == record["category"]
        assert job.idempotency_key == scoped_idempotency_key("", record["idempotency_key"])
        assert Path(record["source"]).name in {p.name for p in sources}
        timings = record["timings"]
        assert timings["finished_at"] >= timings["submitted_at"] >= timings["started_at"]
        assert timings["service"]["total"] > 0

    rows = service.jobs.count()
    code, out, _ = cli(service, capsys, *args)  # everything is done: nothing is submitted
    assert code == 0 and "0 made, 5 already in the archive" in out
    assert service.jobs.count() == rows


def test_interrupted_batch_resumes_with_only_the_rest(service, capsys, tmp_path):
    folder, archive = tmp_path / "photos", tmp_path / "archive"
    pictures(folder, 6, prefix="r")
    args = ["batch", str(folder), "--instruction", "make it spin", "--out", str(archive)]
    args += [*QUICK, "--steps", "3", "--seed", str(next(_seeds)), "--concurrency", "1"]
    rows_before = service.jobs.count()
    process = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "i2v"), *args, "--base-url", service.base_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 90
    completed_first: dict[str, float] = {}
    while time.monotonic() < deadline and process.poll() is None:
        records = read_manifest(archive / MANIFEST_NAME)
        done = [r for r in records.values() if r.get("status") == "completed"]
        if len(done) >= 2:
            process.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "run the same command again to resume" in err and "Traceback" not in err
    first = read_manifest(archive / MANIFEST_NAME)
    completed_first = {
        name: (archive / name).stat().st_mtime_ns
        for name, r in first.items()
        if r.get("status") == "completed"
    }
    assert 2 <= len(completed_first) < 6
    jobs_first = service.jobs.count() - rows_before

    code, out, err = cli(service, capsys, *args)
    assert code == 0, err
    assert f"{6 - len(completed_first)} made, {len(completed_first)} already in the archive" in out
    # Every picture became exactly one job over both runs: a job submitted before the
    # interruption was found again through its Idempotency-Key, not made twice.
    assert service.jobs.count() - rows_before == 6
    assert jobs_first >= len(completed_first)
    final = read_manifest(archive / MANIFEST_NAME)
    assert len(final) == 6 and all(r["status"] == "completed" for r in final.values())
    assert len({r["job_id"] for r in final.values()}) == 6
    for name, mtime in completed_first.items():
        assert (archive / name).stat().st_mtime_ns == mtime  # not downloaded again
        assert final[name]["job_id"] == first[name]["job_id"]


def test_batch_waits_out_an_overloaded_service(service, capsys, tmp_path):
    """The backlog is full (admission.max_backlog = 8) when a batch of 12 starts with
    concurrency 12: every submission first hears 429 + Retry-After, waits and succeeds."""
    cup = (EXAMPLES / "cup.jpg").read_bytes()
    blockers = []
    for _ in range(service.config.admission.max_backlog + 2):
        response = httpx.post(
            f"{service.base_url}/v1/videos",
            data={
                "prompt": "spin",
                "size": "64x64",
                "num_frames": "16",
                "num_inference_steps": "50",
                "seed": str(next(_seeds)),
            },
            files={"input_reference": ("cup.jpg", cup, "image/jpeg")},
            timeout=60,
        )
        if response.status_code == 429:
            break
        assert response.status_code == 200, response.text
        blockers.append(response.json()["id"])
    else:
        pytest.fail("the backlog never filled up")

    folder, archive = tmp_path / "photos", tmp_path / "archive"
    pictures(folder, 12, prefix="o")
    args = ["batch", str(folder), "--instruction", "缓慢推近", "--out", str(archive), *QUICK]
    args += ["--seed", str(next(_seeds)), "--concurrency", "12"]
    result: dict[str, object] = {}
    runner = threading.Thread(target=lambda: result.update(code=cli(service, capsys, *args)))
    runner.start()
    time.sleep(3)  # the batch's first submissions meet the full backlog
    client = service.client()
    for video_id in blockers:
        client.videos.delete(video_id)  # cancel: capacity frees up
    runner.join(timeout=150)
    assert not runner.is_alive()
    code, out, err = result["code"]
    assert code == 0, err
    assert "12 made" in out
    assert len(list(archive.glob("*.mp4"))) == 12
    records = read_manifest(archive / MANIFEST_NAME)
    waited = [r["timings"]["capacity_wait_s"] for r in records.values()]
    assert all(r["status"] == "completed" for r in records.values())
    assert sum(1 for w in waited if w > 0) >= 1, waited


def test_search_shows_a_table_of_matching_jobs(service, capsys, tmp_path):
    session = f"cli-search-{uuid.uuid4().hex[:8]}"
    folder, archive = tmp_path / "photos", tmp_path / "archive"
    pictures(folder, 2, prefix="s")
    code, _, err = cli(
        service,
        capsys,
        *["batch", str(folder), "--instruction", "让花慢慢绽放", "--out", str(archive)],
        *[*QUICK, "--seed", str(next(_seeds)), "--session", session],
    )
    assert code == 0, err
    ids = [r["job_id"] for r in read_manifest(archive / MANIFEST_NAME).values()]
    code, out, err = cli(service, capsys, "search", "--session", session, "--q", "绽放")
    assert code == 0, err
    assert "status" in out and "completed" in out
    for video_id in ids:
        assert video_id in out.replace("\n", "").replace(" ", "")
    code, out, _ = cli(service, capsys, "search", "--session", session, "--json", "--q", "绽放")
    assert {v["id"] for v in json.loads(out)["data"]} == set(ids)
    code, out, _ = cli(service, capsys, "search", "--session", session, "--status", "failed")
    assert code == 0 and "no matching videos" in out


def test_chat_asks_back_then_makes_the_video(service, capsys, tmp_path, monkeypatch):
    session = f"cli-chat-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(sys, "stdin", io.StringIO("这张图里的水是怎么循环的?\n对\n"))
    code, out, err = cli(
        service,
        capsys,
        *["chat", str(EXAMPLES / "cat.jpg"), "--session", session, "--out-dir", str(tmp_path)],
    )
    assert code == 0, err
    assert "? 您是想展示水蒸气上升然后变成雨吗？" in out
    assert "water evaporating from the ocean and forming clouds" in out.lower()
    videos = list(tmp_path.glob("video_*.mp4"))
    assert len(videos) == 1 and f"saved {videos[0]}" in out
    frames, _, _ = decode(videos[0])
    assert frames > 0
    assert service.jobs.get(videos[0].stem).session_id == session


def test_errors_are_one_clear_line(service, capsys, tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    code = main(["search", "--base-url", down])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"i2v: error: The service is not running at {down} (connection refused)."

    code, _, err = cli(
        service, capsys, "create", str(EXAMPLES / "cup.jpg"), "spin", "--steps", "5000"
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "'num_inference_steps'" in lines[0] and "less than or equal to" in lines[0]
    assert "got '5000'" in lines[0]
    assert "code: invalid_value" in lines[0] and "HTTP 400" in lines[0]

    code, _, err = cli(
        service, capsys, "batch", str(tmp_path / "nowhere"), "--instruction", "x", "--out", "a"
    )
    assert code == 2 and err.count("\n") == 1 and "is not a folder" in err

    code, _, err = cli(service, capsys, "search", "--since", "not a date")
    assert code == 2 and "--since" in err


def test_base_url_from_the_environment(service, capsys, monkeypatch):
    monkeypatch.setenv("I2V_BASE_URL", service.base_url)
    assert main(["search", "--limit", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["object"] == "list"
