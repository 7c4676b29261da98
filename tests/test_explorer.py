"""The code explorer: the page plot_3D.py and plot_4x4.py write, read back in Python and driven in
headless Chromium with real mouse, touch and key events (skipped where there is no Chromium:
apt-get install chromium) at a desktop, a small laptop and a phone's window size.

Run as a script, this file makes the screenshots in docs/results/ from a run's pages and prints
each page's weight and its decoder's largest difference from PyTorch (docs/explorer.md):

    PYTHONPATH=.:benchmarks python tests/test_explorer.py output docs/results
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from bench_explorer import CHROMIUM, Browser, page_data
from torch import nn

import plot_3D
import plot_4x4
from autoencoder.datasets import Splits, dataset_spec
from autoencoder.device import decode_all, encode_all, reconstruction_mse
from autoencoder.explorer import fold_decoder, write_explorer
from autoencoder.explorer_codec import box_codes, decode_text, page_codes, rice_decode, run_decoder
from autoencoder.explorer_images import CodedImages, decode_images, unpack_table
from autoencoder.files import OutputPaths
from autoencoder.model import AutoEncoder, load_model
from autoencoder.sources import load_dataset
from autoencoder.trained_run import Stage, TrainedRun
from conftest import tiny_splits

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (apt-get install chromium)")
SIZES = {"1400x900": (1400, 900, False), "1024x768": (1024, 768, False), "390x844": (390, 844, True)}
TOLERANCE = 2 / 255  # the in-page decoder against PyTorch's, a pixel
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
    info = {"training loss": [0.1, 0.05], "validation loss": [0.1, 0.06], "config": {"limit": 60, "recipe": "modern"}}
    return TrainedRun(
        model.spec, dataset_spec("mnist"), OutputPaths.of("none", name), info, [stage], test_x, splits.test_y, splits
    )


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, TrainedRun]]:
    """The 3D and 4x4 explorers of untrained models, and their runs."""
    folder = tmp_path_factory.mktemp("explorers")
    runs = {name: untrained_run(name) for name in MODELS}
    return {name: (write_explorer(run, folder, QUALITY), run) for name, run in runs.items()}


def page_text(page: Path) -> str:
    """The page's text: UTF-16 with a byte-order mark, as explorer.py writes it."""
    raw = page.read_bytes()
    assert raw.startswith(codecs.BOM_UTF16_LE)
    return raw[2:].decode("utf-16-le")


def page_array(data: dict, key: str, dtype: str) -> np.ndarray:
    return np.frombuffer(decode_text(data[key]), dtype)


def page_decoder(data: dict):
    """The decoder as the page stores it (Rice-coded integers, a step per row), run in float64 as the page runs it."""
    layers = []
    for layer in data["decoder"]:
        unary, low = (decode_text(layer[key]) for key in ("unary", "low"))
        q = rice_decode(page_array(layer, "k", np.uint8), unary, low, layer["cols"])
        steps, biases = (page_array(layer, k, "<f4") for k in ("steps", "biases"))
        layers.append(
            (torch.from_numpy(q * steps[:, None].astype(np.float64)), torch.from_numpy(biases.astype(np.float64)))
        )
    return lambda codes: run_decoder(layers, torch.tensor(codes)).numpy()


def random_codes(run: TrainedRun, n: int = 100) -> torch.Tensor:
    """Codes drawn evenly over each unit's whole range in the test codes, as the page's sliders span it."""
    return box_codes(run.stages[-1].codes, n, seed=0)


# -- The page, read in Python ------------------------------------------------------------------


def test_folding_batch_norm_into_the_dense_layers_keeps_the_decoders_output():
    run = untrained_run("3D")
    codes = random_codes(run)
    layers = [(torch.from_numpy(weight), torch.from_numpy(bias)) for weight, bias in fold_decoder(run.stages[-1].model)]
    h = run_decoder(layers, codes).numpy()
    assert np.abs(h - decode_all(run.stages[-1].model, codes).double().numpy()).max() < 1e-5


@pytest.mark.parametrize("name", MODELS)
def test_the_stored_decoder_draws_pytorchs_images_within_2_of_255(name, pages):
    page, run = pages[name]
    codes = random_codes(run)
    ours = page_decoder(page_data(page))(codes.numpy())
    assert np.abs(ours - decode_all(run.stages[-1].model, codes).double().numpy()).max() < TOLERANCE


