"""How the explorer page holds its test images in few bytes (see docs/explorer.md).

Each pixel byte is coded in two steps with static frequencies counted over the images: its level
(dark, faint, mid, strong, full: LEVEL_EDGES) given the levels of its four neighbours already
coded (left, up, up-left, up-right), then, unless dark, its byte given its level and the left and
upper neighbours' levels. The coder is rANS (Duda 2013) with 32-bit states and 16-bit words, one
stream every IMAGES_PER_STREAM images, so that NumPy codes all streams at once. explorer.js
decodes the same way; `decode_images` is the reference for the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL_EDGES = (1, 64, 192, 250)  # a byte's level: 0 | 1-63 | 64-191 | 192-249 | 250-255
LEVELS = len(LEVEL_EDGES) + 1
LEVEL_CONTEXTS = LEVELS**4  # the four neighbours' levels
BYTE_CONTEXTS = LEVELS**3  # the pixel's level, the left and upper neighbours' levels
SCALE_BITS = 14  # the frequencies of each context add up to 2**14
STATE_LOW = 1 << 16  # a state stays in [2**16, 2**32); 16 bits go out or come in at a time
IMAGES_PER_STREAM = 16
SIDE = 28
# left, up, up-left and up-right, as (row, column) in an image padded by a row above and a column each side
NEIGHBOURS = ((1, 0), (0, 1), (0, 0), (0, 2))


@dataclass
class CodedImages:
    """What the page stores: the two frequency tables, each stream's final state and word count,
    and the streams' words one after the other."""

    level_frequencies: np.ndarray  # (LEVEL_CONTEXTS, LEVELS)
    byte_frequencies: np.ndarray  # (BYTE_CONTEXTS, 256)
    states: np.ndarray  # uint32, one a stream
    counts: np.ndarray  # uint32, the words of each stream
    words: np.ndarray  # uint16

    def stored_bytes(self) -> int:
        """The bytes the page holds: the tables as `pack_table` gives them, 4 + 4 a stream, 2 a word."""
        packed = map(pack_table, (self.level_frequencies, self.byte_frequencies))
        tables = sum(len(present) + 2 * len(values) for present, values in packed)
        return tables + 8 * len(self.states) + 2 * len(self.words)


def pack_table(frequencies: np.ndarray) -> tuple[bytes, np.ndarray]:
    """A frequency table as a bit for each entry saying whether it is not 0, and those entries (uint16)."""
    present = frequencies > 0
    return np.packbits(present).tobytes(), frequencies[present].astype("<u2")


