"""Files: atomic writes, safe pickles, and the names of the files a training run writes."""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import io
import os
import pickle
import socket
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one step.

    A full disk or an exception leaves the previous file untouched, no temporary file
    behind, and an OSError that names `path`. A writer killed outright (kill -9) leaves
    its temporary, named after its host and process; the next write of `path` removes it.
    `durable` also flushes the file to the disk before the rename (a power cut cannot
    lose it); without it the file is still whole after any crash of the process.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphaned_temporaries(path)
    tmp = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.{_writer_tag()}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
        yield tmp
        if durable:
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
        tag = tmp.name[len(prefix) :].rpartition(".")[0].rpartition(".")[0]
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


def write_text_atomic(path: str | os.PathLike, text: str, durable: bool = True, encoding: str = "utf-8") -> None:
    with atomic_path(path, durable) as tmp:
        tmp.write_text(text, encoding=encoding)


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
_GZIP_MAGIC = b"\x1f\x8b"


def torch_load(path: str | os.PathLike, map_location: Any, what_to_do: str) -> Any:
    """`torch.load(weights_only=True)` of a file this suite wrote. Raises UserError, in the user's
    words, for a missing file, one that is not a torch file, a damaged one (ending with
    `what_to_do`), one from a newer torch or one too large for the memory; a bug still raises."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == _GZIP_MAGIC:
        raise UserError(f"{path} is a gzip file (a training-info pickle?), not a weights or checkpoint file")
    if head != _ZIP_MAGIC:
        raise UserError(f"{path} is not a file torch.save wrote" + ("; it is empty" if not head else ""))
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except MemoryError:
        raise UserError(f"{path} is too large to read into this machine's memory") from None
    except pickle.UnpicklingError as e:  # the weights-only unpickler refused an object
        if "Weights only load failed" in str(e):
            raise UserError(
                f"{path} cannot be read: it holds objects this suite never writes, so it is not a "
                "weights file of this suite nor one of its checkpoints"
            ) from None
        raise UserError(f"{path} is damaged ({_first_line(e)}); {what_to_do}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile) as e:
        if "maximum supported version" in str(e):  # caffe2/serialize/inline_container.cc's words
            raise UserError(
                f"{path} was written by a newer PyTorch than this one ({torch.__version__}): upgrade torch to read it"
            ) from None
        cause = "not a whole zip archive" if "PytorchStreamReader" in str(e) else _first_line(e)
        raise UserError(f"{path} is damaged or truncated ({cause}); {what_to_do}") from None


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def torch_save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """torch.save `obj` to `path` atomically. It is serialised in memory first, so that a failed
    write (a full disk) is reported by the operating system, not by torch's zip writer."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def save_info(path: str | os.PathLike, info: dict) -> None:
    """Write a training-info dict as a gzip pickle (the original's format)."""
    with atomic_path(path) as tmp, gzip.open(tmp, "wb") as f:
        pickle.dump(info, f, protocol=4)


_PLAIN_BUILTINS = {
    "dict",
    "list",
    "tuple",
    "set",
    "frozenset",
    "int",
    "float",
    "complex",
    "str",
    "bytes",
    "bytearray",
    "bool",
    "slice",
}
_NUMPY_GLOBALS = {
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("_codecs", "encode"),
}  # how protocol-2 pickles made by Python 3 store bytes


class SafeUnpickler(pickle.Unpickler):
    """Unpickles plain containers, numbers, strings and NumPy arrays, and nothing else.

    A pickle that names any other global (a function to call, a class to build) is
    refused before anything runs.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module in ("builtins", "__builtin__") and name in _PLAIN_BUILTINS) or (module, name) in _NUMPY_GLOBALS:
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
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
        return SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except MemoryError:
        raise UserError(f"{path} is too large to read into this machine's memory") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        zlib.error,
        gzip.BadGzipFile,
        ValueError,
        IndexError,
        KeyError,
        TypeError,
        AttributeError,
        ImportError,
        OverflowError,
        UnicodeDecodeError,
    ) as e:
        # what damaged or foreign bytes raise in the unpickler
        raise UserError(
            f"{path} is not a readable pickle ({_first_line(e)}); it may be truncated or from another tool"
        ) from None


def load_info(path: str | os.PathLike) -> dict:
    """Read a training-info pickle (ours or the original's); losses come back as floats."""
    info = read_safe_pickle(path)
    keys = ("training loss", "validation loss")
    if not isinstance(info, dict) or any(not isinstance(info.get(k), (list, tuple)) for k in keys):
        raise UserError(
            f"{path} is not a training-info pickle (expected a dict with 'training loss' and 'validation loss' lists)"
        )
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
    def of(cls, output_dir: str | os.PathLike, model: str) -> OutputPaths:
        stem = Path(output_dir) / f"{PREFIX}{model}"
        return cls(
            log=Path(f"{stem}.txt"),
            info=Path(f"{stem}{INFO_SUFFIX}"),
            init=Path(f"{stem}_init.pt"),
            weights=Path(f"{stem}_weights.pt"),
            checkpoint=Path(f"{stem}_checkpoint.pt"),
            codes=Path(f"{stem}_codes.pt"),
        )

    @staticmethod
    def model_of(info_path: str | os.PathLike) -> str | None:
        """The model an info pickle belongs to by its name (auto_encoder_M_info.pkl.gz), else None."""
        name = Path(info_path).name
        if name.startswith(PREFIX) and name.endswith(INFO_SUFFIX) and len(name) > len(PREFIX + INFO_SUFFIX):
            return name[len(PREFIX) : -len(INFO_SUFFIX)]
        return None


PREFIX = "auto_encoder_"  # every file a run writes for model M starts auto_encoder_M
INFO_SUFFIX = "_info.pkl.gz"
