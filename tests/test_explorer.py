"""The code explorer: the page plot_3D.py and plot_4x4.py write, read back in Python and run in
headless Chromium (skipped where none is installed: apt-get install chromium).

The browser tests read the page's own self-test (`M_explorer.html#selftest`), which it writes into
the DOM for `chromium --headless --dump-dom`. Run as a script, this file makes the README's
screenshots and measures a trained run's pages (docs/explorer.md):

    PYTHONPATH=. python tests/test_explorer.py output [docs/results]
"""
from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import plot_3D
import plot_4x4
from conftest import tiny_splits
from helpers import (AutoEncoder, OutputPaths, Splits, Stage, TrainedRun, dataset_spec, decode_all, encode_all,
                     fold_decoder, load_model, reconstruction_mse, write_explorer)

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (apt-get install chromium)")
# Headless, offline and quiet: without the networking switches Chromium tries the network many times.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")
WINDOW = (1120, 840)          # CSS pixels: the whole page, as the README shows it
TOLERANCE = 2 / 255           # the in-page decoder against PyTorch's, a pixel
DECODE_BUDGET_MS, LOAD_BUDGET_MS = 30, 2000
MODELS = ("3D", "4x4")
QUALITY = {"test_mse": 0.0123, "pca_test_mse": 0.0456, "knn_accuracy": 0.875, "pca_knn_accuracy": 0.5}


# -- Pages from untrained models: random weights and batch-norm statistics, the tiny test set ---------

def untrained_run(name: str) -> TrainedRun:
    """A run of model `name` as load_trained_run gives it, without training, so these tests are quick.

    Batch norm gets random statistics, so that folding it into the dense layers is really tested.
    """
    torch.manual_seed(0)
    model = AutoEncoder(name)
    with torch.no_grad():
        for norm in (m for m in model.modules() if isinstance(m, nn.BatchNorm1d)):
            norm.running_mean.normal_(0, 0.3)
            norm.running_var.uniform_(0.5, 2)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_(0, 0.2)
    model.eval()
    splits = Splits(*(array for pair in tiny_splits() for array in pair), source="tiny")
    test_x = torch.from_numpy(splits.test_x)
    codes = encode_all(model, test_x)
    stage = Stage(2, model, "after 2 epochs", codes, reconstruction_mse(model, test_x, codes=codes))
    info = {"training loss": [0.1, 0.05], "validation loss": [0.1, 0.06], "config": {"limit": 60}}
    return TrainedRun(model.spec, dataset_spec("mnist"), OutputPaths.of("none", name), info, [stage], test_x,
                      splits.test_y, splits)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, TrainedRun]]:
    """The 3D and 4x4 explorers of untrained models, and their runs."""
    folder = tmp_path_factory.mktemp("explorers")
    runs = {name: untrained_run(name) for name in MODELS}
    return {name: (write_explorer(run, folder, QUALITY), run) for name, run in runs.items()}


def page_data(page: Path) -> dict:
    return json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', page.read_text(),
                                re.S).group(1))


def page_decoder(data: dict):
    """The decoder as the page stores it (12-bit weights, a scale per row), run in NumPy."""
    layers = []
    for layer in data["decoder"]:
        packed = np.frombuffer(base64.b64decode(layer["weights"]), np.uint8).reshape(-1, 3).astype(np.int32)
        pairs = np.stack([packed[:, 0] | (packed[:, 1] & 15) << 8, packed[:, 1] >> 4 | packed[:, 2] << 4], 1)
        q = (pairs.ravel()[:layer["rows"] * layer["cols"]] ^ 0x800) - 0x800   # sign of 12 bits
        scales, biases = (np.frombuffer(base64.b64decode(layer[k]), "<f4") for k in ("scales", "biases"))
        layers.append((q.reshape(layer["rows"], layer["cols"]) * scales[:, None].astype(np.float64), biases))

    def decode(codes: np.ndarray) -> np.ndarray:
        h = codes.astype(np.float64)
        for k, (weight, bias) in enumerate(layers):
            h = h @ weight.T + bias
            h = np.maximum(h, 0) if k < len(layers) - 1 else 1 / (1 + np.exp(-h))
        return h
    return decode


def random_codes(run: TrainedRun, n: int = 100) -> torch.Tensor:
    """Codes drawn evenly over the central 99 % of each unit of the test codes, as the page draws them."""
    codes = run.stages[-1].codes
    low, high = codes.quantile(0.005, dim=0), codes.quantile(0.995, dim=0)
    return low + torch.rand(n, codes.shape[1], generator=torch.Generator().manual_seed(0)) * (high - low)


# -- Chromium --------------------------------------------------------------------------------------

