"""`i2v`: the image-to-video service from a terminal.

  i2v create IMAGE "instruction" [-o OUT.mp4]      one video: the plan, a progress bar, the MP4
  i2v batch DIR --instruction TEXT --out ARCHIVE   every picture in DIR, resumable
  i2v batch --from-csv FILE --out ARCHIVE          one `image,instruction` per row
  i2v search [--q TEXT] [--status S] ...           a table of earlier jobs
  i2v chat IMAGE [--session ID]                    talk until the service understands

The service's URL: --base-url, else $I2V_BASE_URL, else http://127.0.0.1:8000.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from i2v_cli.batch import Batch
from i2v_cli.client import DEFAULT_BASE_URL, JobOptions, Service, ServiceError
from i2v_cli.manifest import MANIFEST_NAME
from i2v_cli.naming import (
    PICTURE_SUFFIXES,
    items_from_csv,
    items_from_folder,
    unique_items,
    video_name,
)

STATUSES = ("queued", "in_progress", "completed", "failed")
CATEGORIES = ("person", "animal", "landscape", "still_life")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class UsageError(Exception):
    """A mistake in the command line or its files, told in one line."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    service = Service(args.base_url)
    try:
        return args.run(args, service)
    except ServiceError as exc:
        err.print(f"[red]i2v: error:[/] {escape(str(exc))}")
        return 2
    except UsageError as exc:
        err.print(f"[red]i2v: error:[/] {escape(str(exc))}")
        return 2
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"[red]i2v: error:[/] {escape(f'{exc.strerror or exc}{where}')}")
        return 2
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    finally:
        service.close()


# --- commands ----------------------------------------------------------------------------


def _admin_key(args: argparse.Namespace) -> str:
    key = args.admin_key or os.environ.get("I2V_ADMIN_KEY")
    if not key:
        raise UsageError("the admin key is needed: set $I2V_ADMIN_KEY or pass --admin-key")
    return key


def cmd_admin_keys_create(args: argparse.Namespace, service: Service) -> int:
    body = {
        "name": args.name,
        "project": args.project,
        "requests_per_minute": args.requests_per_minute,
        "max_active_jobs": args.max_active_jobs,
    }
    created = service.admin(
        "POST", "", _admin_key(args), json={k: v for k, v in body.items() if v is not None}
    )
    out.print(f"key {created['id']} ({created['name']}) in project {created['project']}")
    out.print(
        f"limits: {created['requests_per_minute']} requests per minute, "
        f"{created['max_active_jobs']} active jobs"
    )
    out.print("secret (shown once; give it to the caller as OPENAI_API_KEY):")
    print(created["key"])
    return 0


def cmd_admin_keys_list(args: argparse.Namespace, service: Service) -> int:
    """One tab-separated line per key (no secrets), easy to read and to script."""
    columns = ("id", "name", "project", "requests_per_minute", "max_active_jobs", "created_at")
    print("\t".join((*columns, "revoked_at")))
    for key in service.admin("GET", "", _admin_key(args))["data"]:
        values = [str(key[c]) for c in columns[:-1]] + [_local_time(key["created_at"])]
        print("\t".join((*values, _local_time(key["revoked_at"]))))
    return 0


def cmd_admin_keys_revoke(args: argparse.Namespace, service: Service) -> int:
    service.admin("DELETE", f"/{args.key_id}", _admin_key(args))
    out.print(f"revoked {args.key_id}")
    return 0


def cmd_create(args: argparse.Namespace, service: Service) -> int:
    image = _picture(args.image)
    video = service.create(image, args.instruction, _options(args))
    print_plan(video)
    if args.no_wait:
        return 0
    final = _wait_with_bar(service, video["id"], image.name)
    if final["status"] != "completed":
        return _job_failed(final)
    target = Path(args.output) if args.output else Path(video_name(image.name, args.instruction))
    service.download(final["id"], target)
    out.print(f"saved {escape(str(target))}  ({_seconds(final)})")
    return 0


