"""The layers import downward only (docs/architecture.md): the shared core imports no deployment;
a deployment imports the core, itself and other deployments' `protocol` modules only; the
application builder sits on top; the command line talks HTTP and imports none of the service."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from i2v_testing.paths import ROOT

PRODUCT = ("i2v_core", "deployments", "serve_app", "i2v_cli")
DEPLOYMENTS = sorted(
    p.name for p in (ROOT / "deployments").iterdir() if (p / "__init__.py").exists()
)


def _product_imports(path: Path) -> set[str]:
    """Every module of ours that `path` imports, at any depth of the file (lazy imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in (*PRODUCT, "i2v_testing")}


def _allowed(importer: str, imported: str) -> bool:
    top = importer.split(".")[0]
    target = imported.split(".")
    if target[0] == "i2v_testing":
        return False  # the product never imports test helpers
    if top == "i2v_core":
        return target[0] == "i2v_core"
    if top == "i2v_cli":
        return target[0] == "i2v_cli"
    if top == "deployments":
        own = importer.split(".")[1]
        if target[0] == "i2v_core":
            return True
        if target[0] != "deployments" or len(target) < 2:
            return False
        if target[1] == own:
            return True
        # Another deployment: its protocol module only (the names imported from it are fine).
        return len(target) >= 3 and target[2] == "protocol"
    return top == "serve_app"  # the application builder may import anything below it


def _modules():
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts and path.name != "env.py":
                continue
            yield ".".join(path.relative_to(ROOT).with_suffix("").parts), path


@pytest.mark.parametrize("module,path", list(_modules()), ids=lambda v: str(v))
def test_module_imports_only_downward(module, path):
    upward = sorted(i for i in _product_imports(path) if not _allowed(module, i))
    assert not upward, f"{module} imports upward or across layers: {upward}"


def test_every_deployment_has_a_protocol_and_a_config():
    for name in DEPLOYMENTS:
        assert (ROOT / "deployments" / name / "protocol.py").exists(), name
        assert (ROOT / "deployments" / name / "config.py").exists(), name


def test_the_rule_catches_an_upward_import():
    assert not _allowed("i2v_core.jobs", "deployments.ingress.protocol")
    assert not _allowed("deployments.ingress.api", "deployments.classifier.engine")
    assert not _allowed("deployments.generator.worker", "serve_app.config")
    assert not _allowed("serve_app.builder", "i2v_testing.jobs")
    assert _allowed("deployments.ingress.api", "deployments.router.protocol.Plan")