def chromium(url: str, *args: str) -> str:
    """Run headless Chromium on `url` with a fresh profile; its standard output."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def self_test(page: Path) -> dict:
    """What the page's #selftest wrote into its DOM, once loaded in headless Chromium."""
    window = f"--window-size={WINDOW[0]},{WINDOW[1]}"
    dom = chromium(f"{page.resolve().as_uri()}#selftest", window, "--dump-dom")
    found = re.search(r'<pre id="selftest"[^>]*>(.*?)</pre>', dom, re.S)
    assert found and found.group(1), "the page wrote no self-test result"
    return json.loads(html.unescape(found.group(1)))


def screenshot(page: Path, path: Path) -> Path:
    """The page after its #demo interaction (the sliders set, two points picked), as a PNG."""
    chromium(f"{page.resolve().as_uri()}#demo", f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={path}")
    return path


@pytest.fixture(scope="module")
def self_tests(pages) -> dict[str, dict]:
    return {name: self_test(page) for name, (page, _) in pages.items()}


# -- The page, read in Python ------------------------------------------------------------------

def test_folding_batch_norm_into_the_dense_layers_keeps_the_decoders_output():
    run = untrained_run("3D")
    codes = random_codes(run)
    h = codes.double().numpy()
    for k, (weight, bias) in enumerate(layers := fold_decoder(run.stages[-1].model)):
        h = h @ weight.T + bias
        h = np.maximum(h, 0) if k < len(layers) - 1 else 1 / (1 + np.exp(-h))
    assert np.abs(h - decode_all(run.stages[-1].model, codes).double().numpy()).max() < 1e-5


@pytest.mark.parametrize("name", MODELS)
def test_the_stored_decoder_draws_pytorchs_images_within_2_of_255(name, pages):
    page, run = pages[name]
    codes = random_codes(run)
    ours = page_decoder(page_data(page))(codes.numpy())
    assert np.abs(ours - decode_all(run.stages[-1].model, codes).double().numpy()).max() < TOLERANCE


def test_the_page_is_one_file_that_asks_for_nothing_outside_it(pages):
    for page, _ in pages.values():
        text = page.read_text()
        assert text.isascii()
        assert not re.search(r"(src|href)=[\"'](?!data:)|https?://|fetch\(|XMLHttpRequest|type=.module", text)


def test_the_page_holds_the_runs_numbers_its_codes_and_class_names(pages):
    page, run = pages["3D"]
    data = page_data(page)
    assert data["quality"] == QUALITY and data["classes"] == list("0123456789")
    assert (data["model"], data["units"], data["recipe"]) == ("3D", 3, "modern")
    assert data["epochs"] == "2 epochs on the first 60 training images (--limit)"
    codes = np.frombuffer(base64.b64decode(data["codes"]), "<f4").reshape(-1, 3)
    assert np.array_equal(codes, run.stages[-1].codes.numpy())
    assert "pca" not in data and len(page_data(pages["4x4"][0])["pca"]["axes"]) == 2


def test_the_page_is_written_again_byte_for_byte(pages, tmp_path):
    page, run = pages["4x4"]
    again = write_explorer(run, tmp_path, QUALITY)
    assert again.read_bytes() == page.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["4x4_explorer.html"]   # no temporary left


# -- The page, run in headless Chromium ------------------------------------------------------------

@needs_chromium
@pytest.mark.parametrize("name", MODELS)
def test_the_page_loads_in_chromium_without_errors_and_in_under_2_s(name, self_tests):
    result = self_tests[name]
    assert result["errors"] == []
    assert result["readyMs"] < LOAD_BUDGET_MS


@needs_chromium
@pytest.mark.parametrize("name", MODELS)
def test_the_decoder_in_the_page_draws_pytorchs_images_within_2_of_255(name, pages, self_tests):
    result, run = self_tests[name], pages[name][1]
    codes = torch.tensor(result["codes"], dtype=torch.float32)
    assert codes.shape == (100, run.spec.units)
    theirs = decode_all(run.stages[-1].model, codes).double()
    assert (torch.tensor(result["decoded"], dtype=torch.float64) - theirs).abs().max() < TOLERANCE


@needs_chromium
@pytest.mark.parametrize("name", MODELS)
def test_the_page_decodes_a_code_in_under_30_ms_and_reads_the_images_back_exactly(name, pages, self_tests):
    result, run = self_tests[name], pages[name][1]
    assert result["decodeMs"] < DECODE_BUDGET_MS
    image_bytes = np.rint(run.test_x.numpy() * 256).astype(np.int64).ravel()
    assert result["imageChecksum"] == int((image_bytes * (np.arange(len(image_bytes)) % 251 + 1)).sum())


@needs_chromium
@pytest.mark.parametrize("name, actions", [
    ("3D", ["sliders", "hover", "zoom", "legend", "pick", "secondPick", "rotate"]),
    ("4x4", ["hover", "zoom", "legend", "pick", "secondPick", "cell"])])
def test_sliders_hovering_zooming_picking_and_dragging_change_what_the_page_draws(name, actions, self_tests):
    interaction = self_tests[name]["interaction"]
    for action in actions:
        before, after = interaction[action]["before"], interaction[action]["after"]
        assert all(b != a for b, a in zip(before, after)), f"{action} left a drawing as it was"
    assert len(interaction["picks"]) == 2


@needs_chromium
@pytest.mark.parametrize("name", MODELS)
def test_a_screenshot_shows_the_coloured_points_of_the_scatter(name, pages, self_tests, tmp_path):
    from PIL import Image
    page, run = pages[name]
    pixels = np.asarray(Image.open(screenshot(page, tmp_path / "shot.png")).convert("RGB"))
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0]) and pixels.std() > 10
    box = self_tests[name]["scatter"]
    scatter = pixels[int(box["top"]):int(box["bottom"]), int(box["left"]):int(box["right"])].reshape(-1, 3)
    colors = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in page_data(page)["colors"]]
    painted = {k: (scatter == color).all(1).sum() for k, color in enumerate(colors)}
    present = set(run.test_y.tolist())
    assert all(painted[k] >= 9 for k in present), painted   # a point is 6x6 pixels
    assert sum(painted.values()) >= 9 * len(run.test_y)


