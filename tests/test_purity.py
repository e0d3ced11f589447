"""The layers: `cryptorl` is a pure library (no Prefect, never the orchestration or the command line above it);
`tasks` and `flows` never import the command line."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import cryptorl

ROOT = Path(cryptorl.__file__).resolve().parents[1]
# What each layer may not import: the layers above it.
FORBIDDEN = {"cryptorl": ("prefect", "flows", "tasks", "cli"), "tasks": ("flows", "cli"), "flows": ("cli",)}


def test_importing_every_cryptorl_module_does_not_import_prefect():
    modules = [m.name for m in pkgutil.walk_packages(cryptorl.__path__, "cryptorl.")]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'flows', 'tasks', 'cli')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert len(modules) > 10
    assert result.stdout.strip() == "[]"


def imported_packages(path: Path) -> set[str]:
    """The top-level package of every import in a file, lazy imports inside functions included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_module_imports_a_layer_above_its_own(layer):
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files
    upward = {str(path.relative_to(ROOT)): sorted(imported_packages(path) & set(FORBIDDEN[layer])) for path in files}
    assert {path: found for path, found in upward.items() if found} == {}
