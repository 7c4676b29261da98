"""How the explorer page holds its decoder and arrays in few bytes (see docs/explorer.md).

The decoder's weights are rounded to a grid, one step per row, with error feedback (GPTQ: each
weight's rounding error is spread over the row's weights not yet rounded, through the layer's input
covariance over codes the page can show), and the integers are Rice-coded. Steps grow with the
square root of a layer's weight count, so the large layers take more of the error and save the
most bits; all of them shrink together until the decoder is within ERROR_TARGET of the exact one.
Every array travels as text of 47 bits in three characters, which a UTF-16 page holds in 48 bits.
"""

from __future__ import annotations

import numpy as np
import torch

ERROR_TARGET = 0.75 / 255  # the largest pixel difference allowed on the calibration codes
LARGEST_LAYER_STEP = 1 / 16  # the first step of the largest layer, in root-mean-square weights of a row
STEP_SHRINK = 2**-0.25  # the least each try makes the steps finer, until the decoder is within ERROR_TARGET
SIGMOID_STEP_GAIN = 256  # how much coarser a pixel's row may be where its sigmoid is flat
CODE_LEVELS = 2**16 - 1  # a code unit is stored as 16 bits over its range in the test codes
CALIBRATION_CODES = 6000  # random codes over the box the page's sliders span, beside the test codes
CALIBRATION_TEST_CODES = 10_000
DAMPING = 0.01  # added to the input covariance's diagonal, in its mean, so that it inverts
MAX_TRIES = 64  # at least 2**-16 of the first steps: far finer than float32 weights need
TEXT_BASE = 0x100  # text digits are the characters U+0100..U+D7FF: no markup, escape, control or surrogate
TEXT_RADIX = 0xD800 - TEXT_BASE  # 55,040 digits: three of them hold 47 bits (55,040**3 > 2**47)
TEXT_GROUP_BITS = 47

Layer = tuple[np.ndarray, np.ndarray]  # (weight, bias) in float64, as fold_decoder gives them
Stored = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # integers, float32 step of each row, float32 bias