def test_the_page_is_one_file_that_asks_for_nothing_outside_it_and_ships_no_self_test(pages):
    for page, _ in pages.values():
        text = page_text(page)
        assert re.sub(r'"\d+,[\u0100-\ud7ff]*"', '""', text).isascii()  # all but the arrays
        assert not re.search(r"(src|href)=[\"'](?!data:)|https?://|fetch\(|XMLHttpRequest|type=.module", text)
        assert not re.search(r"selftest|#demo|dispatchEvent", text)


def page_table(table: dict, cols: int) -> np.ndarray:
    return unpack_table(decode_text(table["present"]), page_array(table, "values", "<u2"), table["rows"], cols)


def page_images(data: dict) -> np.ndarray:
    """The page's test images, rANS-coded as explorer_images.py does, (N, 784) in 0..1."""
    images = data["images"]
    coded = CodedImages(
        page_table(images["levels"], len(images["levelEdges"]) + 1),
        page_table(images["bytes"], 256),
        *(page_array(images, key, dtype) for key, dtype in (("states", "<u4"), ("counts", "<u4"), ("words", "<u2"))),
    )
    return decode_images(coded, data["count"]) / 256


def page_code_array(data: dict) -> np.ndarray:
    """The codes the page reads, (N, units) in float32."""
    codes = data["codes"]
    low, step = (page_array(codes, key, "<f4") for key in ("low", "step"))
    return page_codes(low, step, page_array(codes, "levels", "<u2").reshape(-1, len(low)))


REFERENCE_PAGE_BYTES = 6_000_000  # issue 26: at most 6 MB a page


@pytest.mark.parametrize("name", MODELS)
def test_the_committed_reference_pages_are_small_and_their_decoder_gives_pytorchs_errors(name):
    """docs/results' pages, made from the reference runs: each test image's error, decoded in the
    page's way from its stored code, is PyTorch's (stored beside it) to 1 %."""
    page = Path(__file__).parent.parent / "docs" / "results" / f"{name}_explorer.html"
    assert page.stat().st_size <= REFERENCE_PAGE_BYTES
    data = page_data(page)
    codes = page_code_array(data)[:1000]
    ours = ((page_decoder(data)(codes) - page_images(data)[:1000]) ** 2).mean(1)
    assert data["count"] == 10_000 and np.allclose(ours, page_array(data, "errors", "<f4")[:1000], rtol=0.01)


def test_the_page_holds_the_runs_codes_class_names_and_each_images_error(pages):
    page, run = pages["3D"]
    data = page_data(page)
    assert data["classes"] == list("0123456789") and (data["model"], data["units"]) == ("3D", 3)
    model, codes = run.stages[-1].model, run.stages[-1].codes
    step = page_array(data["codes"], "step", "<f4")
    assert (np.abs(page_code_array(data) - codes.numpy()) <= step * 0.51).all()  # half a 16-bit step
    assert np.array_equal(page_images(data), np.clip(np.rint(run.test_x.numpy() * 256), 0, 255) / 256)
    theirs = ((decode_all(model, codes) - run.test_x) ** 2).mean(1).numpy()
    assert np.allclose(page_array(data, "errors", "<f4"), theirs, rtol=1e-6)
    assert "pca" not in data


def test_the_header_says_each_fact_once_and_no_path(pages, tmp_path):
    text = page_text(pages["4x4"][0])
    numbers = re.search(r'<p id="numbers">(.*?)</p>', text).group(1)
    assert numbers == (
        "A 16-unit code (4x4 image), trained for 2 epochs (modern recipe) on the first 60 training "
        "images. Test MSE 0.0123 (PCA with 16 components: 0.0456); 5-NN digit accuracy 0.875 "
        "(PCA: 0.500). 20 test digits."
    )
    shown = text.split('<script id="data"')[0]
    assert str(pages["4x4"][0].parent) not in shown and "/tmp" not in shown


def test_the_principal_components_are_numpys_with_their_share_of_the_variance(pages):
    data, run = page_data(pages["4x4"][0]), pages["4x4"][1]
    pca = data["pca"]
    codes = run.stages[-1].codes.double().numpy()
    components, variance = np.array(pca["components"]), np.array(pca["variance"])
    assert np.allclose(components @ components.T, np.eye(16), atol=1e-9)
    singular = np.linalg.svd(codes - codes.mean(0), compute_uv=False)
    assert np.allclose(variance, singular**2 / (singular**2).sum(), atol=1e-9)
    projected = (codes - pca["mean"]) @ components.T
    assert np.allclose(projected.var(0) / projected.var(0).sum(), variance, atol=1e-9)


