"""Why the explorer pages weigh what they do (docs/explorer.md, "How the pages stay small").

    python benchmarks/explorer_study.py --output-dir output/reference

For the 3D and 4x4 runs in --output-dir: each decoder layer rounded alone (the others exact) to a
step of 1/16 and 1/64 of each row's root-mean-square weight, plainly and with error feedback, and
the largest pixel difference this leaves on 2,000 random codes over the sliders' box; then what
general-purpose and context-model coding would make of the test images' bytes. Figures only.
"""

from __future__ import annotations

import argparse
import bz2
import lzma
import zlib

import numpy as np
import torch

from autoencoder.device import encode_all
from autoencoder.explorer import fold_decoder
from autoencoder.explorer_codec import box_codes, calibration_codes, gptq_round, run_decoder
from autoencoder.explorer_images import encode_images
from autoencoder.files import OutputPaths
from autoencoder.model import load_model
from autoencoder.sources import load_dataset

STEPS = (1 / 16, 1 / 64)


def layer_errors(layers: list[tuple[torch.Tensor, torch.Tensor]], codes: torch.Tensor) -> None:
    inputs, checked = calibration_codes(codes), box_codes(codes.double(), 2000, seed=2)
    exact = run_decoder(layers, checked)
    h = inputs
    for k, (weight, bias) in enumerate(layers):
        cells = []
        for fraction in STEPS:
            step = (fraction * weight.pow(2).mean(1).sqrt()).clamp_min(1e-30)
            for name, q in (("plain", torch.round(weight / step[:, None])), ("feedback", gptq_round(weight, h, step))):
                rounded = [*layers[:k], (q * step[:, None], bias), *layers[k + 1 :]]
                error = (run_decoder(rounded, checked) - exact).abs().max().item() * 255
                cells.append(f"1/{1 / fraction:.0f} {name} {error:.2f}/255")
        print(f"  layer {k + 1} ({weight.shape[1]}->{weight.shape[0]}): " + ", ".join(cells), flush=True)
        h = (h @ weight.T + bias).clamp_min(0)


def image_coding(images: np.ndarray) -> None:
    """Sizes of the test images' bytes (pixel = byte/256) under zlib, bz2 and xz, the static
    entropy of each pixel given its four causal neighbours (left, up, up-left, up-right) in 4 levels,
    and what the page's coder (explorer_images) stores, frequency tables included."""
    pixels = np.clip(np.rint(images * 256), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    raw = pixels.tobytes()
    sizes = {
        "zlib 9": len(zlib.compress(raw, 9)),
        "bz2 9": len(bz2.compress(raw, 9)),
        "xz 9e": len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)),
    }
    padded = np.pad(pixels, ((0, 0), (1, 0), (1, 1))).astype(np.int64)
    levels = [
        np.digitize(n, [1, 128, 250])
        for n in (padded[:, 1:, :-2], padded[:, :-1, 1:-1], padded[:, :-1, :-2], padded[:, :-1, 2:])
    ]
    context = ((levels[0] * 4 + levels[1]) * 4 + levels[2]) * 4 + levels[3]
    counts = np.bincount(context.ravel() * 256 + pixels.ravel(), minlength=256 * 256).reshape(256, 256).astype(float)
    p = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    sizes["context entropy"] = int(-(counts[counts > 0] * np.log2(p[counts > 0])).sum() / 8)
    sizes["the page's rANS"] = encode_images(pixels.reshape(-1, 784)).stored_bytes()
    print(f"test images, {len(raw):,} bytes: " + ", ".join(f"{name} {size:,}" for name, size in sizes.items()))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output-dir", default="output", help="the folder of the 3D and 4x4 runs")
    p.add_argument("--data", default=None, help="MNIST, as auto_encoder.py's --data")
    args = p.parse_args(argv)
    splits = load_dataset("mnist", args.data)
    test_x = torch.from_numpy(splits.test_x)
    torch.set_grad_enabled(False)
    for name in ("3D", "4x4"):
        model = load_model(OutputPaths.of(args.output_dir, name).weights, "cpu", name)
        print(f"{name}: the largest pixel difference on 2,000 random codes, one layer rounded alone", flush=True)
        layers = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in fold_decoder(model)]
        layer_errors(layers, encode_all(model, test_x).cpu())
    image_coding(splits.test_x)


if __name__ == "__main__":
    main()