@needs_chromium
@pytest.mark.parametrize("name", ["1D", "8x8"])
def test_any_code_size_gets_a_page_that_works(name, tmp_path):
    run = untrained_run(name)
    result = self_test(write_explorer(run, tmp_path, QUALITY))
    assert result["errors"] == []
    decoded = decode_all(run.stages[-1].model, torch.tensor(result["codes"], dtype=torch.float32)).double()
    assert (torch.tensor(result["decoded"], dtype=torch.float64) - decoded).abs().max() < TOLERANCE
    changes = {action: done["before"] != done["after"] for action, done in result["interaction"].items()
               if action != "picks"}
    assert all(changes.values()) and ("cell" in changes) == run.spec.is_image, changes


# -- The plot scripts --------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_plot_scripts_write_the_explorer_beside_the_figures_unless_told_not_to(trained_output, tiny_mnist,
                                                                                  tmp_path):
    for path in trained_output.iterdir():
        (tmp_path / path.name).symlink_to(path)
    common = ["--output-dir", str(tmp_path), "--data", str(tiny_mnist), "--device", "cpu", "--format", "png"]
    assert plot_4x4.main([*common, "--no-explorer"]) == 0
    assert plot_3D.main(common) == 0
    assert not (tmp_path / "4x4_explorer.html").exists()
    data = page_data(tmp_path / "3D_explorer.html")
    model = load_model(trained_output / "auto_encoder_3D_weights.pt")
    assert data["count"] == 20 and data["epochs"] == "2 epochs" and data["quality"]["test_mse"] > 0
    codes = torch.rand(10, 3, generator=torch.Generator().manual_seed(0)) * 4 - 2
    assert np.abs(page_decoder(data)(codes.numpy()) - decode_all(model, codes).double().numpy()).max() < TOLERANCE


# -- As a script: the README's screenshots and the numbers of docs/explorer.md ----------------------

def measure(output_dir: Path, screenshots: Path) -> None:
    """Screenshots of a trained run's explorers, and each page's weight, load time, decode time and
    largest difference from PyTorch on the page's 100 random codes."""
    for name in MODELS:
        page = output_dir / f"{name}_explorer.html"
        result = self_test(page)
        model = load_model(OutputPaths.of(output_dir, name).weights, "cpu", name)
        ours = torch.tensor(result["decoded"], dtype=torch.float64)
        difference = (ours - decode_all(model, torch.tensor(result["codes"])).double()).abs().max().item()
        shot = screenshot(page, screenshots / f"{name}_explorer.png")
        print(f"{page}: {page.stat().st_size:,} bytes; ready after {result['readyMs']:.0f} ms; decoding "
              f"{result['decodeMs']:.1f} ms a code (median); largest difference from PyTorch "
              f"{difference * 255:.3f}/255; errors: {result['errors'] or 'none'}; screenshot {shot}")


if __name__ == "__main__":
    if CHROMIUM is None:
        sys.exit("no Chromium here: apt-get install chromium")
    measure(Path(sys.argv[1]), Path(sys.argv[2] if len(sys.argv) > 2 else "docs/results"))
