"""How the explorer page stores its test images (autoencoder/explorer_images.py): every byte comes
back, whatever the images and their count, in fewer bits than zlib takes. explorer.js's decoding of
the same streams is tested in test_explorer.py."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from autoencoder.explorer_images import IMAGES_PER_STREAM, SCALE_BITS, decode_images, encode_images
from conftest import tiny_splits


def strokes(n: int, seed: int) -> np.ndarray:
    """Byte images with a few thick, bright strokes on black, edges of every level between."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28))
    rows, cols = np.mgrid[:28, :28]
    for image in images:
        for _ in range(rng.integers(1, 4)):
            a, b = rng.uniform(4, 24, 2), rng.uniform(4, 24, 2)
            t = np.clip(((rows - a[0]) * (b[0] - a[0]) + (cols - a[1]) * (b[1] - a[1])) / ((b - a) ** 2).sum(), 0, 1)
            distance = np.hypot(rows - a[0] - t * (b[0] - a[0]), cols - a[1] - t * (b[1] - a[1]))
            image[:] = np.maximum(image, np.clip(2.2 - distance, 0, 1))
    return np.rint(images * 255).astype(np.uint8).reshape(n, 784)


@pytest.mark.parametrize(
    "images",
    [
        strokes(1, 0),
        strokes(IMAGES_PER_STREAM, 1),
        strokes(3 * IMAGES_PER_STREAM + 5, 2),  # the last stream part empty
        np.zeros((3, 784), np.uint8),
        np.full((2, 784), 255, np.uint8),
        np.random.default_rng(3).integers(0, 256, (20, 784), dtype=np.uint8),  # every byte in most contexts
        np.rint(tiny_splits()[2][0] * 256).astype(np.uint8),
    ],
    ids=["one image", "one stream", "streams and a part", "black", "white", "noise", "test images of the tests"],
)
def test_every_byte_comes_back(images):
    coded = encode_images(images)
    assert np.array_equal(decode_images(coded, len(images)), images)
    assert len(coded.states) == len(coded.counts) == -(-len(images) // IMAGES_PER_STREAM)


def test_each_contexts_frequencies_add_up_and_every_byte_seen_has_one():
    images = strokes(50, 4)
    coded = encode_images(images)
    for frequencies in (coded.level_frequencies, coded.byte_frequencies):
        sums = frequencies.sum(1)
        assert set(sums.tolist()) <= {0, 1 << SCALE_BITS} and (frequencies >= 0).all()
    seen = np.unique(images)
    assert (coded.byte_frequencies[:, seen].sum(0) > 0).all()


def test_strokes_take_fewer_bytes_than_zlib_gives_them():
    images = strokes(1000, 5)
    coded = encode_images(images)
    assert coded.stored_bytes() < 0.8 * len(zlib.compress(images.tobytes(), 9))
