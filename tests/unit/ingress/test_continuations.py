"""Extensions and edits through the HTTP app without Ray: the real routes, request models, intake
and rules router over SQLite, a stub classifier and a recorded queue. What each form of the video
(`video` file, `video[id]`) becomes in the job; bad videos are 400 with nothing written."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from deployments.classifier.protocol import Classification
from deployments.ingress.auth import Caller
from deployments.ingress.requests import ExtendVideoForm
from deployments.ingress.routes import build_api
from deployments.ingress.services import build_services
from deployments.router.engine import RouterEngine
from i2v_core.artifacts import ArtifactStore
from i2v_core.errors import APIError
from i2v_core.jobs import JobStore
from i2v_testing.jobs import make_job
from i2v_testing.videos import audio_only_mp4, make_video, mean_difference, moving_frames
from serve_app.config import AppConfig

SOURCE_PARAMS = {
    "width": 64,
    "height": 64,
    "num_frames": 8,
    "num_inference_steps": 2,
    "guidance_scale": 7.0,
    "fps": 12,
    "seed": 4242,
}
CLIP = moving_frames(8, 96, 64)
MP4 = make_video(CLIP)


class App:
    def __init__(self, folder, fail_enqueue: bool = False):
        config = AppConfig().ingress_config()
        self.jobs = JobStore(f"sqlite:///{folder / 'jobs.db'}")
        self.artifacts = ArtifactStore(folder / "artifacts")
        self.queued: list[str] = []
        router = RouterEngine(AppConfig().router)

        async def classify(_picture):
            return Classification(category="still_life", scores={"still_life": 1.0})

        async def plan(request):
            self.requests.append(request)
            return router.plan(request)

        def enqueue(job_id: str) -> None:
            if fail_enqueue:
                raise ConnectionError("queue down")
            self.queued.append(job_id)

        self.requests: list = []
        self.services = build_services(config, self.jobs, self.artifacts, classify, plan, enqueue)
        self.client = TestClient(build_api(config, self.services, _ready))

    def snapshot(self):
        return self.jobs.count(), self.artifacts.files()

    def completed_video(self, frames: np.ndarray = CLIP[:, :64, :64]) -> str:
        """One of ours, completed, with its MP4 stored."""
        job = make_job(prompt="A cup, rotating, moving slowly, soft light", params=SOURCE_PARAMS)
        self.jobs.create(job, completed=True)
        self.artifacts.put_video(job.id, make_video(frames, fps=12), b"thumb", b"sheet")
        return job.id

    def post(self, route: str, data: dict, video: bytes | None = None):
        files = {"video": ("clip.mp4", video, "video/mp4")} if video is not None else None
        return self.client.post(f"/v1/videos/{route}", data=data, files=files)


async def _ready() -> dict[str, bool]:
    return {"database": True}


@pytest.fixture
def app(tmp_path):
    app = App(tmp_path)
    yield app
    app.jobs.close()


def test_extend_an_uploaded_video(app):
    response = app.post("extensions", {"prompt": "keep going", "seconds": "1"}, MP4)
    assert response.status_code == 200, response.text
    video = response.json()
    assert (video["status"], video["operation"], video["source_video_id"]) == (
        "queued",
        "extension",
        None,
    )
    job = app.jobs.get(video["id"])
    assert app.queued == [job.id]
    # Size fitted to the limits from the upload's, its frame rate, one frame more than 1 s.
    assert (job.params["fps"], job.params["num_frames"]) == (8, 9)
    assert job.cache_key is None
    assert app.artifacts.source_video_path(job.prefix_video).read_bytes() == MP4
    picture = np.asarray(Image.open(app.artifacts.image_path(job.image_name)))
    assert mean_difference(picture, CLIP[-1]) < 10  # the last frame
    [source] = [t for t in job.trace if t["stage"] == "source"]
    assert source["decision"] == "upload"
    assert source["detail"]["frame"] == "last"
    assert source["detail"]["segment"] == {"seconds": 1.0, "num_frames": 9, "new_frames": 8}
    assert app.requests[-1].history == []


def test_extend_one_of_ours_continues_its_prompt_at_its_size_and_rate(app):
    source_id = app.completed_video()
    response = app.post("extensions", {"prompt": "slower", "seconds": "2", "video[id]": source_id})
    assert response.status_code == 200, response.text
    video = response.json()
    assert (video["operation"], video["source_video_id"]) == ("extension", source_id)
    job = app.jobs.get(video["id"])
    params = job.params
    assert (params["width"], params["height"], params["fps"], params["seed"]) == (64, 64, 12, 4242)
    assert params["num_frames"] == 25  # 2 s at the source's 12 fps, plus the repeated frame
    assert params["num_inference_steps"] == 2  # the source's
    request = app.requests[-1]
    assert request.history == ["A cup, rotating, moving slowly, soft light"]
    assert request.previous is not None and request.category_source == "source"
    plan = next(t for t in job.trace if t["stage"] == "plan")
    assert plan["detail"]["reason"].startswith("follow-up revision of the last prompt")
    assert job.prompt.startswith("A cup, rotating")
    # The source MP4 is kept by a hard link: deleting the source later leaves it.
    prefix = app.artifacts.source_video_path(job.prefix_video)
    assert os.path.samefile(prefix, app.artifacts.video_path(source_id))
    assert app.client.delete(f"/v1/videos/{source_id}").status_code == 200
    assert prefix.exists()
    # Deleting the extension removes it.
    assert app.client.delete(f"/v1/videos/{job.id}").status_code == 200
    assert not prefix.exists()


def test_edit_one_of_ours_starts_from_its_first_frame_as_a_remix(app):
    source_id = app.completed_video()
    response = app.post("edits", {"prompt": "now make it rain", "video[id]": source_id})
    assert response.status_code == 200, response.text
    video = response.json()
    assert (video["operation"], video["source_video_id"]) == ("edit", source_id)
    job = app.jobs.get(video["id"])
    assert job.prefix_video is None
    assert {k: job.params[k] for k in ("width", "height", "num_frames", "fps", "seed")} == {
        k: SOURCE_PARAMS[k] for k in ("width", "height", "num_frames", "fps", "seed")
    }
    assert "rain" in job.prompt and job.prompt.startswith("A cup, rotating")
    picture = np.asarray(Image.open(app.artifacts.image_path(job.image_name)))
    assert mean_difference(picture, CLIP[0, :64, :64]) < 10  # the first frame


def test_edit_an_uploaded_video_keeps_its_size_and_length(app):
    response = app.post("edits", {"prompt": "make it snow"}, MP4)
    assert response.status_code == 200, response.text
    job = app.jobs.get(response.json()["id"])
    assert job.prefix_video is None and job.source_video_id is None
    # 1 s at the router's default rate; 96x64 fitted to multiples of 64.
    assert job.params["num_frames"] == job.params["fps"]
    assert job.params["height"] == 64
    assert app.requests[-1].history == []


EXTEND = {"prompt": "go", "seconds": "4"}
MISSING = "missing_required_parameter"


@pytest.mark.parametrize(
    ("route", "data", "video", "status", "param", "code"),
    [
        pytest.param("extensions", EXTEND, b"", 400, "video", "invalid_video", id="empty"),
        pytest.param(
            "extensions", EXTEND, b"hello", 400, "video", "unsupported_video_format", id="text"
        ),
        pytest.param(
            "extensions", EXTEND, audio_only_mp4(), 400, "video", "no_video_stream", id="audio"
        ),
        pytest.param(
            "edits", {"prompt": "go"}, MP4[: len(MP4) // 2], 400, "video", "invalid_video",
            id="truncated",
        ),
        pytest.param("extensions", EXTEND, None, 400, "video", MISSING, id="no-video"),
        pytest.param("extensions", {"prompt": "go"}, MP4, 400, "seconds", MISSING, id="no-seconds"),
        pytest.param(
            "extensions", {**EXTEND, "seconds": "0"}, MP4, 400, "seconds", None, id="zero-seconds"
        ),
        pytest.param(
            "edits", {"prompt": "go", "video": "video_1"}, None, 400, "video", None, id="text-video"
        ),
        pytest.param(
            "edits", {"prompt": "go", "video[id]": "video_nope"}, None, 404, "video[id]",
            "video_not_found", id="unknown-id",
        ),
        pytest.param(
            "edits", {"prompt": "go", "video[id]": "v"}, MP4, 400, "video", None, id="both"
        ),
    ],
)  # fmt: skip
def test_bad_requests_are_refused_and_write_nothing(app, route, data, video, status, param, code):
    before = app.snapshot()
    response = app.post(route, data, video)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    assert app.snapshot() == before
    assert app.queued == []


def test_another_projects_video_is_not_found(app):
    source_id = app.completed_video()  # the open project's
    form = ExtendVideoForm.model_validate({"prompt": "go", "seconds": 1, "video[id]": source_id})
    with pytest.raises(APIError) as caught:
        asyncio.run(app.services.continuations.extend(form, Caller(project="someone-else")))
    assert (caught.value.status_code, caught.value.code) == (404, "video_not_found")


def test_an_unfinished_video_is_409(app):
    job = app.jobs.create(make_job(params=SOURCE_PARAMS))
    response = app.post("extensions", {"prompt": "go", "seconds": "4", "video[id]": job.id})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "video_not_ready"


def test_a_refused_enqueue_leaves_no_source_video(tmp_path):
    app = App(tmp_path, fail_enqueue=True)
    before = app.snapshot()
    response = app.post("extensions", {"prompt": "go", "seconds": "1"}, MP4)
    assert response.status_code == 503
    assert app.snapshot() == before
    app.jobs.close()


def test_openapi_describes_both_routes_and_their_multipart_forms(app):
    document = app.client.get("/openapi.json").json()
    for route, required in (("extensions", ["prompt", "seconds"]), ("edits", ["prompt"])):
        operation = document["paths"][f"/v1/videos/{route}"]["post"]
        schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert schema["required"] == required
        assert schema["properties"]["video"]["format"] == "binary"
        assert schema["properties"]["video[id]"]["pattern"]
        assert schema["additionalProperties"] is False
        assert {"400", "404", "409", "410", "413", "415"} <= set(operation["responses"])


def test_other_methods_get_405_allowing_post_only(app):
    for route in ("extensions", "edits"):
        response = app.client.request("OPTIONS", f"/v1/videos/{route}")
        assert response.status_code == 405
        # Not GET and DELETE, although the path also fits /v1/videos/{video_id}.
        assert response.headers["allow"] == "POST"