def encode_text(data: bytes) -> str:
    """Bytes as the byte count, a comma and each 47 bits as three base-55,040 digits, least first
    (explorer.js's `bytes` reads it)."""
    bits = np.unpackbits(np.frombuffer(data, np.uint8))
    rows = np.append(bits, np.zeros(-len(bits) % TEXT_GROUP_BITS, np.uint8)).reshape(-1, TEXT_GROUP_BITS)
    values = rows.astype(np.int64) @ (1 << np.arange(TEXT_GROUP_BITS - 1, -1, -1, dtype=np.int64))
    digits = np.stack([values % TEXT_RADIX, values // TEXT_RADIX % TEXT_RADIX, values // TEXT_RADIX**2], 1)
    return f"{len(data)}," + (digits + TEXT_BASE).astype("<u2").tobytes().decode("utf-16-le")


def decode_text(text: str) -> bytes:
    """The bytes `encode_text` wrote."""
    count, _, body = text.partition(",")
    digits = (np.frombuffer(body.encode("utf-16-le"), "<u2").astype(np.int64) - TEXT_BASE).reshape(-1, 3)
    values = digits @ np.array([1, TEXT_RADIX, TEXT_RADIX**2], np.int64)
    bits = ((values[:, None] >> np.arange(TEXT_GROUP_BITS - 1, -1, -1, dtype=np.int64)) & 1).astype(np.uint8)
    return np.packbits(bits.ravel())[: int(count)].tobytes()


def grid_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes (N, units) as each unit's lowest value and step (float32) and 16-bit integers over
    its range: `page_codes` gives the codes back within half a step."""
    low = codes.min(0).astype(np.float32)
    step = ((codes.max(0) - low) / CODE_LEVELS).astype(np.float32)
    step[step == 0] = 1  # a unit with one value: every integer is 0
    levels = np.rint((codes - low.astype(np.float64)) / step.astype(np.float64))
    return low, step, np.clip(levels, 0, CODE_LEVELS).astype(np.uint16)


def page_codes(low: np.ndarray, step: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The float32 codes the page reads from `grid_codes`' arrays, computed in float64 as explorer.js does."""
    return np.asarray(low.astype(np.float64) + levels * step.astype(np.float64), np.float32)


def rice_encode(q: np.ndarray) -> tuple[np.ndarray, bytes, bytes]:
    """Integers (rows, cols) as each row's Rice parameter k, the unary parts (ones, then a zero) and
    the k low bits of each value; zigzag maps signs (0, -1, 1, -2... to 0, 1, 2, 3...)."""
    u = np.where(q >= 0, 2 * q, -2 * q - 1).astype(np.int64)
    cost = np.stack([(u >> k).sum(1) + k * u.shape[1] for k in range(31)], 1)
    k = cost.argmin(1).astype(np.uint8)
    width = np.repeat(k, u.shape[1]).astype(np.int64)
    u = u.ravel()
    high = u >> width
    unary = np.ones(int(high.sum()) + len(u), np.uint8)
    unary[np.cumsum(high + 1) - 1] = 0
    low = np.zeros(int(width.sum()), np.uint8)
    start = np.cumsum(width) - width
    for b in range(int(k.max(initial=0))):
        on = width > b
        low[start[on] + b] = (u[on] >> (width[on] - 1 - b)) & 1
    return k, np.packbits(unary).tobytes(), np.packbits(low).tobytes()


def rice_decode(k: np.ndarray, unary: bytes, low: bytes, cols: int) -> np.ndarray:
    """The integers `rice_encode` coded, shape (len(k), cols)."""
    width = np.repeat(k.astype(np.int64), cols)
    ends = np.flatnonzero(np.unpackbits(np.frombuffer(unary, np.uint8)) == 0)[: len(width)]
    high = np.diff(ends, prepend=-1) - 1
    bits, start = np.unpackbits(np.frombuffer(low, np.uint8)), np.cumsum(width) - width
    value = np.zeros(len(width), np.int64)
    for b in range(int(width.max(initial=0))):
        on = width > b
        value[on] = value[on] * 2 + bits[start[on] + b]
    u = high << width | value
    return np.where(u & 1, -(u + 1) // 2, u // 2).reshape(len(k), cols)


def gptq_round(weight: torch.Tensor, inputs: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """Integers q with weight ~ q * step[:, None], rounded column by column, largest inputs first,
    each column's error spread over the columns after it (Frantar et al. 2022, GPTQ)."""
    h = inputs.T @ inputs / len(inputs)
    diagonal = h.diagonal()
    diagonal[diagonal == 0] = 1  # an input that is always zero: its weights are simply rounded
    diagonal += DAMPING * diagonal.mean()
    order = torch.argsort(h.diagonal(), descending=True, stable=True)
    h = h[order][:, order]
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    w, q, scale = weight[:, order].clone(), torch.empty_like(weight), step[:, None]
    for j in range(w.shape[1]):
        q[:, j : j + 1] = torch.round(w[:, j : j + 1] / scale)
        error = (w[:, j : j + 1] - q[:, j : j + 1] * scale) / u[j, j]
        w[:, j + 1 :] -= error * u[j : j + 1, j + 1 :]
    out = torch.empty_like(q)
    out[:, order] = q
    return out.long()


def run_decoder(layers: list[tuple[torch.Tensor, torch.Tensor]], codes: torch.Tensor) -> torch.Tensor:
    """The images of `codes` in float64, as the page decodes: ReLU between the layers, a sigmoid last."""
    h = codes.double()
    for k, (weight, bias) in enumerate(layers):
        h = h @ weight.T + bias
        h = torch.sigmoid(h) if k == len(layers) - 1 else h.clamp_min(0)
    return h


def box_codes(codes: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """`n` codes drawn evenly over each unit's range in `codes` (the box the page's sliders span),
    in their dtype."""
    low, high = codes.min(0).values, codes.max(0).values
    draws = torch.rand(n, codes.shape[1], generator=torch.Generator().manual_seed(seed), dtype=codes.dtype)
    return low + draws * (high - low)


def calibration_codes(codes: torch.Tensor) -> torch.Tensor:
    """Random codes over the box the sliders span, and test codes, in float64."""
    codes = codes.double()
    return torch.cat([box_codes(codes, CALIBRATION_CODES, seed=1), codes[:CALIBRATION_TEST_CODES]])


def _as_weights(stored: Stored) -> tuple[torch.Tensor, torch.Tensor]:
    q, step, bias = stored
    return q * step.double()[:, None], bias.double()


def _round_layers(
    layers: list[Layer], inputs: torch.Tensor, flatness: torch.Tensor, largest_step: float
) -> tuple[list[Stored], torch.Tensor]:
    """Every layer rounded by `gptq_round`, on the inputs the layers rounded before it give; and
    the images the rounded decoder draws from `inputs`."""
    largest = max(weight.size for weight, _ in layers)
    stored: list[Stored] = []
    h = inputs
    for k, (weight, bias) in enumerate((torch.from_numpy(w), torch.from_numpy(b).float()) for w, b in layers):
        step = largest_step * (weight.numel() / largest) ** 0.5 * weight.pow(2).mean(1).sqrt()
        step = step * flatness if k == len(layers) - 1 else step
        step = torch.where(step > 0, step, 1).float()
        stored.append((gptq_round(weight, h, step.double()), step, bias))
        rounded_weight, rounded_bias = _as_weights(stored[-1])
        h = h @ rounded_weight.T + rounded_bias
        h = torch.sigmoid(h) if k == len(layers) - 1 else h.clamp_min(0)  # as run_decoder
    return stored, h


def compact_decoder(
    layers: list[Layer], codes: torch.Tensor, stored_codes: torch.Tensor | None = None
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Each layer as (integers, float32 step of each row, float32 bias), the weight being integer *
    step, within ERROR_TARGET of the exact decoder on `calibration_codes`. Where the page holds the
    test codes rounded (`stored_codes`), their images are held to the exact images of `codes`."""
    if not all(np.isfinite(weight).all() and np.isfinite(bias).all() for weight, bias in layers):
        raise ValueError("the decoder's weights are not all finite")
    exact_layers = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in layers]
    inputs = calibration_codes(codes if stored_codes is None else stored_codes)
    exact = run_decoder(exact_layers, torch.cat([inputs[:CALIBRATION_CODES], codes[:CALIBRATION_TEST_CODES].double()]))
    flatness = torch.clamp(0.25 / (exact * (1 - exact)).max(0).values, max=SIGMOID_STEP_GAIN)
    largest_step = LARGEST_LAYER_STEP
    for _ in range(MAX_TRIES):
        stored, images = _round_layers(layers, inputs, flatness, largest_step)
        error = (images - exact).abs().max().item()
        if error <= ERROR_TARGET:
            return [(q.numpy(), step.numpy(), bias.numpy()) for q, step, bias in stored]
        largest_step *= min(STEP_SHRINK, ERROR_TARGET / error)  # the error grows about as the step
    raise ValueError(f"the decoder could not be stored within {255 * ERROR_TARGET:.2f}/255")
