"""How much a code holds: PCA with as many components, k-NN class accuracy, and their tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .datasets import Splits
from .device import encode_all, reconstruction_mse
from .files import write_text_atomic
from .model import AutoEncoder

KNN_NEIGHBOURS = 5
KNN_TRAIN = 10000  # training codes the k-NN classifier is fitted on, by default


class PCA:
    """Principal components of training images, largest variance first.

    The covariance is summed in float32 and decomposed in float64 (torch.linalg.eigh); the
    components form a complete orthonormal basis of pixel space.
    """

    def __init__(self, x: torch.Tensor):
        x = x.float().cpu()
        self.mean: torch.Tensor = x.mean(0)
        centred = x - self.mean
        _, vectors = torch.linalg.eigh((centred.T @ centred).double())
        self.components: torch.Tensor = vectors.flip(1).float()  # (pixels, pixels), one component a column

    def encode(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return (x.float().cpu() - self.mean) @ self.components[:, :k]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes @ self.components[:, : codes.shape[1]].T + self.mean

    def mse_by_components(self, x: torch.Tensor) -> np.ndarray:
        """Entry k: the mean squared error of `x` rebuilt from its first k components.

        The basis is orthonormal, so the error of k components is the energy of `x` along
        the components it leaves out.
        """
        energy = (((x.float().cpu() - self.mean) @ self.components).double() ** 2).sum(0)
        left_out = energy.flip(0).cumsum(0).flip(0)
        return torch.cat([left_out, torch.zeros(1, dtype=torch.float64)]).numpy() / x.numel()


def pca_training_set(infos: list[dict]) -> tuple[int | None, bool]:
    """(--limit, with the validation images) of the images PCA beside the runs in `infos` is
    fitted on: their --limit (all images when it differs); the validation images too where every
    run trained on them."""
    configs = [info.get("config", {}) for info in infos]
    limits = {config.get("limit") for config in configs}
    limit = next(iter(limits)) if len(limits) == 1 else None
    return limit, bool(configs) and all(config.get("train_on_validation") for config in configs)


def fit_pca(splits: Splits, infos: list[dict]) -> tuple[PCA, int]:
    """PCA fitted on the images the runs in `infos` saw (`pca_training_set`), and their count."""
    train_x = splits.training_images(*pca_training_set(infos))
    return PCA(torch.from_numpy(train_x)), len(train_x)


def knn_accuracy(
    train_codes: torch.Tensor,
    train_labels: torch.Tensor,
    test_codes: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = KNN_NEIGHBOURS,
) -> float:
    """Fraction of test codes whose k nearest training codes (Euclidean) vote for their label.

    A tied vote goes to the tied class with the nearest neighbour. Distances are computed
    with torch.cdist in chunks of test codes, so memory stays bounded.
    """
    k = min(k, len(train_codes))
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    weights = 1 + 0.5 ** torch.arange(1, k + 1, dtype=torch.float64)  # the bonuses sum below 1
    chunk = max(1, 2**24 // max(1, len(train_codes)))
    correct = 0
    for codes, labels in zip(test_codes.split(chunk), test_labels.split(chunk)):
        nearest = torch.cdist(codes.float(), train_codes.float()).topk(k, largest=False).indices
        votes = torch.zeros(len(codes), classes, dtype=torch.float64)
        votes.scatter_add_(1, train_labels[nearest].cpu(), weights.expand(len(codes), k))
        correct += (votes.argmax(1) == labels.cpu()).sum().item()
    return correct / len(test_codes)


def code_quality(
    model: AutoEncoder,
    splits: Splits,
    pca: PCA,
    device: torch.device,
    knn_train: int = KNN_TRAIN,
    evaluated: tuple[torch.Tensor, float] | None = None,
) -> dict:
    """Test MSE and k-NN class accuracy of a model's code, each next to PCA with as many components.

    `evaluated`: the model's test codes and test MSE, where they are already computed.
    """
    units = model.spec.units
    train_x = torch.from_numpy(splits.train_x[:knn_train]).to(device)
    test_x = torch.from_numpy(splits.test_x).to(device)
    train_y, test_y = torch.from_numpy(splits.train_y[:knn_train]), torch.from_numpy(splits.test_y)
    if evaluated is None:
        codes = encode_all(model, test_x)
        evaluated = codes, reconstruction_mse(model, test_x, codes=codes)
    test_codes, test_mse = evaluated
    pca_test = pca.encode(test_x, units)
    pca_error = pca.decode(pca_test) - test_x.cpu()
    return {
        "model": model.spec.name,
        "units": units,
        "test_mse": test_mse,
        "pca_test_mse": (pca_error.double() ** 2).mean().item(),
        "knn_accuracy": knn_accuracy(encode_all(model, train_x).cpu(), train_y, test_codes.cpu(), test_y),
        "pca_knn_accuracy": knn_accuracy(pca.encode(train_x, units), train_y, pca_test, test_y),
    }


def write_table(output_dir: Path, name: str, note: str, rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """Write rows as name.txt (a note and a Markdown table) and name.json (the note and rows).

    `columns` holds (key, header, format spec) for each column of the text table; a row without
    a value shows a dash.
    """
    lines = [
        "| " + " | ".join(header for _, header, _ in columns) + " |",
        "|" + "|".join("---:" if spec else ":---" for _, _, spec in columns) + "|",
    ]
    lines += [
        "| " + " | ".join("–" if row.get(key) is None else format(row[key], spec) for key, _, spec in columns) + " |"
        for row in rows
    ]
    write_text_atomic(output_dir / f"{name}.txt", note + "\n\n" + "\n".join(lines) + "\n")
    write_text_atomic(output_dir / f"{name}.json", json.dumps({"note": note, "rows": rows}, indent=2) + "\n")