def test_the_page_is_written_again_byte_for_byte(pages, tmp_path):
    page, run = pages["4x4"]
    again = write_explorer(run, tmp_path, QUALITY)
    assert again.read_bytes() == page.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["4x4_explorer.html"]  # no temporary left


# -- The page in headless Chromium: every screen ----------------------------------------------------


@pytest.fixture(scope="module", params=list(SIZES))
def browser(request):
    width, height, mobile = SIZES[request.param]
    with Browser(width, height, mobile=mobile) as b:
        yield b


@pytest.fixture(scope="module")
def desktop():
    with Browser(1024, 768) as b:
        yield b


def opened(browser: Browser, page: Path) -> Browser:
    browser.errors.clear()
    browser.open(page.resolve().as_uri())
    return browser


LAYOUT = """(() => {
  const out = { width: innerWidth, height: innerHeight, scrollWidth: document.documentElement.scrollWidth,
                panels: [], small: [] };
  for (const panel of document.querySelectorAll('#plot, section')) {
    panel.scrollIntoView({ block: 'start' });
    const r = panel.getBoundingClientRect();
    out.panels.push({ id: panel.id, left: r.left, top: r.top, right: r.right, bottom: r.bottom });
  }
  for (const node of document.querySelectorAll('body *')) {
    const own = [...node.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (own && node.getClientRects().length && parseFloat(getComputedStyle(node).fontSize) < 12)
      out.small.push(node.tagName + '#' + node.id + ': ' + node.textContent.slice(0, 30));
  }
  scrollTo(0, 0);
  return out;
})()"""


@needs_chromium
@pytest.mark.parametrize("name", MODELS)
def test_every_panel_fits_inside_the_window_and_no_text_is_under_12_px(name, pages, browser):
    layout = opened(browser, pages[name][0]).evaluate(LAYOUT)
    assert layout["scrollWidth"] <= layout["width"] and layout["small"] == []
    for panel in layout["panels"]:
        assert panel["left"] >= 0 and panel["right"] <= layout["width"], panel
        assert panel["top"] >= -1 and panel["bottom"] <= layout["height"] + 1, panel  # scrolled to, within a pixel
    assert browser.errors == []


@needs_chromium
@pytest.mark.parametrize("name", MODELS)
def test_the_canvas_is_as_large_as_the_page_makes_it_and_picking_uses_that_size(name, pages, browser):
    opened(browser, pages[name][0])
    box = browser.evaluate("document.getElementById('scatter').getBoundingClientRect().toJSON()")
    assert box["width"] >= min(300, browser.evaluate("innerWidth") - 40)
    point = browser.evaluate("explorer.point(3)")
    assert box["left"] <= point["x"] <= box["right"] and box["top"] <= point["y"] <= box["bottom"]
    browser.click(point["x"], point["y"])
    assert browser.evaluate("explorer.state().picks") == [3]


# -- Navigation ------------------------------------------------------------------------------------------


@needs_chromium
@pytest.mark.parametrize("name", MODELS)
def test_the_wheel_zooms_at_the_pointer_within_bounds(name, pages, desktop):
    opened(desktop, pages[name][0])
    before = desktop.evaluate("explorer.point(5)")
    desktop.wheel(before["x"], before["y"], -300)
    assert desktop.evaluate("explorer.state().zoom") > 1.3
    assert_moved(before, desktop.evaluate("explorer.point(5)"), 0, 0)
    for _ in range(80):
        desktop.wheel(before["x"], before["y"], -100)
    assert desktop.evaluate("explorer.state().zoom") == 40
    for _ in range(160):
        desktop.wheel(before["x"], before["y"], 100)
    assert desktop.evaluate("explorer.state().zoom") == 0.5


def assert_moved(before: dict, after: dict, dx: float, dy: float) -> None:
    """A point on the page moved by (dx, dy) CSS pixels, within half a pixel."""
    assert abs(after["x"] - before["x"] - dx) < 0.5 and abs(after["y"] - before["y"] - dy) < 0.5, (before, after)


