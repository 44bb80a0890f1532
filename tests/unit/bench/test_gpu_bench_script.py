"""bench/gpu_generate.py runs its whole code path on cpu with a tiny model (--tiny-check), and
imports nothing that the GPU machine lacks (it has torch and transformers, and gets diffusers)."""

from __future__ import annotations

import ast
import importlib.util
import json
import pathlib
import sys

import pytest

from i2v_testing.paths import ROOT

REPO_ROOT = ROOT
SCRIPT = REPO_ROOT / "bench" / "gpu_generate.py"
ALLOWED = {"torch", "transformers", "diffusers", "numpy", "PIL"}


def test_tiny_check_runs_and_writes_results(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("gpu_generate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_generate", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    out = tmp_path / "gpu_generate.json"

    module.main(["--tiny-check", "--out", str(out)])

    assert "| batch | steps | s / step (median)" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["environment"]["attention"] == ["AttnProcessor2_0"]
    assert result["largest_batch"] == 2  # the tiny check's max_batch: nothing runs out on cpu
    assert [probe["fits"] for probe in result["batch_search"]] == [True, True]
    runs = {run["batch"]: run for run in result["runs"]}
    assert sorted(runs) == [1, 2]
    for batch, run in runs.items():
        assert run["seconds_per_step_median"] > 0
        assert run["seconds_per_video"] * batch == pytest.approx(run["seconds_per_batch"])
        assert run["peak_allocated_bytes"] is None  # no CUDA statistics on cpu


def test_imports_only_what_the_gpu_machine_has() -> None:
    """Every module the script imports, following this repo's own modules (packages included),
    is in the standard library or in ALLOWED."""
    seen: set[str] = set()
    pending = [SCRIPT]
    while pending:
        path = pending.pop()
        for name in _imported_modules(path):
            top = name.split(".")[0]
            if top == "deployments":
                pending.extend(_repo_files(name, seen))
            else:
                assert top in ALLOWED or top in sys.stdlib_module_names, f"{path}: {name}"
    assert "deployments.generator.pipeline" in seen


def _imported_modules(path: pathlib.Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _repo_files(module: str, seen: set[str]) -> list[pathlib.Path]:
    """The files Python runs to import `module`: each package's __init__.py, then the module."""
    files, parts = [], module.split(".")
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        if name in seen:
            continue
        seen.add(name)
        base = REPO_ROOT.joinpath(*parts[:depth])
        path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        files.append(path)
    return files
