"""The code explorer: one self-contained HTML page from a trained run (see docs/explorer.md).

The page holds the test images, their codes and labels, the run's numbers and the decoder, and
runs the decoder itself (explorer.js), so it opens from disk with no server and no network.
The page is UTF-16 (its byte-order mark says so before any server can say otherwise), so that
arrays travel as 47 bits in three characters (explorer_codec.py); the codes are 16 bits a unit,
the images rANS-coded by explorer_images.py. The decoder is rounded and Rice-coded by
explorer_codec.py, within a fraction of a grey level of PyTorch's.
"""

from __future__ import annotations

import argparse
import html
import json
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .analysis import KNN_NEIGHBOURS, KNN_TRAIN, code_quality, fit_pca
from .device import decode_all
from .explorer_codec import compact_decoder, encode_text, grid_codes, page_codes, rice_encode
from .explorer_images import IMAGES_PER_STREAM, LEVEL_EDGES, encode_images, pack_table
from .files import write_text_atomic
from .model import AutoEncoder
from .recipes import image_sets
from .trained_run import TrainedRun

_PAGE_FILES = ("explorer.html", "explorer.js")


def explorer_path(output_dir: str | Path, model: str) -> Path:
    return Path(output_dir) / f"{model}_explorer.html"


def fold_decoder(model: AutoEncoder) -> list[tuple[np.ndarray, np.ndarray]]:
    """The decoder's dense layers as (weight, bias) in float64, batch norm (eval mode) folded in.

    Every layer but the last is followed by ReLU, the last by a sigmoid, as in `AutoEncoder.decode`;
    dropout does nothing in eval mode.
    """
    layers: list[tuple[torch.Tensor, torch.Tensor]] = []
    for module in [*model.decoder, model.output]:
        if isinstance(module, nn.Linear):
            weight = module.weight.detach().cpu().double()
            bias = (
                torch.zeros(len(weight), dtype=torch.float64)
                if module.bias is None
                else module.bias.detach().cpu().double()
            )
            layers.append((weight, bias))
        elif isinstance(module, nn.BatchNorm1d):
            mean, var = module.running_mean, module.running_var
            if mean is None or var is None:
                raise ValueError("a batch norm without running statistics cannot be folded")
            scale = module.weight.detach().cpu().double() / (var.cpu().double() + module.eps).sqrt()
            weight, bias = layers[-1]
            layers[-1] = (
                weight * scale[:, None],
                (bias - mean.cpu().double()) * scale + module.bias.detach().cpu().double(),
            )
        elif not isinstance(module, (nn.ReLU, nn.Dropout)):
            raise TypeError(f"the explorer cannot fold a {type(module).__name__} into the decoder")
    return [(weight.numpy(), bias.numpy()) for weight, bias in layers]


def _blob(data: bytes | np.ndarray) -> str:
    """Bytes, or the bytes of a little-endian array, as the page's text (explorer_codec.encode_text)."""
    return encode_text(data if isinstance(data, bytes) else np.ascontiguousarray(data).tobytes())


def _table(frequencies: np.ndarray) -> dict:
    """A frequency table, packed by `pack_table`."""
    present, values = pack_table(frequencies)
    return {"rows": len(frequencies), "present": _blob(present), "values": _blob(values)}


def _images_data(images: np.ndarray) -> dict:
    """Images (N, 784) in 0..1 as bytes (pixel = byte/256), coded by `encode_images`."""
    coded = encode_images(np.clip(np.rint(images * 256), 0, 255).astype(np.uint8))
    return {
        "levelEdges": list(LEVEL_EDGES),
        "imagesPerStream": IMAGES_PER_STREAM,
        "levels": _table(coded.level_frequencies),
        "bytes": _table(coded.byte_frequencies),
        "states": _blob(coded.states.astype("<u4")),
        "counts": _blob(coded.counts.astype("<u4")),
        "words": _blob(coded.words.astype("<u2")),
    }


def _decoder_data(model: AutoEncoder, codes: torch.Tensor, stored_codes: torch.Tensor) -> list[dict]:
    """Each layer's Rice-coded integers, with the step of each row and the biases."""
    layers = []
    for q, step, bias in compact_decoder(fold_decoder(model), codes, stored_codes):
        k, unary, low = rice_encode(q)
        layers.append(
            {
                "rows": q.shape[0],
                "cols": q.shape[1],
                "k": _blob(k),
                "unary": _blob(unary),
                "low": _blob(low),
                "steps": _blob(step.astype("<f4")),
                "biases": _blob(bias.astype("<f4")),
            }
        )
    return layers


def _hex_colors() -> list[str]:
    """The class colours of the figures, as CSS."""
    from .figures import class_colors

    return ["#" + "".join(f"{round(255 * c):02x}" for c in rgb[:3]) for rgb in class_colors()]