def empty_spot(browser: Browser, count: int, offsets=((40, -30), (-40, 30), (40, 30), (-40, -30))) -> tuple:
    """A place near the cursor with no point within 16 px."""
    cursor = browser.evaluate("explorer.cursor()")
    points = browser.evaluate(f"Array.from({{length: {count}}}, (_, i) => explorer.point(i))")
    for dx, dy in offsets:
        x, y = cursor["x"] + dx, cursor["y"] + dy
        if all(np.hypot(p["x"] - x, p["y"] - y) > 16 for p in points):
            return x, y
    raise AssertionError("no empty spot near the cursor")


@needs_chromium
def test_dragging_pans_a_flat_view_and_reset_and_double_click_restore_it(pages, desktop):
    page, run = pages["4x4"]
    opened(desktop, page)
    start = desktop.evaluate("explorer.point(0)")
    x, y = empty_spot(desktop, len(run.test_y))
    desktop.drag((x, y), (x + 60, y + 40))
    assert_moved(start, desktop.evaluate("explorer.point(0)"), 60, 40)
    reset = desktop.evaluate("document.getElementById('reset').getBoundingClientRect().toJSON()")
    desktop.click(reset["x"] + 5, reset["y"] + 5)
    assert desktop.evaluate("explorer.point(0)") == start
    desktop.drag((x, y), (x - 50, y))
    desktop.click(x, y, count=2)
    assert desktop.evaluate("explorer.point(0)") == start


@needs_chromium
def test_dragging_turns_the_3d_view_and_shift_dragging_pans_it(pages, desktop):
    page, run = pages["3D"]
    opened(desktop, page)
    yaw = desktop.evaluate("explorer.state().yaw")
    x, y = empty_spot(desktop, len(run.test_y))
    desktop.drag((x, y), (x + 50, y))
    assert desktop.evaluate("explorer.state().yaw") == pytest.approx(yaw + 0.5)
    before = desktop.evaluate("explorer.point(0)")
    desktop.drag((x, y), (x + 30, y + 20), modifiers=8)  # shift
    assert_moved(before, desktop.evaluate("explorer.point(0)"), 30, 20)


@needs_chromium
@pytest.mark.parametrize("name", MODELS)
def test_labels_stay_inside_the_canvas_and_off_the_points_at_any_zoom(name, pages, desktop):
    page, run = pages[name]
    opened(desktop, page)
    box = desktop.evaluate("document.getElementById('scatter').getBoundingClientRect().toJSON()")
    for notches in (0, 10, 20):  # zoomed in 0, 10 and 30 wheel notches
        for _ in range(notches):
            desktop.wheel(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, -100)
        labels = desktop.evaluate("explorer.labels()")
        assert len(labels) >= 4
        for label in labels:
            width, height = label["right"] - label["left"], label["bottom"] - label["top"]
            assert box["left"] <= label["x"] and label["x"] + width <= box["right"]
            assert box["top"] <= label["y"] and label["y"] + height <= box["bottom"]
        if notches == 0:
            points = desktop.evaluate(f"Array.from({{length: {len(run.test_y)}}}, (_, i) => explorer.point(i))")
            covered = [
                p
                for p in points
                for label in labels
                if label["x"] <= p["x"] <= label["x"] + label["right"] - label["left"]
                and label["y"] <= p["y"] <= label["y"] + 16
            ]
            assert covered == []


# -- The code cursor ---------------------------------------------------------------------------------


@needs_chromium
@pytest.mark.parametrize("name", MODELS)
def test_a_click_on_empty_space_puts_the_cursor_there_and_picks_nothing(name, pages, desktop):
    page, run = pages[name]
    opened(desktop, page)
    x, y = empty_spot(desktop, len(run.test_y), ((15, -10), (-15, 10), (15, 10), (-15, -10)))
    desktop.click(x, y)
    assert_moved({"x": x, "y": y}, desktop.evaluate("explorer.cursor()"), 0, 0)
    assert desktop.evaluate("explorer.state().picks") == []


@needs_chromium
@pytest.mark.parametrize("name", MODELS)
def test_the_cursor_follows_a_drag_of_the_plus(name, pages, desktop):
    opened(desktop, pages[name][0])
    start = desktop.evaluate("explorer.cursor()")
    decoded = desktop.evaluate("document.getElementById('decoded').toDataURL()")
    desktop.drag((start["x"], start["y"]), (start["x"] + 12, start["y"] - 8))
    assert_moved(start, desktop.evaluate("explorer.cursor()"), 12, -8)
    assert desktop.evaluate("document.getElementById('decoded').toDataURL()") != decoded


