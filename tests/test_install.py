"""`pip install .` and `pip install -e .` give a package that imports outside the repository, with
its data files and the dependencies of requirements.txt.

The install goes into a fresh virtual environment that sees this interpreter's packages (torch and
the rest) through a .pth file, with --no-deps --no-build-isolation: nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from conftest import ROOT, train

pytestmark = pytest.mark.slow

# Run by the installed interpreter from a folder outside the repository: every module of the
# package imported, then where it came from, its files and its declared requirements.
REPORT = """
import importlib, importlib.metadata, json, pkgutil, sys
from pathlib import Path
import autoencoder
modules = [m.name for m in pkgutil.walk_packages(autoencoder.__path__, "autoencoder.")]
for name in modules:
    importlib.import_module(name)
folder = Path(autoencoder.__file__).parent
json.dump({"folder": str(folder), "modules": modules,
           "files": sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                           if p.is_file() and "__pycache__" not in p.parts),
           "requires": importlib.metadata.requires("autoencoder")}, sys.stdout)
"""


def requirement_lines(path: Path) -> list[str]:
    """The requirements a requirements file names itself (no comments, no -r includes)."""
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def package_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def fresh_venv(folder: Path) -> Path:
    """A virtual environment without pip that imports this interpreter's packages; its python."""
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    outer = [path for path in sys.path if path.endswith(("site-packages", "dist-packages"))]  # not the repository
    (Path(purelib) / "outer.pth").write_text("".join(f"{path}\n" for path in outer))
    return python


def install(tmp_path: Path, editable: bool) -> tuple[Path, Path]:
    """`pip install [-e] .` of a copy of the sources into a fresh venv; its python and the copy."""
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "autoencoder", source / "autoencoder", ignore=shutil.ignore_patterns("__pycache__"))
    python = fresh_venv(tmp_path / "venv")
    install = [
        python,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        *(["-e"] if editable else []),
        str(source),
    ]
    result = subprocess.run(install, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return python, source


@pytest.mark.parametrize("editable", [False, True], ids=["install", "editable"])
def test_pip_install_gives_a_package_that_imports_outside_the_repository(tmp_path: Path, editable: bool) -> None:
    python, source = install(tmp_path, editable)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no PYTHONPATH to reach the repository
    result = subprocess.run([python, "-c", REPORT], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    installed = Path(report["folder"])
    if editable:
        assert installed == source / "autoencoder"
    else:
        assert installed.is_relative_to(tmp_path / "venv"), installed
    assert report["files"] == package_files(source / "autoencoder")  # every module and data file
    assert {"autoencoder.explorer", "autoencoder.reference"} <= set(report["modules"])
    runtime = [r for r in report["requires"] if "extra ==" not in r]
    test_extra = [r.split(";")[0].strip() for r in report["requires"] if "extra ==" in r]
    assert runtime == requirement_lines(ROOT / "requirements.txt")
    assert test_extra == requirement_lines(ROOT / "requirements-dev.txt")


def test_the_api_pages_notebook_example_runs_on_the_installed_package_outside_the_repository(
    tmp_path: Path, tiny_mnist: Path
) -> None:
    python, _ = install(tmp_path, editable=False)
    elsewhere = tmp_path / "elsewhere"
    assert train(elsewhere / "output", tiny_mnist, "--model", "3D", "--epochs", "1") == 0
    example = (ROOT / "docs" / "api.md").read_text().split("```python\n")[1].split("```")[0]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MNIST_DATA": str(tiny_mnist)}
    result = subprocess.run([python, "-c", example], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert result.returncode == 0, result.stderr
    assert "decoded (1, 784)" in result.stdout.splitlines()
    said = dict(
        line.rsplit(" ", 1) for line in result.stdout.splitlines() if line.split()[0] in ("test", "PCA", "5-NN")
    )
    assert 0 < float(said["test MSE"]) < 1 and 0 < float(said["PCA test MSE"]) < 1
    assert 0 <= float(said["5-NN accuracy"]) <= 1
