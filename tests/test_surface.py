"""helpers.py is the suite's one public surface: it offers every public name of the package's
modules, each the object its module defines, and training never loads matplotlib."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys

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


def test_helpers_offers_exactly_the_public_names_of_the_package():
    defined = set().union(*modules().values())
    assert set(helpers.__all__) == defined
    assert len(helpers.__all__) == len(set(helpers.__all__)), "a name is listed twice"


def test_no_two_modules_define_the_same_public_name():
    seen: dict[str, str] = {}
    for module, names in modules().items():
        for name in names:
            assert name not in seen, f"{name} is defined in {seen[name]} and {module}"
            seen[name] = module


def test_each_name_in_helpers_is_the_object_its_module_defines():
    for module, names in modules().items():
        loaded = importlib.import_module(f"autoencoder.{module}")
        for name in names:
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