@needs_chromium
def test_the_sliders_span_every_test_code_and_hovering_moves_no_control(pages, desktop):
    page, run = pages["3D"]
    opened(desktop, page)
    sliders = desktop.evaluate("[...document.querySelectorAll('#controls input')].map(s => [+s.min, +s.max])")
    codes = run.stages[-1].codes.numpy()
    assert np.allclose(sliders, np.stack([codes.min(0), codes.max(0)], 1), rtol=1e-6)
    controls = (
        "[...document.querySelectorAll('#panels input, #panels button, #panels select')].map(e => "
        "[e.getBoundingClientRect().x, e.getBoundingClientRect().y])"
    )
    before = desktop.evaluate(controls)
    point = desktop.evaluate("explorer.point(7)")
    desktop.mouse("mouseMoved", point["x"], point["y"], "none")
    assert desktop.evaluate("explorer.state().hover") == 7
    assert desktop.evaluate(controls) == before


@needs_chromium
def test_a_right_click_picks_nothing_and_picking_a_point_twice_draws_no_line_to_itself(pages, desktop):
    opened(desktop, pages["3D"][0])
    point = desktop.evaluate("explorer.point(2)")
    desktop.click(point["x"], point["y"], button="right")
    assert desktop.evaluate("explorer.state().picks") == []
    desktop.click(point["x"], point["y"])
    desktop.click(point["x"], point["y"])
    assert desktop.evaluate("explorer.state().picks") == [2]


@needs_chromium
def test_a_picks_ring_goes_when_its_class_is_hidden(pages, desktop):
    page, run = pages["4x4"]
    opened(desktop, page)
    point = desktop.evaluate("explorer.point(9)")
    desktop.click(point["x"], point["y"])
    ring = f"""(() => {{ const c = document.getElementById('scatter'), b = c.getBoundingClientRect();
      return [...c.getContext('2d').getImageData({point["x"]} - b.left - c.clientLeft + 5,
        {point["y"]} - b.top - c.clientTop - 5, 1, 1).data.slice(0, 3)]; }})()"""  # on the ring, off the +
    assert max(desktop.evaluate(ring)) <= 60  # black, antialiased
    desktop.evaluate(f"document.querySelectorAll('#legend button')[{int(run.test_y[9])}].click()")
    assert sum(desktop.evaluate(ring)) >= 300 and desktop.evaluate("explorer.state().picks") == [9]


@needs_chromium
def test_arrow_keys_move_the_cursor_and_the_page_says_where_it_is_in_text(pages, desktop):
    opened(desktop, pages["3D"][0])
    desktop.evaluate("document.getElementById('scatter').focus()")
    start, size = desktop.evaluate("explorer.cursor()"), desktop.evaluate("explorer.state().size")
    desktop.key("ArrowRight")
    end = desktop.evaluate("explorer.cursor()")
    assert end["x"] - start["x"] == pytest.approx(0.02 * size, abs=0.5)
    said = desktop.evaluate(
        "[document.getElementById('cursor-text').textContent, "
        "document.getElementById('decoded').getAttribute('aria-label')]"
    )
    cursor = desktop.evaluate("explorer.state().cursor")
    assert said[0] == said[1] and f"Code ({cursor[0]:.3g}," in said[0] and "nearest to test images of digit" in said[0]
    attributes = desktop.evaluate(
        "[document.getElementById('scatter').getAttribute('role'), "
        "document.getElementById('scatter').getAttribute('aria-label'), "
        "document.getElementById('cursor-text').getAttribute('aria-live')]"
    )
    assert attributes == ["img", "Scatter of the codes of 20 test digits", "polite"]
    desktop.evaluate("document.querySelector('#legend button').click()")
    assert desktop.evaluate("document.querySelector('#legend button').getAttribute('aria-pressed')") == "false"


# -- What the Embedding Projector has ------------------------------------------------------------------


@needs_chromium
@pytest.mark.parametrize("name", MODELS)
def test_the_neighbours_of_a_pick_are_numpys_nearest_codes(name, pages, desktop):
    page = pages[name][0]
    opened(desktop, page)
    point = desktop.evaluate("explorer.point(4)")
    desktop.click(point["x"], point["y"])
    shown = desktop.evaluate(
        "[...document.querySelectorAll('#neighbours button')].map(b => [+b.dataset.index, +b.dataset.distance])"
    )
    codes = page_code_array(page_data(page)).astype(np.float64)  # the run's, to half a 16-bit step
    distances = np.linalg.norm(codes - codes[4], axis=1)
    distances[4] = np.inf
    nearest = np.argsort(distances, kind="stable")[:8]
    assert [i for i, _ in shown] == nearest.tolist()
    assert np.allclose([d for _, d in shown], distances[nearest], rtol=1e-6)


