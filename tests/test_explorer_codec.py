"""How the explorer page stores its arrays and decoder (autoencoder/explorer_codec.py): text of
47 bits in three characters, Rice-coded integers, and weights rounded with error feedback, within a fraction
of a grey level of the exact decoder. The page's own reading of them is tested in test_explorer.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autoencoder.explorer_codec import (
    ERROR_TARGET,
    box_codes,
    calibration_codes,
    compact_decoder,
    decode_text,
    encode_text,
    gptq_round,
    grid_codes,
    page_codes,
    rice_decode,
    rice_encode,
    run_decoder,
)


def test_the_text_holds_any_bytes_in_characters_that_need_no_escape_in_a_page():
    rng = np.random.default_rng(0)
    for data in [
        b"",
        bytes(range(256)),
        b"\xff" * 47,
        *(rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in range(1, 40)),
    ]:
        text = encode_text(data)
        count, _, body = text.partition(",")
        assert int(count) == len(data) and decode_text(text) == data
        assert all(0x100 <= ord(c) < 0xD800 for c in body) and len(body) == 3 * -(-8 * len(data) // 47)


def test_codes_come_back_within_half_a_16_bit_step_of_their_units_range():
    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.normal(0, 3, (500, 3)), np.full((500, 1), 0.25)], axis=1).astype(np.float32)
    low, step, levels = grid_codes(codes)
    back = page_codes(low, step, levels)
    assert back.dtype == np.float32 and levels.dtype == np.uint16
    assert (np.abs(back - codes) <= 0.5 * step * (1 + 1e-3)).all() and np.array_equal(back[:, 3], codes[:, 3])
    assert np.allclose(step[:3], (codes[:, :3].max(0) - codes[:, :3].min(0)) / 65535)


def test_the_rice_code_gives_back_every_integer_and_takes_near_their_entropy():
    rng = np.random.default_rng(0)
    rows = [np.rint(rng.laplace(size=(40, 500)) * scale) for scale in (0.3, 5, 300)]
    for q in [*rows, np.zeros((3, 7)), np.array([[2**40, -(2**40), 0]])]:
        k, unary, low = rice_encode(q.astype(np.int64))
        assert np.array_equal(rice_decode(k, unary, low, q.shape[1]), q)
    for q, scale in zip(rows[1:], (5, 300)):  # a Laplace of scale b takes log2(2 e b) bits a value
        k, unary, low = rice_encode(q.astype(np.int64))
        assert 8 * (len(unary) + len(low) + len(k)) / q.size < np.log2(2 * np.e * scale) + 0.1


def _random_layers(widths: list[int], generator: torch.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (
            (torch.randn(n_out, n_in, generator=generator, dtype=torch.float64) / n_in**0.5).numpy(),
            (torch.randn(n_out, generator=generator, dtype=torch.float64) / 10).numpy(),
        )
        for n_in, n_out in zip(widths[:-1], widths[1:])
    ]


def _tensors(layers: list) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [
        (torch.as_tensor(weight, dtype=torch.float64), torch.as_tensor(bias, dtype=torch.float64))
        for weight, bias in layers
    ]


def test_error_feedback_rounds_closer_on_the_layers_inputs_than_plain_rounding():
    generator = torch.Generator().manual_seed(0)
    codes = torch.randn(2000, 3, generator=generator, dtype=torch.float64)
    [(weight, _), (next_weight, _)] = _tensors(_random_layers([3, 200, 50], generator))
    inputs = torch.relu(codes @ weight.T)  # like a decoder's: 200 units driven by 3
    step = torch.full((50,), 0.5, dtype=torch.float64)
    plain, rounded = torch.round(next_weight / step[:, None]), gptq_round(next_weight, inputs, step)

    def error(q: torch.Tensor) -> float:
        return ((next_weight - q * step[:, None]) @ inputs.T).pow(2).mean().item()

    assert error(rounded) < error(plain) / 4


def test_the_compact_decoder_is_within_its_target_on_the_codes_it_checks_and_near_it_on_others():
    generator = torch.Generator().manual_seed(0)
    layers = _random_layers([3, 40, 80, 784], generator)
    codes = torch.randn(500, 3, generator=generator)
    stored = compact_decoder(layers, codes)
    assert all(q.dtype == np.int64 and step.dtype == bias.dtype == np.float32 for q, step, bias in stored)
    rounded = _tensors([(q * step.astype(np.float64)[:, None], bias) for q, step, bias in stored])
    others = box_codes(codes, 1000, seed=2)
    for checked, bound in ((calibration_codes(codes), ERROR_TARGET), (others, 2 * ERROR_TARGET)):
        assert (run_decoder(rounded, checked) - run_decoder(_tensors(layers), checked)).abs().max() <= bound


def test_from_the_codes_the_page_holds_the_compact_decoder_draws_the_exact_images_of_the_true_ones():
    generator = torch.Generator().manual_seed(0)
    layers = _random_layers([3, 40, 80, 784], generator)
    codes = torch.randn(500, 3, generator=generator, dtype=torch.float64)
    kept = codes + 0.0053  # far off for codes: 0.70/255 in the exact decoder's images alone
    rounded = _tensors([(q * s.astype(np.float64)[:, None], b) for q, s, b in compact_decoder(layers, codes, kept)])
    assert (run_decoder(rounded, kept) - run_decoder(_tensors(layers), codes)).abs().max() <= ERROR_TARGET


def test_a_decoder_with_a_weight_that_is_not_finite_is_refused_at_once():
    layers = _random_layers([3, 40, 784], torch.Generator().manual_seed(0))
    layers[1][0][5, 7] = np.nan
    with pytest.raises(ValueError, match="not all finite"):
        compact_decoder(layers, torch.zeros(10, 3))
