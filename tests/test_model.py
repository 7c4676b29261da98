"""The model: architecture, parameter counts, init, and loading the original's Lasagne weights."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import torch

from autoencoder.errors import UserError
from autoencoder.model import (
    AutoEncoder,
    count_parameters,
    load_lasagne_weights,
    load_model,
    parse_code,
    parse_models,
    save_model,
)

ORIGINAL_COUNTS = {"3D": 23_314_050, "4x4": 23_317_300}
DENSE_RELU_WIDTHS = 1000 + 500 + 250 + 125 + 125 + 250 + 500 + 1000 + 2000


@pytest.mark.parametrize("code", ["3D", "4x4"])
def test_original_recipe_has_the_2016_parameter_count_and_no_biases(code):
    model = AutoEncoder(code, "original")
    assert count_parameters(model) == ORIGINAL_COUNTS[code]
    assert all(layer.bias is None for layer in model.lasagne_layers())


@pytest.mark.parametrize("code", ["3D", "4x4"])
def test_modern_recipe_adds_only_batch_norm_and_the_conv_code_and_output_biases(code):
    units = parse_code(code).units
    batch_norm = 2 * DENSE_RELU_WIDTHS  # a scale and a shift per unit
    biases = 32 + units + 784
    assert count_parameters(AutoEncoder(code, "modern")) == ORIGINAL_COUNTS[code] + batch_norm + biases


def test_an_evaluated_digit_does_not_depend_on_the_rest_of_its_batch():
    """Plots and test MSE run in eval mode, where batch norm uses its running statistics."""
    torch.manual_seed(0)
    model = AutoEncoder("3D")
    model.train()
    for _ in range(3):  # move the running statistics away from their initial values
        model(torch.rand(64, 784))
    model.eval()
    x = torch.rand(8, 784)
    with torch.inference_mode():
        alone, in_batch = model(x[:1]), model(x)[:1]
    torch.testing.assert_close(alone, in_batch)


@pytest.mark.parametrize(
    "code, code_shape", [("3D", (5, 3)), ("4x4", (5, 1, 4, 4)), ("10D", (5, 10)), ("8x8", (5, 1, 8, 8))]
)
def test_encode_decode_and_forward_shapes(code, code_shape):
    model = AutoEncoder(code).eval()  # no dropout: the same input gives the same output
    x = torch.rand(5, 784)
    codes = model.encode(x)
    assert codes.shape == code_shape
    assert model.decode(codes).shape == (5, 1, 28, 28)
    assert torch.equal(model(x), model(x.reshape(5, 1, 28, 28)))
    assert model(x).min() >= 0 and model(x).max() <= 1


def test_image_codes_are_sigmoid_units_and_vector_codes_are_linear():
    torch.manual_seed(0)
    x = torch.rand(50, 784)
    image_code = AutoEncoder("4x4").encode(x)
    assert image_code.min() > 0 and image_code.max() < 1
    model = AutoEncoder("3D")
    with torch.no_grad():
        model.code.weight.mul_(1000)  # push a linear code far outside 0..1
    assert model.encode(x).abs().max() > 1


def test_original_init_is_glorot_uniform_with_gain_one():
    torch.manual_seed(0)
    for layer in AutoEncoder("3D", "original").lasagne_layers():
        w = layer.weight
        fan_in = w[0].numel()
        fan_out = w.shape[0] * w[0, 0].numel() if w.dim() == 4 else w.shape[0]
        limit = (6 / (fan_in + fan_out)) ** 0.5
        assert w.abs().max() <= limit
        if w.numel() > 10_000:  # enough samples for the statistics to be tight
            assert w.std().item() == pytest.approx(limit / 3**0.5, rel=0.02)
            assert abs(w.mean().item()) < 0.01 * limit


@pytest.mark.parametrize(
    "text, name, units, side",
    [("3D", "3D", 3, None), ("10d", "10D", 10, None), ("4x4", "4x4", 16, 4), ("8x8", "8x8", 64, 8)],
)
def test_code_names_parse_into_units(text, name, units, side):
    spec = parse_code(text)
    assert (spec.name, spec.units, spec.side) == (name, units, side)


@pytest.mark.parametrize("text", ["0D", "4x5", "3", "abc", "-2D", ""])
def test_bad_code_names_are_refused(text):
    with pytest.raises(UserError, match="unknown model"):
        parse_code(text)


def test_both_means_the_two_originals_and_a_model_named_twice_is_refused():
    assert [s.name for s in parse_models("both")] == ["3D", "4x4"]
    with pytest.raises(UserError, match="--model names 2D more than once"):
        parse_models("2D,8x8,2d")


def test_saved_weights_rebuild_the_same_model(tmp_path):
    model = AutoEncoder("4x4", "original")
    save_model(tmp_path / "w.pt", model, "mnist")
    raw = torch.load(tmp_path / "w.pt", weights_only=True)
    assert (raw["code"], raw["recipe"]) == ("4x4", "original")
    loaded = load_model(tmp_path / "w.pt")
    x = torch.rand(3, 784)
    assert torch.equal(loaded(x), model.eval()(x))


def test_loading_weights_of_another_model_is_refused(tmp_path):
    save_model(tmp_path / "w.pt", AutoEncoder("4x4"), "mnist")
    with pytest.raises(UserError, match="holds the 4x4 model, not 3D"):
        load_model(tmp_path / "w.pt", expect_code="3D")


# -- The original's Lasagne weights -------------------------------------------------


def lasagne_forward(weights: list[np.ndarray], x: np.ndarray, image_code: bool) -> np.ndarray:
    """Lasagne semantics written out in NumPy: Conv2DLayer flips its filters (a true
    convolution, 'valid' mode), DenseLayer computes x @ W with W of shape (in, out)."""
    relu = lambda a: np.maximum(a, 0)
    sigmoid = lambda a: 1 / (1 + np.exp(-a))
    conv_w, dense = weights[0], weights[1:]
    images = x.reshape(-1, 28, 28)
    flipped = conv_w[:, 0, ::-1, ::-1]
    feature_maps = np.zeros((len(x), 32, 24, 24))
    for a in range(5):
        for b in range(5):
            feature_maps += images[:, None, a : a + 24, b : b + 24] * flipped[None, :, a, b, None, None]
    h = relu(feature_maps).reshape(len(x), -1)
    for w in dense[:4]:
        h = relu(h @ w)
    h = h @ dense[4]
    h = sigmoid(h) if image_code else h
    for w in dense[5:10]:
        h = relu(h @ w)
    return sigmoid(h @ dense[10])


@pytest.mark.slow
@pytest.mark.parametrize("code", ["3D", "4x4"])
def test_lasagne_weights_reproduce_a_numpy_forward_pass(tmp_path, code):
    rng = np.random.default_rng(1)
    model = AutoEncoder(code, "original")
    shapes = [(32, 1, 5, 5)] + [tuple(layer.weight.shape[::-1]) for layer in model.lasagne_layers()[1:]]
    weights = [
        rng.uniform(-1, 1, s) * (6 / (np.prod(s[1:]) + s[0])) ** 0.5
        if len(s) == 4
        else rng.uniform(-1, 1, s) * (6 / sum(s)) ** 0.5
        for s in shapes
    ]
    weights = [w.astype(np.float32) for w in weights]
    path = tmp_path / "auto_encoder_weights.pkl.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:  # random weights barely compress: save the time
        pickle.dump(weights, f, protocol=2)
    x = rng.uniform(0, 1, (4, 784)).astype(np.float32)
    expected = lasagne_forward([w.astype(np.float64) for w in weights], x.astype(np.float64), image_code=code == "4x4")
    load_lasagne_weights(model, path)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).reshape(4, 784).double().numpy()
    assert np.abs(got - expected).max() < 1e-5
    assert np.abs(expected - expected.mean()).max() > 1e-3  # the check is not vacuous


def test_lasagne_weights_of_the_wrong_shape_are_refused(tmp_path):
    path = tmp_path / "w.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump([np.zeros((32, 1, 3, 3), np.float32)] + [np.zeros((2, 2))] * 11, f, protocol=2)
    with pytest.raises(UserError, match="array 0 has shape"):
        load_lasagne_weights(AutoEncoder("3D", "original"), path)


def test_the_weights_names_do_not_depend_on_the_dropout_rate(tmp_path):
    path = tmp_path / "w.pt"
    save_model(path, AutoEncoder("30D", "modern", dropout=0.3), "mnist")
    assert load_model(path).state_dict().keys() == AutoEncoder("30D", "modern").state_dict().keys()


def test_the_original_model_refuses_dropout():
    with pytest.raises(UserError, match="--dropout applies to the modern recipe"):
        AutoEncoder("3D", "original", dropout=0.1)
