"""The benchmark scripts import v1recon inside functions, so a renamed module breaks them only when they run:
check every `from v1recon... import name` of benchmarks/*.py against the package."""

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).parents[1] / "benchmarks").glob("*.py"))


def v1recon_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every `from v1recon... import name` in a script, at any depth."""
    tree = ast.parse(path.read_text())
    return [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "v1recon"
        for alias in node.names
    ]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_v1recon_import_of_a_benchmark_resolves(script):
    missing = []
    for module, name in v1recon_imports(script):
        try:
            found = importlib.import_module(module)
        except ImportError:
            missing.append(module)
            continue
        if not hasattr(found, name) and importlib.util.find_spec(f"{module}.{name}") is None:
            missing.append(f"{module}.{name}")
    assert not missing, f"{script.name} imports what v1recon does not have: {missing}"


def test_the_import_check_sees_a_missing_module(tmp_path):
    script = tmp_path / "old.py"
    script.write_text("def f():\n    from v1recon.recon.job import run_masks\n")
    assert v1recon_imports(script) == [("v1recon.recon.job", "run_masks")]
    with pytest.raises(ImportError):
        importlib.import_module("v1recon.recon.job")