def unpack_table(present: bytes, values: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The frequencies (rows, cols) that `pack_table` packed."""
    frequencies = np.zeros(rows * cols, np.int64)
    frequencies[np.unpackbits(np.frombuffer(present, np.uint8))[: rows * cols] == 1] = values
    return frequencies.reshape(rows, cols)


def _levels(pixels: np.ndarray) -> np.ndarray:
    return np.asarray(np.digitize(pixels, LEVEL_EDGES), np.int64)


def _neighbours(levels: np.ndarray) -> tuple[np.ndarray, ...]:
    """The NEIGHBOURS' levels of each pixel of (N, 28, 28) images, 0 outside the image."""
    padded = np.pad(levels, ((0, 0), (1, 0), (1, 1)))
    return tuple(padded[:, row : row + SIDE, col : col + SIDE] for row, col in NEIGHBOURS)


def _level_context(left: np.ndarray, up: np.ndarray, up_left: np.ndarray, up_right: np.ndarray) -> np.ndarray:
    return np.asarray(((left * LEVELS + up) * LEVELS + up_left) * LEVELS + up_right)


def _byte_context(level: np.ndarray, left: np.ndarray, up: np.ndarray) -> np.ndarray:
    return np.asarray((level * LEVELS + left) * LEVELS + up)


def _frequencies(contexts: np.ndarray, symbols: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Counts of each symbol in each context, scaled to add up to 2**SCALE_BITS in every context
    that occurs; a symbol that occurs keeps at least 1, the most frequent takes up the rounding."""
    counts = np.bincount(contexts.ravel() * cols + symbols.ravel(), minlength=rows * cols).reshape(rows, cols)
    total = counts.sum(1, keepdims=True)
    scaled = np.where(counts > 0, np.maximum(counts * (1 << SCALE_BITS) // np.maximum(total, 1), 1), 0)
    seen = total[:, 0] > 0
    top = counts.argmax(1)
    scaled[seen, top[seen]] += (1 << SCALE_BITS) - scaled[seen].sum(1)
    return scaled


def _starts(frequencies: np.ndarray) -> np.ndarray:
    return np.asarray(np.cumsum(frequencies, 1) - frequencies)


def _push(x: np.ndarray, frequency: np.ndarray, start: np.ndarray, active: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Encode one symbol in each active stream; where the state is full, its low word goes to `out` first."""
    frequency = np.where(active, frequency, 1)
    full = active & (x >= frequency << (32 - SCALE_BITS))
    out[full] = x[full] & 0xFFFF
    x = np.where(full, x >> 16, x)
    return np.where(active, (x // frequency << SCALE_BITS) + x % frequency + start, x)


def encode_images(pixels: np.ndarray) -> CodedImages:
    """Byte images (N, 784) as `CodedImages`."""
    streams = -(-len(pixels) // IMAGES_PER_STREAM)
    images = np.zeros((streams * IMAGES_PER_STREAM, SIDE, SIDE), np.int64)
    images[: len(pixels)] = pixels.reshape(-1, SIDE, SIDE)
    levels = _levels(images)
    neighbours = _neighbours(levels)
    level_context, byte_context = _level_context(*neighbours), _byte_context(levels, *neighbours[:2])
    level_freq = _frequencies(level_context, levels, LEVEL_CONTEXTS, LEVELS)
    byte_freq = _frequencies(byte_context, images, BYTE_CONTEXTS, 256)
    level_start, byte_start = _starts(level_freq), _starts(byte_freq)
    by_stream = [a.reshape(streams, -1) for a in (levels, level_context, images, byte_context)]
    steps = by_stream[0].shape[1]
    words, x = np.full((2 * steps, streams), -1, np.int64), np.full(streams, STATE_LOW, np.int64)
    everywhere = np.ones(streams, bool)
    for t in range(steps - 1, -1, -1):  # rANS codes backwards; the page decodes forwards
        level, lc, byte, bc = (a[:, t] for a in by_stream)
        x = _push(x, byte_freq[bc, byte], byte_start[bc, byte], level > 0, words[2 * t + 1])
        x = _push(x, level_freq[lc, level], level_start[lc, level], everywhere, words[2 * t])
    written = words.T >= 0
    return CodedImages(
        level_freq, byte_freq, x.astype(np.uint32), written.sum(1).astype(np.uint32), words.T[written].astype(np.uint16)
    )


Model = tuple[np.ndarray, np.ndarray, np.ndarray]  # frequencies, their starts, the symbol of each slot


def _model(frequencies: np.ndarray) -> Model:
    slots = np.zeros((len(frequencies), 1 << SCALE_BITS), np.int64)
    for row in np.flatnonzero(frequencies.sum(1)):
        slots[row] = np.repeat(np.arange(frequencies.shape[1]), frequencies[row])
    return frequencies.astype(np.int64), _starts(frequencies).astype(np.int64), slots


def _pop(
    x: np.ndarray, model: Model, context: np.ndarray, words: np.ndarray, at: np.ndarray, active: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode one symbol in each active stream: the symbols (0 elsewhere), the states, the next words' places."""
    frequencies, starts, slots = model
    slot = x & ((1 << SCALE_BITS) - 1)
    symbol = slots[context, slot]
    x = np.where(active, frequencies[context, symbol] * (x >> SCALE_BITS) + slot - starts[context, symbol], x)
    empty = active & (x < STATE_LOW)
    x = np.where(empty, x << 16 | words[np.where(empty, at, 0)], x)
    return np.where(active, symbol, 0), x, at + empty


def decode_images(coded: CodedImages, count: int) -> np.ndarray:
    """The byte images (count, 784) that `encode_images` coded."""
    level_model, byte_model = _model(coded.level_frequencies), _model(coded.byte_frequencies)
    streams = len(coded.states)
    x, words = coded.states.astype(np.int64), np.append(coded.words.astype(np.int64), 0)
    at = np.cumsum(coded.counts.astype(np.int64)) - coded.counts
    levels = np.zeros((streams, IMAGES_PER_STREAM, SIDE + 1, SIDE + 2), np.int64)  # padded as NEIGHBOURS say
    images = np.zeros((streams, IMAGES_PER_STREAM, SIDE, SIDE), np.int64)
    everywhere = np.ones(streams, bool)
    for t in range(IMAGES_PER_STREAM * SIDE * SIDE):
        image, row, col = t // (SIDE * SIDE), t // SIDE % SIDE, t % SIDE
        neighbours = [levels[:, image, row + dr, col + dc] for dr, dc in NEIGHBOURS]
        level, x, at = _pop(x, level_model, _level_context(*neighbours), words, at, everywhere)
        byte_context = _byte_context(level, *neighbours[:2])
        images[:, image, row, col], x, at = _pop(x, byte_model, byte_context, words, at, level > 0)
        levels[:, image, row + 1, col + 1] = level
    return images.reshape(-1, SIDE * SIDE)[:count].astype(np.uint8)