@needs_chromium
def test_a_test_image_is_found_by_its_number_or_its_class(pages, desktop):
    page, run = pages["3D"]
    opened(desktop, page)
    desktop.evaluate("document.getElementById('find-index').value = '12'; document.getElementById('find-go').click()")
    assert desktop.evaluate("explorer.state().picks") == [11]
    label = int(run.test_y[3])
    desktop.evaluate(
        f"document.getElementById('find-class').value = '{label}'; document.getElementById('find-next').click()"
    )
    after = next(i for i in range(12, 40) if run.test_y[i % 20] == label) % 20
    assert desktop.evaluate("explorer.state().picks")[-1] == after


@needs_chromium
def test_any_three_principal_components_are_shown_with_their_share_of_the_variance(pages, desktop):
    page, _ = pages["4x4"]
    opened(desktop, page)
    desktop.evaluate("""(() => { const set = (id, v) => { const e = document.getElementById(id);
      if (e.type === 'checkbox') e.checked = v; else e.value = v; e.dispatchEvent(new Event('change')); };
      set('turned', true); set('axis-0', '2'); set('axis-1', '4'); set('axis-2', '0'); })()""")
    state = desktop.evaluate("explorer.state()")
    assert state["axes"] == [2, 4, 0] and not state["flat"]
    variance = page_data(page)["pca"]["variance"]
    names = {label["text"] for label in desktop.evaluate("explorer.labels()")}
    assert {f"PC {k + 1} ({100 * variance[k]:.1f} %)" for k in (2, 4, 0)} <= names


@needs_chromium
def test_colouring_by_error_paints_the_best_and_worst_reconstructions_at_the_ends_of_the_ramp(pages, desktop):
    page, _ = pages["4x4"]
    opened(desktop, page)
    errors = page_array(page_data(page), "errors", "<f4")
    desktop.evaluate(
        "document.getElementById('color-by').value = 'error'; "
        "document.getElementById('color-by').dispatchEvent(new Event('change'))"
    )
    colour = """(i => { const p = explorer.point(i), c = document.getElementById('scatter'),
      b = c.getBoundingClientRect(), r = c.width / b.width;
      return [...c.getContext('2d').getImageData((p.x - b.left) * r, (p.y - b.top) * r, 1, 1).data.slice(0, 3)]; })"""
    assert desktop.evaluate(f"{colour}({int(errors.argmax())})") == [0xFD, 0xE7, 0x25]
    assert desktop.evaluate(f"{colour}({int(errors.argmin())})") == [0x44, 0x01, 0x54]


@needs_chromium
def test_the_grid_shows_the_decodings_of_the_slice_through_the_cursor_as_it_moves(pages, desktop):
    page, run = pages["3D"]
    opened(desktop, page)
    desktop.evaluate("document.getElementById('scatter').focus()")
    for key in ("ArrowUp", "ArrowRight"):
        desktop.key(key)
    desktop.evaluate("explorer.settled()")
    cursor, codes = desktop.evaluate("explorer.state().cursor"), np.array(desktop.evaluate("explorer.grid()"))
    assert codes.shape == (49, 3) and np.allclose(codes[:, 2], cursor[2])
    bounds = desktop.evaluate("explorer.state().bounds")
    assert np.allclose(codes[:7, 0], np.linspace(*bounds[0], 7))
    assert np.allclose(codes[::7, 1], np.linspace(*bounds[1], 7)[::-1])
    pixels = np.array(
        desktop.evaluate("[...document.getElementById('grid').getContext('2d').getImageData(0, 0, 196, 196).data]")
    ).reshape(7, 28, 7, 28, 4)[..., 0]
    theirs = decode_all(run.stages[-1].model, torch.tensor(codes, dtype=torch.float32)).numpy().reshape(7, 7, 28, 28)
    assert np.abs(pixels.transpose(0, 2, 1, 3) - (255 - 255 * theirs)).max() <= 0.5 + 255 * TOLERANCE
    desktop.key("ArrowUp", modifiers=8)  # shift: the turned view's up moves the third unit too
    desktop.evaluate("explorer.settled()")
    assert not np.allclose(np.array(desktop.evaluate("explorer.grid()"))[:, 2], cursor[2])