def _code_pca(codes: np.ndarray) -> dict:
    """The codes' principal components (one a row, largest variance first, each signed so that its
    largest entry is positive) with their share of the variance, and the mean; in float64."""
    codes = codes.astype(np.float64)
    mean = codes.mean(0)
    variances, vectors = np.linalg.eigh(np.cov(codes - mean, rowvar=False, bias=True).reshape(len(mean), -1))
    order = np.argsort(variances)[::-1]
    components = vectors[:, order].T
    components *= np.sign(components[np.arange(len(components)), np.abs(components).argmax(1)])[:, None]
    variances = np.clip(variances[order], 0, None)
    return {
        "mean": mean.tolist(),
        "components": components.tolist(),
        "variance": (variances / (variances.sum() or 1)).tolist(),
    }


def _image_errors(model: AutoEncoder, test_x: torch.Tensor, codes: torch.Tensor) -> np.ndarray:
    """Each test image's squared error a pixel, rebuilt from its code by PyTorch's decoder."""
    return ((decode_all(model, codes).float().cpu() - test_x.float().cpu()) ** 2).mean(1).numpy()


def _numbers_line(run: TrainedRun, quality: dict, count: int) -> str:
    """The header's facts, each once: how the code was trained, how good it is, what is shown."""
    spec, info = run.spec, run.info
    epochs, config = len(info["training loss"]), info.get("config", {})
    limit, both = config.get("limit"), config.get("train_on_validation", False)
    images = image_sets(both)
    seen = f"the first {limit:,} {images}" if limit else f"all {run.splits.training_count(None, both):,} {images}"
    shape = f" ({spec.side}x{spec.side} image)" if spec.is_image else ""
    legend = run.dataset.legend_title
    return (
        f"A {spec.units}-unit code{shape}, trained for {epochs} epoch{'s' * (epochs != 1)} "
        f"({info['config']['recipe']} recipe) on {seen}. "
        f"Test MSE {quality['test_mse']:.4f} (PCA with {spec.units} components: {quality['pca_test_mse']:.4f}); "
        f"{KNN_NEIGHBOURS}-NN {legend} accuracy {quality['knn_accuracy']:.3f} "
        f"(PCA: {quality['pca_knn_accuracy']:.3f}). {count:,} {run.dataset.test_set}."
    )


def _page_data(run: TrainedRun) -> dict:
    """Everything the page's script reads, in plain JSON types."""
    stage, spec, dataset = run.stages[-1], run.spec, run.dataset
    codes = stage.codes.cpu().float().numpy()
    low, step, levels = grid_codes(codes)
    data = {
        "model": spec.name,
        "units": spec.units,
        "side": spec.side,
        "classes": list(dataset.classes),
        "legend": dataset.legend_title,
        "testSet": dataset.test_set,
        "colors": _hex_colors(),
        "count": len(levels),
        "codes": {
            "low": _blob(low.astype("<f4")),
            "step": _blob(step.astype("<f4")),
            "levels": _blob(levels.astype("<u2")),
        },
        "labels": _blob(run.test_y.astype(np.uint8)),
        "errors": _blob(_image_errors(stage.model, run.test_x, stage.codes).astype("<f4")),
        "decoder": _decoder_data(stage.model, stage.codes.cpu(), torch.from_numpy(page_codes(low, step, levels))),
        "images": _images_data(run.test_x.cpu().numpy()),
    }
    if spec.units != 3:  # other codes are seen through their principal components
        data["pca"] = _code_pca(codes)
    return data


def _render_page(run: TrainedRun, quality: dict) -> str:
    """explorer.html with its script, the numbers, the data and the test images filled in."""
    folder = Path(__file__).parent
    template, script = ((folder / name).read_text() for name in _PAGE_FILES)
    data = _page_data(run)
    fills = {
        "title": html.escape(f"{run.spec.name} code explorer, {run.dataset.title}"),
        "numbers": html.escape(_numbers_line(run, quality, data["count"])),
        "legend": html.escape(run.dataset.legend_title),
        # JSON may not close the <script> element that holds it
        "data": json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c"),
        "script": script,
    }
    return re.sub(r"\{\{(\w+)\}\}", lambda m: fills[m.group(1)], template)


def trained_quality(run: TrainedRun, knn_train: int = KNN_TRAIN) -> dict:
    """`code_quality` of a run's trained model, as plot_training.py's table has it, from the test
    codes and test MSE the run already holds."""
    stage = run.stages[-1]
    pca, _ = fit_pca(run.splits, [run.info])
    return code_quality(stage.model, run.splits, pca, run.test_x.device, knn_train, (stage.codes, stage.test_mse))


def write_explorer(run: TrainedRun, output_dir: str | Path, quality: dict) -> Path:
    """Write M_explorer.html for the run's trained model; `quality` is its `code_quality` row."""
    path = explorer_path(output_dir, run.spec.name)
    write_text_atomic(path, "\ufeff" + _render_page(run, quality), encoding="utf-16-le")
    return path


def add_explorer_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-explorer",
        dest="explorer",
        action="store_false",
        help="do not write M_explorer.html, the page to explore the code in a browser",
    )


def save_explorer(run: TrainedRun, output_dir: Path) -> Path:
    """M_explorer.html with the run's code quality, as the plot scripts write it, and a line saying where."""
    path = write_explorer(run, output_dir, trained_quality(run))
    print(f"{run.spec.name}: explorer written to {path} ({path.stat().st_size / 1e6:.1f} MB); open it in a browser")
    return path