def cmd_batch(args: argparse.Namespace, service: Service) -> int:
    if args.from_csv:
        try:
            items = items_from_csv(Path(args.from_csv), args.instruction)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    else:
        if args.folder is None or args.instruction is None:
            raise UsageError("give a folder and --instruction, or --from-csv FILE")
        folder = Path(args.folder)
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a folder")
        items = items_from_folder(folder, args.instruction)
    items, duplicates = unique_items(items)
    for item in duplicates:
        err.print(f"[yellow]note:[/] {escape(item.key)} with the same instruction is listed twice")
    missing = [item for item in items if not item.source.is_file()]
    if missing:
        raise UsageError(f"no such picture: {missing[0].source}")
    if not items:
        raise UsageError(f"no pictures ({', '.join(PICTURE_SUFFIXES)}) found")
    archive = Path(args.out)
    with _progress(transient=True) as progress:
        batch = Batch(
            service, archive, items, _options(args), args.concurrency, progress, progress.console
        )
        result = batch.run()
    if result.fatal is not None:
        raise result.fatal
    done = len(result.completed) + len(result.skipped)
    summary = (
        f"{len(result.completed)} made, {len(result.skipped)} already in the archive, "
        f"{len(result.failed)} failed, of {len(items)} in {result.elapsed_s:.1f} s; "
        f"manifest: {archive / MANIFEST_NAME}"
    )
    out.print(escape(summary))
    if result.interrupted:
        err.print(f"interrupted: {done} of {len(items)} done; run the same command again to resume")
        return 130
    if result.failed:
        err.print(f"[red]{len(result.failed)} item(s) failed:[/]")
        for name, reason in result.failed:
            err.print(f"  {escape(name)}: {escape(reason)}")
        return 1
    return 0


def cmd_search(args: argparse.Namespace, service: Service) -> int:
    page = service.search(
        q=args.q,
        session_id=args.session,
        status=args.status,
        category=args.category,
        created_after=_when(args.since, "--since"),
        created_before=_when(args.until, "--until"),
        limit=args.limit,
        after=args.after,
        order=args.order,
    )
    videos = page.get("data", [])
    if args.json:
        print(json.dumps(page, ensure_ascii=False, indent=2))
        return 0
    if not videos:
        out.print("no matching videos")
        return 0
    table = Table(show_lines=False, pad_edge=False, box=None)
    for column in ("id", "status", "%", "category", "created"):
        table.add_column(column, no_wrap=True)
    table.add_column("instruction", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column("prompt", no_wrap=True, overflow="ellipsis", ratio=2)
    for video in videos:
        table.add_row(
            video["id"],
            video["status"],
            str(video.get("progress", "")),
            video.get("category") or "",
            _local_time(video.get("created_at")),
            escape(_clip(video.get("prompt") or "", 30)),
            escape(_clip((video.get("plan") or {}).get("prompt") or "", 50)),
        )
    # A pipe or file gets whole lines; a terminal gets its width.
    Console(highlight=False, width=None if out.is_terminal else 240).print(table)
    if page.get("has_more"):
        out.print(f"more: --after {page['last_id']}")
    return 0


def cmd_chat(args: argparse.Namespace, service: Service) -> int:
    image = _picture(args.image)
    session = args.session or f"chat-{uuid.uuid4().hex[:12]}"
    out_dir = Path(args.out_dir)
    interactive = sys.stdin.isatty()
    out.print(f"session {session}; type a message, an empty line or Ctrl-D ends")
    picture_sent = False
    while True:
        if interactive:
            err.print("[bold]>[/] ", end="")
        line = sys.stdin.readline()
        if not line or (interactive and not line.strip()):
            return 0
        text = line.strip()
        if not text:
            continue
        reply = service.message(session, text, None if picture_sent else image)
        picture_sent = True
        if reply["type"] == "question":
            out.print(f"? {escape(reply['question'])}")
            if reply.get("proposed_prompt"):
                out.print(f"  (would make: {escape(reply['proposed_prompt'])})")
            continue
        video = reply["video"]
        print_plan(video)
        final = _wait_with_bar(service, video["id"], image.name)
        if final["status"] != "completed":
            _job_failed(final)
            continue
        target = service.download(final["id"], out_dir / f"{final['id']}.mp4")
        out.print(f"saved {escape(str(target))}  ({_seconds(final)})")


# --- output --------------------------------------------------------------------------------


def print_plan(video: dict[str, Any]) -> None:
    plan = video.get("plan") or {}
    params = plan.get("params") or {}
    sources = plan.get("param_sources") or {}
    out.print(f"video     {video['id']}  ({video['status']})")
    out.print(f"category  {video.get('category')}")
    out.print(f"prompt    {escape(plan.get('prompt') or '')}")
    if plan.get("negative_prompt"):
        out.print(f"negative  {escape(plan['negative_prompt'])}")
    shown = [
        f"{name}={value}" + (f" ({sources[name]})" if name in sources else "")
        for name, value in params.items()
    ]
    out.print(f"params    {', '.join(shown)}")


def _wait_with_bar(service: Service, video_id: str, label: str) -> dict[str, Any]:
    with _progress(transient=False) as progress:
        task = progress.add_task(label, total=100, status="queued")
        return service.wait(
            video_id,
            on_update=lambda v: progress.update(task, completed=v["progress"], status=v["status"]),
        )


def _progress(transient: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}", markup=False),
        console=err,
        transient=transient,
    )