@needs_chromium
def test_two_fingers_pinch_to_zoom_and_pan_on_a_phone(pages):
    page, _ = pages["4x4"]
    with Browser(390, 844, mobile=True) as phone:
        opened(phone, page)
        box = phone.evaluate("document.getElementById('scatter').getBoundingClientRect().toJSON()")
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        phone.touch("touchStart", (x - 30, y), (x + 30, y))
        phone.touch("touchMove", (x - 60, y), (x + 60, y))
        assert phone.evaluate("explorer.state().zoom") == pytest.approx(2, rel=0.01)
        before = phone.evaluate("explorer.point(0)")
        phone.touch("touchMove", (x - 60, y + 25), (x + 60, y + 25))
        assert_moved(before, phone.evaluate("explorer.point(0)"), 0, 25)
        phone.touch("touchEnd")
        assert phone.evaluate("explorer.state().picks") == [] and phone.errors == []


# -- The decoder in the page ---------------------------------------------------------------------------


@needs_chromium
@pytest.mark.parametrize("name", [*MODELS, "1D", "8x8"])
def test_the_decoder_in_the_page_draws_pytorchs_images_within_2_of_255(name, pages, desktop, tmp_path):
    page, run = pages[name] if name in pages else (write_explorer(untrained_run(name), tmp_path, QUALITY), None)
    run = run or untrained_run(name)
    opened(desktop, page)
    codes = random_codes(run)
    ours = np.array(desktop.evaluate(f"{json.dumps(codes.tolist())}.map(explorer.decode)"))
    assert np.abs(ours - decode_all(run.stages[-1].model, codes).double().numpy()).max() < TOLERANCE
    assert desktop.errors == []


@needs_chromium
@pytest.mark.parametrize("name", MODELS)
def test_the_page_reads_back_every_test_images_bytes_and_the_codes_numpy_reads(name, pages, desktop):
    page, run = pages[name]
    opened(desktop, page)
    stored = desktop.evaluate(f"Array.from({{ length: {len(run.test_x)} }}, (_, i) => explorer.stored(i))")
    assert np.array_equal([s["image"] for s in stored], np.clip(np.rint(run.test_x.numpy() * 256), 0, 255))
    assert np.array_equal(np.array([s["code"] for s in stored], np.float32), page_code_array(page_data(page)))


@needs_chromium
@pytest.mark.parametrize("name", MODELS)
def test_a_screenshot_shows_the_coloured_points_of_the_scatter(name, pages, browser, tmp_path):
    from PIL import Image

    page, run = pages[name]
    opened(browser, page)
    box = browser.evaluate("document.getElementById('scatter').getBoundingClientRect().toJSON()")
    pixels = np.asarray(Image.open(browser.screenshot(tmp_path / "shot.png")).convert("RGB"))
    scatter = pixels[int(box["top"]) : int(box["bottom"]), int(box["left"]) : int(box["right"])].reshape(-1, 3)
    colors = [tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in page_data(page)["colors"]]
    painted = {k: (scatter == color).all(1).sum() for k, color in enumerate(colors)}
    assert all(painted[k] >= 4 for k in set(run.test_y.tolist())), painted  # a point is 6x6 pixels


@needs_chromium
def test_the_benchmark_reports_a_pages_weight_load_and_decode_times(pages, capsys):
    import bench_explorer

    page = pages["3D"][0]
    assert bench_explorer.main([str(page), "--repeats", "1"]) == 0
    report = capsys.readouterr().out
    assert re.search(
        rf"{re.escape(str(page))}: {page.stat().st_size:,} bytes; ready after \d+ to \d+ ms .*"
        r"decoding a code [\d.]+ to [\d.]+ ms .*errors: none",
        report,
    )
    assert re.search(
        r"where the bytes go: test images [\d.]+ MB, .*Rice bits a weight by layer( [\d.]+,?){6}\)", report
    )
    assert bench_explorer.main([str(page.with_name("missing.html"))]) == 1


