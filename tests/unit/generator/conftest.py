"""The generator engine on the tiny weights, shared by this folder's test modules (one engine per
module, so a module's fault injections stay its own)."""

from __future__ import annotations

import pathlib

import pytest

from deployments.generator.config import GeneratorConfig
from deployments.generator.engine import GeneratorEngine


@pytest.fixture(scope="module")
def tiny_dir(tiny_models: pathlib.Path) -> pathlib.Path:
    return tiny_models / "generator"


@pytest.fixture(scope="module")
def engine(tiny_dir: pathlib.Path) -> GeneratorEngine:
    return GeneratorEngine(GeneratorConfig(model=str(tiny_dir), device="cpu"))
