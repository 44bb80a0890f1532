"""The router decides what a request is about: a subject named in the instruction decides the
category over the classifier (the user knows their picture), a category the user gave stays, the
picture's label names the subject when the instruction names none, and the parameters follow the
category decided. The LLM planner is given the same evidence."""

from __future__ import annotations

import random

import pytest

from deployments.router.config import LLMConfig, RouterConfig
from deployments.router.engine import RouterEngine
from deployments.router.protocol import Label, PlanRequest
from i2v_testing.fake_openai import FakeOpenAIServer, Reply

CUP_LABELS = [Label(name="espresso", score=0.95, category="still_life")]
CAT_LABELS = [
    Label(name="tiger cat", score=0.38, category="animal"),
    Label(name="Egyptian cat", score=0.37, category="animal"),
    Label(name="tabby cat", score=0.16, category="animal"),
]
HELMET_LABELS = [Label(name="football helmet", score=0.13, category="still_life")]


@pytest.fixture(scope="module")
def engine() -> RouterEngine:
    return RouterEngine(RouterConfig(), rng=random.Random(0))


def plan_for(engine, instruction, category, labels=(), source="classifier"):
    request = PlanRequest(
        instruction=instruction,
        category=category,
        category_source=source,
        labels=list(labels),
        image_width=600,
        image_height=400,
    )
    return engine.plan(request)


def decision(plan):
    return next(d for d in plan.trace if d.stage == "category")


def test_the_cup_picture_is_a_still_life_with_a_cup(engine):
    plan = plan_for(engine, "展示这个杯子旋转", "still_life", CUP_LABELS)
    assert plan.category == "still_life" and plan.subject == "A cup"
    assert plan.prompt.startswith("A cup, rotating")
    table = RouterConfig().categories["still_life"]
    assert plan.params.num_frames == table.num_frames
    assert plan.params.num_inference_steps == table.num_inference_steps
    assert decision(plan).detail["decided_by"] == "instruction"


def test_a_named_subject_decides_the_category_over_the_classifier(engine):
    # The classifier saw a still life, the user says it is a dog: the dog wins, with its row.
    plan = plan_for(engine, "让这只狗摇尾巴", "still_life", CUP_LABELS)
    assert plan.category == "animal" and plan.prompt.startswith("A dog")
    assert "tail" in plan.prompt
    animal = RouterConfig().categories["animal"]
    assert plan.params.num_inference_steps == animal.num_inference_steps
    detail = decision(plan).detail
    assert detail["decided_by"] == "instruction"
    assert detail["picture"] == {"category": "still_life", "source": "classifier"}
    assert detail["instruction"]["subject"] == "dog" and detail["instruction"]["words"] == ["狗"]


def test_without_a_subject_the_picture_label_names_it(engine):
    plan = plan_for(engine, "让它动起来", "animal", CAT_LABELS)
    assert plan.category == "animal" and plan.prompt.startswith("A tiger cat")
    assert decision(plan).detail["decided_by"] == "classifier"
    assert decision(plan).detail["subject"] == "A tiger cat"


def test_a_capitalised_label_gets_its_article(engine):
    labels = [Label(name="Egyptian cat", score=0.4, category="animal")]
    assert plan_for(engine, "让它动起来", "animal", labels).prompt.startswith("An Egyptian cat,")


def test_a_label_of_another_category_is_not_the_subject(engine):
    # The astronaut photo: a face made it a person, ImageNet only sees a helmet.
    plan = plan_for(engine, "make it move", "person", HELMET_LABELS)
    assert plan.prompt.startswith("A person") and "helmet" not in plan.prompt


def test_an_unsure_label_is_not_the_subject(engine):
    unsure = [Label(name="tabby cat", score=0.1, category="animal")]
    plan = plan_for(engine, "make it move", "animal", unsure)
    assert plan.prompt.startswith("An animal")


def test_a_category_the_user_gave_stays(engine):
    plan = plan_for(engine, "让这只狗摇尾巴", "landscape", source="user")
    assert plan.category == "landscape" and plan.prompt.startswith("A dog")
    assert decision(plan).detail["decided_by"] == "user"


def test_an_unknown_noun_names_the_subject_but_leaves_the_category(engine):
    plan = plan_for(engine, "make the zorblax spin", "still_life", CUP_LABELS)
    assert plan.category == "still_life"


def test_the_llm_is_given_the_labels_and_the_subject():
    reply = {
        "action": "generate",
        "prompt": "A tiger cat turning its head slowly, natural daylight",
        "negative_prompt": "",
        "motion": "turning its head",
        "overrides": {
            "num_frames": None,
            "num_inference_steps": None,
            "guidance_scale": None,
            "fps": None,
        },
        "question": None,
    }
    with FakeOpenAIServer() as server:
        server.script([Reply.structured(reply)])
        llm = LLMConfig(model="m", base_url=server.url, api_key="k", max_retries=0)
        engine = RouterEngine(RouterConfig(llm=llm), rng=random.Random(0))
        plan = plan_for(engine, "让它动起来", "animal", CAT_LABELS)
        (sent,) = server.requests
    user = sent.message_text("user")
    assert "tiger cat (0.38)" in user and "Egyptian cat (0.37)" in user
    assert "Subject: A tiger cat (what the picture shows)" in user
    assert plan.planner == "llm" and plan.subject == "A tiger cat"
