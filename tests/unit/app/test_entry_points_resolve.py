"""Every import of ours in the scripts, benchmarks and test helpers names a module and a name that
exist, checked statically (without importing torch): `make demo`, `make serve` and `make bench`
run these files directly, and a moved module must not break them silently."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from i2v_testing.paths import ROOT

OURS = ("i2v_core", "deployments", "serve_app", "i2v_cli", "i2v_testing")
FILES = sorted(
    p for folder in ("scripts", "bench", "i2v_testing") for p in (ROOT / folder).glob("*.py")
)


def _top_level_names(module: str) -> set[str]:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, module
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(OURS):
            for alias in node.names:
                yield node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(OURS):
                    yield alias.name, None


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_of_ours_resolve(path):
    for module, name in _imports(path):
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"{path.name}: no module {module}"
        if name is None:
            continue
        is_package = spec.submodule_search_locations is not None
        if is_package and importlib.util.find_spec(f"{module}.{name}") is not None:
            continue
        assert name in _top_level_names(module), f"{path.name}: {module} has no {name}"
