"""The web page in a real headless Chromium (Debian's package, driven by Playwright; no browser
download): upload a picture, see the plan and the progress move, play the MP4; the classroom
conversation (question → clarifying question → "对" → video) and a "slower" follow-up that
remixes it; the history's search filters; Chinese and English. Screenshots of the finished page
go to out/test-artifacts/."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import av
import pytest

from i2v_testing.paths import EXAMPLES, ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "out" / "test-artifacts"
JOB_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, service):
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{service.base_url}/")
    yield page
    context.close()
    assert errors == [], errors


def wait_until_shown_job_is(page, status: str) -> None:
    page.wait_for_function(
        f"document.querySelector('#status').dataset.status === '{status}'",
        timeout=JOB_TIMEOUT_MS,
    )


def wait_until_playable(page) -> dict:
    """The <video> has decoded its first frame (readyState >= 2, HAVE_CURRENT_DATA)."""
    page.wait_for_function(
        "(() => { const v = document.querySelector('#video');"
        " return v.readyState >= 2 && v.duration > 0; })()",
        timeout=30_000,
    )
    return page.evaluate(
        "(() => { const v = document.querySelector('#video');"
        " return {readyState: v.readyState, duration: v.duration, width: v.videoWidth,"
        " height: v.videoHeight, error: v.error && v.error.code}; })()"
    )


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_upload_plan_progress_and_playable_video(page, service):
    assert page.evaluate(
        "document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.42E01E\"')"
    )
    page.set_input_files("#picture", str(EXAMPLES / "cup.jpg"))
    page.wait_for_selector("#preview", state="visible")  # the picture is shown
    page.fill("#instruction", "展示这个杯子旋转")
    page.click("#advanced summary")
    seed = str(int(time.time() * 1000) % 4_000_000_000)
    page.fill("[name=size]", "64x64")
    page.fill("[name=num_frames]", "8")
    page.fill("[name=num_inference_steps]", "40")  # long enough to watch progress move
    page.fill("[name=seed]", seed)
    page.evaluate(
        """() => {
        window.progressSeen = [];
        const bar = document.querySelector('#progress');
        new MutationObserver(() => window.progressSeen.push(bar.value)).observe(
            document.querySelector('#progress-text'), {childList: true, subtree: true,
            characterData: true});
    }"""
    )
    page.click("#submit")
    page.wait_for_selector("#job-pane:not([hidden])")
    video_id = page.inner_text("#job-id")
    assert video_id.startswith("video_")
    # The plan: category, English prompt, parameters with where each came from.
    assert page.get_attribute("#plan-category", "data-value") in (
        "person",
        "animal",
        "landscape",
        "still_life",
    )
    assert "rotating" in page.inner_text("#plan-prompt")
    params = page.inner_text("#plan-params")
    assert "steps: 40 (you)" in params and f"seed: {seed} (you)" in params

    wait_until_shown_job_is(page, "completed")
    seen = page.evaluate("window.progressSeen")
    assert any(0 < p < 100 for p in seen), seen
    assert seen[-1] == 100
    shown = wait_until_playable(page)
    assert shown["error"] is None
    assert (shown["width"], shown["height"]) == (64, 64)

    job = service.jobs.get(video_id)
    assert job.status == "completed" and job.params["num_inference_steps"] == 40
    href = page.get_attribute("#download", "href")
    assert href == f"/v1/videos/{video_id}/content?variant=video"
    content = page.request.get(f"{service.base_url}{href}")
    assert content.ok and content.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(content.body())) as container:
        assert len(list(container.decode(video=0))) == 8

    # History: the new video is listed and found by the search filters.
    page.wait_for_selector(f"#history li[data-video-id='{video_id}']")
    page.fill("#history-q", "杯子 ROTATING")
    page.select_option("#history-status", "completed")
    search_history(page)
    page.wait_for_selector(f"#history li[data-video-id='{video_id}'] img")
    page.fill("#history-q", "no such words anywhere")
    search_history(page)
    page.wait_for_selector("#history li.empty")
    page.fill("#history-q", "")
    page.select_option("#history-status", "")
    search_history(page)
    page.wait_for_selector(f"#history li[data-video-id='{video_id}']")
    screenshot(page, "web_page_video.png")


def search_history(page):
    """Run the history search and wait for its own answer, not a list loaded before it."""
    page.click("#history-search")
    page.wait_for_selector("#history[aria-busy='false']", state="attached")


def test_clarify_conversation_then_a_slower_remix(page, service):
    page.set_input_files("#picture", str(EXAMPLES / "cat.jpg"))
    session = page.inner_text("#session-id")
    page.fill("#chat-input", "这张图里的水是怎么循环的?")
    page.click("#chat-send")
    question = page.wait_for_selector("#chat-log li.question")
    assert "您是想展示水蒸气上升然后变成雨吗？" in question.inner_text()
    assert not page.is_visible("#job-pane")  # a question makes no video

    page.fill("#chat-input", "对")
    page.click("#chat-send")
    page.wait_for_selector("#job-pane:not([hidden])")
    first_id = page.inner_text("#job-id")
    assert "water evaporating from the ocean and forming clouds" in page.inner_text("#plan-prompt")
    wait_until_shown_job_is(page, "completed")
    assert wait_until_playable(page)["error"] is None
    job = service.jobs.get(first_id)
    assert (job.session_id, job.instruction) == (session, "这张图里的水是怎么循环的?")

    # A follow-up remixes the last video.
    page.fill("#chat-input", "slower")
    page.click("#chat-send")
    page.wait_for_function(
        f"document.querySelector('#job-id').textContent !== '{first_id}'", timeout=30_000
    )
    remix_id = page.inner_text("#job-id")
    assert service.jobs.get(remix_id).remixed_from == first_id
    wait_until_shown_job_is(page, "completed")
    wait_until_playable(page)
    assert page.locator("#chat-log li").count() == 6  # 3 from each side

    # This session's history holds both videos.
    page.check("#history-session")
    search_history(page)
    page.wait_for_selector(f"#history li[data-video-id='{remix_id}']")
    assert page.locator("#history li").count() == 2
    screenshot(page, "web_page_conversation.png")

    # Every string in both languages.
    page.click("#lang")
    assert page.inner_text("h1") == "图片生成视频"
    assert page.inner_text("#status") == "已完成"
    assert page.inner_text("#chat-send") == "发送"
    assert page.get_attribute("#chat-input", "placeholder").startswith("例如")
    screenshot(page, "web_page_conversation_zh.png")
    page.reload()
    assert page.inner_text("h1") == "图片生成视频"  # the choice is remembered
    page.click("#lang")
    assert page.inner_text("h1") == "Image to video"


def test_errors_from_the_service_are_shown(page):
    page.fill("#chat-input", "让它动起来")
    page.click("#chat-send")  # no picture anywhere in this new session
    alert = page.wait_for_selector("#alert:not([hidden])")
    assert "input_reference" in alert.inner_text()
    page.click("#submit")  # no picture chosen
    page.wait_for_function("document.querySelector('#alert').textContent.includes('picture')")
