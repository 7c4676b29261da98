"""The model: code layers, the deep convolutional autoencoder, and saving and loading its weights."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .errors import UserError
from .files import read_safe_pickle, torch_load, torch_save_atomic

ARCHITECTURES = ("modern", "original")  # named for the recipe that trains them (recipes.py)
DEFAULT_MODELS = ("3D", "4x4")
ENCODER_WIDTHS = (1000, 500, 250, 125)
DECODER_WIDTHS = (125, 250, 500, 1000, 2000)
CONV_FEATURES = 32 * 24 * 24
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
    raise UserError(
        f"unknown model {name!r}: use ND (e.g. 3D, 10D), KxK (e.g. 4x4, 8x8), both, or a comma-separated list"
    )


def parse_models(text: str) -> list[CodeSpec]:
    names = DEFAULT_MODELS if text.strip() == "both" else [n for n in text.split(",") if n.strip()]
    specs = [parse_code(n) for n in names]
    if not specs:
        raise UserError("--model names no model")
    repeated = sorted({s.name for s in specs if [t.name for t in specs].count(s.name) > 1})
    if repeated:
        raise UserError(f"--model names {', '.join(repeated)} more than once: name each model once")
    return specs


def _dense_stack(widths: list[int], modern: bool, dropout: float) -> nn.Sequential:
    """Dense ReLU layers without biases. The modern ones have batch norm (whose shift takes the
    biases' place) and a dropout module after the wide ones (500 units or more), whatever its
    rate, so that the weights' names do not depend on it."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        layers.append(nn.Linear(n_in, n_out, bias=False))
        if modern:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(nn.ReLU())
        if modern and n_out >= DROPOUT_MIN_WIDTH:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class AutoEncoder(nn.Module):
    """The original's deep convolutional autoencoder for any code layer.

    Encoder: conv 32@5x5 (valid), ReLU, dense 1000-500-250-125 ReLU, then the code
    (linear for `ND`, sigmoid for `KxK`). Decoder: dense 125-250-500-1000-2000 ReLU,
    dense 784 sigmoid. The modern model's `dropout` follows its dense layers of 500 units or
    more (the recipe table sets the rate). The `original` architecture has no biases and Glorot-uniform
    weights (Lasagne's defaults). `modern` adds batch norm before each dense ReLU, zero-initialised
    biases on the convolution, the code and the output, and He-uniform weights for the layers that feed a
    ReLU: PyTorch's default init would shrink the signal about sixfold per ReLU layer, so the code would
    carry nothing at first.
    """

    def __init__(self, code: str | CodeSpec = "3D", architecture: str = "modern", dropout: float = 0.0):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise UserError(f"unknown architecture {architecture!r}: use {' or '.join(ARCHITECTURES)}")
        if architecture == "original" and dropout:
            raise UserError("--dropout applies to the modern recipe; the original recipe has no dropout")
        self.spec = parse_code(code) if isinstance(code, str) else code
        self.architecture = architecture
        self.run_id = ""  # the training run whose file the weights were loaded from, if any
        modern = architecture == "modern"
        self.conv = nn.Conv2d(1, 32, kernel_size=5, bias=modern)
        self.encoder = _dense_stack([CONV_FEATURES, *ENCODER_WIDTHS], modern, dropout)
        self.code = nn.Linear(ENCODER_WIDTHS[-1], self.spec.units, bias=modern)
        self.decoder = _dense_stack([self.spec.units, *DECODER_WIDTHS], modern, dropout)
        self.output = nn.Linear(DECODER_WIDTHS[-1], 784, bias=modern)
        for layer in self.lasagne_layers():
            feeds_relu = layer not in (self.code, self.output)
            if modern and feeds_relu:
                nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    def lasagne_layers(self) -> list[nn.Conv2d | nn.Linear]:
        """The weighted layers in the original's order: conv, then each dense layer."""
        return [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 784) or (N, 1, 28, 28) -> codes (N, units), or (N, 1, K, K) for image codes."""
        h = torch.relu(self.conv(x.reshape(-1, 1, 28, 28)))
        code: torch.Tensor = self.code(self.encoder(h.flatten(1)))
        side = self.spec.side
        if side is not None:  # an image code
            return torch.sigmoid(code).reshape(-1, 1, side, side)
        return code

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Codes -> images (N, 1, 28, 28) in 0..1; the last sigmoid runs in fp32."""
        logits = self.output(self.decoder(code.flatten(1)))
        return torch.sigmoid(logits.float()).reshape(-1, 1, 28, 28)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_model(path: str | os.PathLike, model: AutoEncoder, dataset: str, run_id: str = "") -> None:
    """Weights plus what rebuilds the model, the name of the dataset it learned and the id of the
    training run that wrote it; loads with torch.load(weights_only=True). (The file's "recipe" key
    names the architecture.)"""
    torch_save_atomic(
        {
            "code": model.spec.name,
            "recipe": model.architecture,
            "dataset": dataset,
            "run_id": run_id,
            "state_dict": model.state_dict(),
        },
        path,
    )


def load_model(
    path: str | os.PathLike,
    device: torch.device | str = "cpu",
    expect_code: str | None = None,
    expect_dataset: str | None = None,
) -> AutoEncoder:
    """Rebuild a model saved by `save_model`. Raises UserError for a missing or bad file, or one
    that holds another model or another dataset's model than expected."""
    saved = torch_load(path, device, "train the model again")
    try:
        with torch.device("meta"):  # no time spent initialising weights that are replaced
            model = AutoEncoder(saved["code"], saved["recipe"])
        model.load_state_dict(saved["state_dict"], assign=True)
        dataset = saved["dataset"]
    except (KeyError, TypeError, ValueError, RuntimeError) as e:  # wrong keys or shapes
        raise UserError(f"{path} is not a weights file of this suite ({str(e).splitlines()[0]})") from None
    model.run_id = saved.get("run_id", "")
    if expect_code is not None and model.spec.name != expect_code:
        raise UserError(f"{path} holds the {model.spec.name} model, not {expect_code}")
    if expect_dataset is not None and dataset != expect_dataset:
        raise UserError(f"{path} holds a model trained on {dataset}, not {expect_dataset}: pass --dataset {dataset}")
    return model.to(device).eval()


def load_lasagne_weights(model: AutoEncoder, path: str | os.PathLike) -> AutoEncoder:
    """Load an original `auto_encoder_*_weights.pkl.gz` (Lasagne weight list) into `model`.

    The list holds conv W (32, 1, 5, 5), then each dense W as (in, out). Lasagne's
    Conv2DLayer flips its filters (a true convolution) and PyTorch does not, so the
    filters are flipped here; dense weights are transposed to PyTorch's (out, in).
    """
    if model.architecture != "original":
        raise UserError("Lasagne weights have no biases: build the model with architecture='original'")
    arrays = read_safe_pickle(path)
    layers = model.lasagne_layers()
    if not isinstance(arrays, (list, tuple)) or len(arrays) != len(layers):
        raise UserError(f"{path}: expected a list of {len(layers)} weight arrays")
    with torch.no_grad():
        for i, (layer, array) in enumerate(zip(layers, arrays)):
            weight = torch.as_tensor(np.asarray(array, dtype=np.float32))
            weight = weight.flip(-1, -2) if isinstance(layer, nn.Conv2d) else weight.T
            if weight.shape != layer.weight.shape:
                raise UserError(
                    f"{path}: array {i} has shape {tuple(np.shape(array))}, "
                    f"which does not fit the {model.spec.name} model"
                )
            layer.weight.copy_(weight)
    return model