# -- The plot scripts --------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_plot_scripts_write_the_explorer_beside_the_figures_the_same_bytes_each_time(
    trained_output, tiny_mnist, tmp_path
):
    for path in trained_output.iterdir():
        (tmp_path / path.name).symlink_to(path)
    common = ["--output-dir", str(tmp_path), "--data", str(tiny_mnist), "--device", "cpu", "--format", "png"]
    assert plot_4x4.main([*common, "--no-explorer"]) == 0
    assert not (tmp_path / "4x4_explorer.html").exists()
    assert plot_3D.main(common) == 0
    page = tmp_path / "3D_explorer.html"
    first = page.read_bytes()
    data = page_data(page)
    model = load_model(trained_output / "auto_encoder_3D_weights.pt")
    assert data["count"] == 20 and "trained for 2 epochs (modern recipe) on all 60 training images" in page_text(page)
    codes = torch.rand(10, 3, generator=torch.Generator().manual_seed(0)) * 4 - 2
    assert np.abs(page_decoder(data)(codes.numpy()) - decode_all(model, codes).double().numpy()).max() < TOLERANCE
    assert plot_3D.main(common) == 0
    assert page.read_bytes() == first


# -- As a script: the screenshots in docs/results/ and the numbers of docs/explorer.md ------------------


def demo(browser: Browser, page: Path) -> None:
    """The page as a user leaves it: two test images found and picked, the cursor moved off the second
    with the arrow keys, the pointer over a third image."""
    opened(browser, page)
    for number in (1, 2):
        browser.evaluate(
            f"document.getElementById('find-index').value = '{number}'; document.getElementById('find-go').click()"
        )
    browser.evaluate("document.getElementById('scatter').focus()")
    for key in ("ArrowUp", "ArrowUp", "ArrowRight"):
        browser.key(key)
    point = browser.evaluate("explorer.point(3)")
    browser.evaluate("document.activeElement.blur()")
    browser.mouse("mouseMoved", point["x"], point["y"], "none")
    browser.evaluate("explorer.settled()")


def measure(output_dir: Path, screenshots: Path) -> None:
    """Screenshots of a run's explorers at each window size, and each page's weight and its decoder's
    largest difference from PyTorch: in the browser on 100 random codes, in Python on 3,000 others,
    and on every test image decoded from its stored (16-bit) code against PyTorch's reconstruction."""
    for name in MODELS:
        page = output_dir / f"{name}_explorer.html"
        model = load_model(OutputPaths.of(output_dir, name).weights, "cpu", name)
        data, test_x = page_data(page), torch.from_numpy(load_dataset("mnist", None).test_x)
        codes = torch.from_numpy(page_code_array(data))
        reconstructions = decode_all(model, encode_all(model, test_x))
        random = box_codes(codes, 100, seed=0)
        prefix = "" if name == "3D" else f"{name}-"
        for size, (width, height, mobile) in SIZES.items():
            with Browser(width, height, mobile=mobile) as browser:
                demo(browser, page)
                browser.screenshot(screenshots / f"{prefix}explorer-{size}.png")
                if size == "1400x900":
                    browser.screenshot(screenshots / f"{name}_explorer.png")
                    ours = np.array(browser.evaluate(f"{json.dumps(random.tolist())}.map(explorer.decode)"))
                    every = f"Array.from({{ length: {len(test_x)} }}, (_, i) => explorer.stored(i).image)"
                    read = browser.evaluate(every)
                errors = browser.errors
        same = np.array_equal(read, np.rint(test_x.numpy() * 256))
        print(f"{page}: {page.stat().st_size:,} bytes; errors: {errors or 'none'}")
        print(f"  the test images as the page reads them: {'' if same else 'NOT '}MNIST's bytes")
        stored = page_decoder(page_data(page))
        others = box_codes(codes, 3000, seed=7)
        for what, drawn, theirs in (
            ("100 random codes (in the browser)", ours, decode_all(model, random)),
            ("3,000 other random codes", stored(others.numpy()), decode_all(model, others)),
            ("every test image from its stored code", stored(codes.numpy()), reconstructions),
        ):
            theirs = theirs.double().numpy()
            shown = np.abs(np.round(255 * drawn) - np.round(255 * theirs)).max()
            print(
                f"  largest difference from PyTorch on {what}: "
                f"{np.abs(drawn - theirs).max() * 255:.3f}/255 ({shown:.0f} grey levels as drawn)"
            )


if __name__ == "__main__":
    if CHROMIUM is None:
        sys.exit("no Chromium here: apt-get install chromium")
    measure(Path(sys.argv[1]), Path(sys.argv[2] if len(sys.argv) > 2 else "docs/results"))
