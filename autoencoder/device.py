"""Devices, precision, and evaluation in large batches without autograd."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterator
from typing import Callable

import torch

from .errors import UserError
from .model import AutoEncoder

EVAL_BATCH = 5000  # images per forward pass when nothing is trained: few passes, bounded memory


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
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}.get(
        device.type, False
    )
    if device.type == "cuda" and available and (device.index or 0) >= torch.cuda.device_count():
        available = False
    if not available:
        raise UserError(f"device {name!r} is not available on this machine; leave --device out to pick the best one")
    return device


CPU_BF16_PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """AVX-512 bf16 or AMX. torch only offers private probes for them: if a torch release drops
    them, the answer is no (fp32), said once, not a crash."""
    missing = []
    for probe in CPU_BF16_PROBES:
        try:
            if getattr(torch.cpu, probe)():
                return True
        except Exception:  # missing or failing probe
            missing.append(probe)
    if missing:
        print(
            f"note: this torch ({torch.__version__}) lacks torch.cpu.{' and torch.cpu.'.join(missing)}, "
            "which tell whether the CPU is fast at bf16; --precision auto uses fp32 (pass --precision bf16 "
            "to use bf16)",
            file=sys.stderr,
        )
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where the hardware runs it fast (CUDA, CPUs with AVX-512 bf16/AMX)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    return "fp32"


def tf32_switches() -> list[tuple[object, str, object, object]]:
    """(object, attribute, on, off) for CUDA's matmul and convolution TF32 settings: torch's
    `fp32_precision` where it has it (2.9 and later; the older `allow_tf32` is going away and may
    not be mixed with it), else `allow_tf32`."""
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        return [
            (torch.backends.cuda.matmul, "fp32_precision", "tf32", "ieee"),
            # torch.backends.cudnn swaps itself for a module object at import: its stub lacks `conv`
            (torch.backends.cudnn.conv, "fp32_precision", "tf32", "ieee"),  # type: ignore[attr-defined]
        ]
    return [(torch.backends.cuda.matmul, "allow_tf32", True, False), (torch.backends.cudnn, "allow_tf32", True, False)]


@contextlib.contextmanager
def cuda_tf32(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """TF32 matmuls and convolutions on CUDA (the trainer's setting); restored on exit."""
    switches = tf32_switches()
    saved = [getattr(owner, name) for owner, name, _, _ in switches]
    if device.type == "cuda":
        for owner, name, on, off in switches:
            setattr(owner, name, on if enabled else off)
    try:
        yield
    finally:
        for (owner, name, _, _), value in zip(switches, saved):
            setattr(owner, name, value)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.inference_mode()
def map_batches(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = EVAL_BATCH
) -> torch.Tensor:
    """Apply `fn` to `x` in large batches without autograd; concatenates the results."""
    return torch.cat([fn(chunk) for chunk in x.split(batch_size)])


def encode_all(model: AutoEncoder, x: torch.Tensor) -> torch.Tensor:
    """Codes of images (N, 784) as (N, units) float32; image codes are flattened."""
    return map_batches(model.encode, x).flatten(1).float()


def decode_all(model: AutoEncoder, codes: torch.Tensor) -> torch.Tensor:
    """Images (N, 784) decoded from codes (N, units)."""
    return map_batches(model.decode, codes).flatten(1)


@torch.inference_mode()
def reconstruction_mse(
    model: AutoEncoder, x: torch.Tensor, precision: str = "fp32", codes: torch.Tensor | None = None
) -> float:
    """Mean squared error over all pixels of `x` (N, 784), the original's loss.

    Given the codes of `x` (from `encode_all`), only the decoder runs.
    """
    inputs, rebuild = (x, model) if codes is None else (codes, model.decode)
    with autocast(x.device, precision):
        errors = [
            ((rebuild(i).flatten(1) - b) ** 2).sum(1) for i, b in zip(inputs.split(EVAL_BATCH), x.split(EVAL_BATCH))
        ]
    return torch.cat(errors).sum().item() / x.numel()