def _job_failed(video: dict[str, Any]) -> int:
    error = video.get("error") or {}
    err.print(
        f"[red]i2v: error:[/] {video['id']} failed: "
        f"{escape(error.get('message') or 'no reason given')} (code: {error.get('code')})"
    )
    return 1


def _seconds(video: dict[str, Any]) -> str:
    params = (video.get("plan") or {}).get("params") or {}
    return f"{video.get('size')}, {params.get('num_frames')} frames at {params.get('fps')} fps"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _local_time(stamp: int | None) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M") if stamp else ""


# --- arguments -----------------------------------------------------------------------------


def _picture(path: str) -> Path:
    image = Path(path)
    if not image.is_file():
        raise UsageError(f"no such picture: {image}")
    return image


def _options(args: argparse.Namespace) -> JobOptions:
    return JobOptions(
        size=args.size,
        seconds=args.seconds,
        seed=args.seed,
        num_frames=args.num_frames,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        fps=args.fps,
        category=args.category,
        session_id=args.session,
    )


def _when(value: str | None, flag: str) -> str | None:
    """Unix seconds as given, or a local ISO date/time turned into them."""
    if value is None:
        return None
    try:
        float(value)
        return value
    except ValueError:
        pass
    try:
        return str(int(datetime.fromisoformat(value).timestamp()))
    except ValueError:
        raise UsageError(f"{flag} takes unix seconds or a date like 2025-05-01") from None


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--base-url",
        default=argparse.SUPPRESS,
        help=f"the service (default: $I2V_BASE_URL or {DEFAULT_BASE_URL})",
    )
    parser = argparse.ArgumentParser(
        prog="i2v",
        description="Turn pictures into short videos with the image-to-video service.",
        epilog="The service's URL: --base-url, else $I2V_BASE_URL, else " + DEFAULT_BASE_URL,
    )
    parser.add_argument("--base-url", default=None, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    job = argparse.ArgumentParser(add_help=False)
    group = job.add_argument_group("generation (default: the service chooses by picture)")
    group.add_argument("--seed", type=int, help="0 to 2^32-1; same seed, same video")
    group.add_argument("--size", help="WIDTHxHEIGHT, e.g. 128x128")
    group.add_argument("--seconds", help="clip length in seconds")
    group.add_argument("--num-frames", type=int, dest="num_frames")
    group.add_argument("--steps", type=int, help="denoising steps (num_inference_steps)")
    group.add_argument("--guidance", type=float, help="guidance scale")
    group.add_argument("--fps", type=int)
    group.add_argument("--category", choices=CATEGORIES, help="skip the picture classifier")
    group.add_argument("--session", help="a session id: ties jobs together")

    create = commands.add_parser(
        "create",
        parents=[common, job],
        help="one picture, one video",
        description="Make one "
        "video: prints the plan (category, English prompt, parameters), shows progress, "
        "writes the MP4.",
    )
    create.add_argument("image")
    create.add_argument("instruction", help='e.g. "展示这个杯子旋转" or "make it spin"')
    create.add_argument(
        "-o", "--output", help="the MP4 (default: <picture>__<instruction>__<hash>.mp4 here)"
    )
    create.add_argument("--no-wait", action="store_true", help="print the plan and exit")
    create.set_defaults(run=cmd_create)

    batch = commands.add_parser(
        "batch",
        parents=[common, job],
        help="every picture in a folder, into an archive",
        description="Submit every picture (png, jpg, jpeg, webp, bmp, gif) in FOLDER, or each "
        "row of a CSV, and write each video into ARCHIVE as "
        "<picture>__<instruction>__<hash>.mp4 with manifest.jsonl. Run the same command again "
        "to resume: finished items are skipped, submitted ones are picked up where they are.",
    )
    batch.add_argument("folder", nargs="?", help="a folder of pictures")
    batch.add_argument("--instruction", help="what to do with every picture")
    batch.add_argument("--from-csv", metavar="FILE", help="rows of image,instruction")
    batch.add_argument("--out", required=True, metavar="ARCHIVE", help="where videos go")
    batch.add_argument("--concurrency", type=int, default=4, help="jobs at once (default 4)")
    batch.set_defaults(run=cmd_batch)

    search = commands.add_parser(
        "search",
        parents=[common],
        help="find earlier videos",
        description="List earlier jobs, newest first, narrowed by the filters.",
    )
    search.add_argument("--q", help="words in the instruction or English prompt (all must match)")
    search.add_argument("--session")
    search.add_argument("--status", choices=STATUSES)
    search.add_argument("--category", choices=CATEGORIES)
    search.add_argument("--since", help="created at or after: unix seconds or 2025-05-01")
    search.add_argument("--until", help="created at or before: unix seconds or 2025-05-31")
    search.add_argument("--limit", type=int, default=20, help="1 to 100 (default 20)")
    search.add_argument("--after", help="the last id of the previous page")
    search.add_argument("--order", choices=("desc", "asc"), default="desc")
    search.add_argument("--json", action="store_true", help="the raw list as JSON")
    search.set_defaults(run=cmd_search)

    chat = commands.add_parser(
        "chat",
        parents=[common],
        help="a conversation about one picture",
        description="Talk about a picture: each line you type is a message; the service "
        "answers with a clarifying question or makes a video, which is downloaded.",
    )
    chat.add_argument("image")
    chat.add_argument("--session", help="continue a session (default: a new one)")
    chat.add_argument("--out-dir", default=".", help="where videos go (default: here)")
    chat.set_defaults(run=cmd_chat)

    admin = commands.add_parser(
        "admin",
        parents=[common],
        help="manage API keys (operators)",
        description="Create, list and revoke API keys with the admin key ($I2V_ADMIN_KEY or "
        "--admin-key). Callers send their key as $OPENAI_API_KEY.",
    )
    admin.add_argument("--admin-key", default=None, help="default: $I2V_ADMIN_KEY")
    keys = admin.add_subparsers(dest="what", required=True, metavar="keys").add_parser(
        "keys", help="API keys"
    )
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create_key = actions.add_parser("create", help="a new key; its secret is shown once")
    create_key.add_argument("name")
    create_key.add_argument("--project", help="default: a new project named after the key")
    create_key.add_argument("--requests-per-minute", type=int, dest="requests_per_minute")
    create_key.add_argument("--max-active-jobs", type=int, dest="max_active_jobs")
    create_key.set_defaults(run=cmd_admin_keys_create)
    actions.add_parser("list", help="every key, without secrets").set_defaults(
        run=cmd_admin_keys_list
    )
    revoke_key = actions.add_parser("revoke", help="revoke a key at once")
    revoke_key.add_argument("key_id")
    revoke_key.set_defaults(run=cmd_admin_keys_revoke)
    return parser


if __name__ == "__main__":
    sys.exit(main())
