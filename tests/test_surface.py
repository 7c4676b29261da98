"""The public surfaces stay small and true: helpers.py offers what the four scripts import and no
more, the package offers the curated API of docs/api.md, each name the object its module defines,
the modules import in one direction, and training never loads matplotlib."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys

import autoencoder
import helpers
from conftest import ROOT, trainer_argv

PACKAGE = ROOT / "autoencoder"


def public_names(module_path) -> set[str]:
    """The names a module defines at its top level (functions, classes, constants), less _private."""
    names = set()
    for node in ast.parse(module_path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_")}


def modules() -> dict[str, set[str]]:
    return {path.stem: public_names(path) for path in sorted(PACKAGE.glob("*.py")) if path.stem != "__init__"}


SCRIPTS = ("auto_encoder.py", "plot_training.py", "plot_3D.py", "plot_4x4.py")


def test_helpers_offers_exactly_what_the_four_scripts_import():
    imported = set()
    for script in SCRIPTS:
        for node in ast.walk(ast.parse((ROOT / script).read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "helpers":
                imported.update(alias.name for alias in node.names)
    assert set(helpers.__all__) == imported
    assert len(helpers.__all__) == len(set(helpers.__all__)), "a name is listed twice"


def test_the_package_offers_the_curated_api_that_docs_api_md_documents():
    documented = (ROOT / "docs" / "api.md").read_text()
    assert all(f"`{name}`" in documented for name in autoencoder.__all__)
    assert len(autoencoder.__all__) <= 25 and len(set(autoencoder.__all__)) == len(autoencoder.__all__)
    assert all(getattr(autoencoder, name) is not None for name in autoencoder.__all__)


def module_imports() -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports (`from .x import`)."""
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem == "__init__":
            continue
        tree = ast.parse(path.read_text())
        graph[path.stem] = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
        }
    return graph


def test_the_modules_import_each_other_in_one_direction():
    graph, done, path = module_imports(), set(), []

    def visit(module: str) -> None:
        assert module not in path, f"import circle: {' -> '.join([*path, module])}"
        if module in done:
            return
        path.append(module)
        for imported in graph[module]:
            visit(imported)
        path.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_no_two_modules_define_the_same_public_name():
    seen: dict[str, str] = {}
    for module, names in modules().items():
        for name in names:
            assert name not in seen, f"{name} is defined in {seen[name]} and {module}"
            seen[name] = module


def test_each_name_in_helpers_is_the_object_its_module_defines():
    for module, names in modules().items():
        loaded = importlib.import_module(f"autoencoder.{module}")
        for name in names & set(helpers.__all__):
            assert getattr(helpers, name) is getattr(loaded, name), f"helpers.{name} is not {module}.{name}"


def test_training_a_model_never_imports_matplotlib(tiny_mnist, tmp_path):
    argv = trainer_argv(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "1")
    check = (
        f"import sys, auto_encoder; code = auto_encoder.main({argv!r}); "
        "sys.exit(code or 10 * ('matplotlib' in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "auto_encoder_3D_weights.pt").is_file()
