"""Training: the output contract, determinism, resuming, signals, divergence and bad options."""

from __future__ import annotations

import io
import re
import shutil
import signal
import warnings

import pytest
import torch

import auto_encoder
from autoencoder import checkpoint, progress, training
from autoencoder.checkpoint import Checkpoints
from autoencoder.datasets import DATASETS
from autoencoder.device import CPU_BF16_PROBES, cpu_has_fast_bf16, resolve_precision
from autoencoder.files import OutputPaths, load_info
from autoencoder.model import load_model
from autoencoder.recipes import RECIPES, TrainConfig
from conftest import ROOT, TINY_SIZES, codes_of, signal_at_step, train


@pytest.mark.slow
def test_every_contract_file_is_written_for_both_models(trained_output):
    for model in ("3D", "4x4"):
        paths = OutputPaths.of(trained_output, model)
        for path in (paths.log, paths.info, paths.init, paths.weights):
            assert path.stat().st_size > 0, path
        assert not paths.checkpoint.exists()  # a finished model keeps its results, not its checkpoint
    assert not list(trained_output.glob(".*.tmp"))


@pytest.mark.slow
def test_the_info_pickle_keeps_the_original_keys_and_adds_the_test_mse(trained_output):
    info = load_info(OutputPaths.of(trained_output, "3D").info)
    assert len(info["training loss"]) == len(info["validation loss"]) == len(info["epoch time"]) == 2
    assert 0 < info["test mse"] < 1
    assert info["config"]["model"] == "3D" and info["config"]["recipe"] == "modern"


@pytest.mark.slow
def test_vector_codes_train_at_the_higher_default_peak_lr_and_image_codes_at_the_lower(trained_output):
    lrs = {m: load_info(OutputPaths.of(trained_output, m).info)["config"]["lr"] for m in ("3D", "4x4")}
    assert lrs == {"3D": RECIPES["modern"].lr, "4x4": RECIPES["modern"].image_code_lr}


@pytest.mark.parametrize("model, default_lr", [("3D", RECIPES["modern"].lr), ("4x4", RECIPES["modern"].image_code_lr)])
def test_an_explicit_lr_applies_to_every_code(model, default_lr):
    def lrs(*argv: str) -> list[float]:
        args = auto_encoder.parse_args(["--model", model, *argv])
        return [c.lr for c in auto_encoder.configs_from_args(args, "cpu", "fp32")]

    assert lrs() == [default_lr] != [0.03]
    assert lrs("--lr", "0.03") == [0.03]
    assert TrainConfig(model, lr=0.03).lr == 0.03


@pytest.mark.slow
def test_the_log_has_the_original_layout(trained_output):
    log = OutputPaths.of(trained_output, "4x4").log.read_text().splitlines()
    assert log[0].startswith("Started: ")
    assert any(line.split()[:1] == ["Epoch"] and line.split()[1:] == ["TL", "VL", "Time"] for line in log)
    assert [line.split()[0] for line in log if line[:1].isdigit() and len(line.split()) == 4] == ["1", "2"]
    assert log[-2].startswith("MSE on test data (fp32): ") and "Recipe: modern" in "\n".join(log)


@pytest.mark.slow
def test_weights_before_and_after_load_safely_and_differ(trained_output):
    paths = OutputPaths.of(trained_output, "3D")
    before, after = load_model(paths.init, expect_code="3D"), load_model(paths.weights, expect_code="3D")
    assert not torch.equal(before.code.weight, after.code.weight)
    assert set(torch.load(paths.weights, weights_only=True)) == {"code", "recipe", "dataset", "run_id", "state_dict"}


@pytest.mark.slow
def test_codes_of_small_vector_codes_are_traced_every_epoch(trained_output):
    codes = codes_of(OutputPaths.of(trained_output, "3D").codes)
    assert codes.shape == (3, TINY_SIZES["test"], 3)  # init + 2 epochs
    assert not OutputPaths.of(trained_output, "4x4").codes.exists()


@pytest.mark.slow
def test_the_same_seed_gives_the_same_numbers(tmp_path, tiny_mnist, trained_output):
    assert train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "2") == 0
    again, first = (load_info(OutputPaths.of(d, "3D").info) for d in (tmp_path, trained_output))
    assert again["training loss"] == first["training loss"]
    assert again["test mse"] == first["test mse"]


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(tmp_path, tiny_mnist, monkeypatch, capsys):
    signal_at_step(monkeypatch, 5)  # epoch 2, step 2 of 3
    assert train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "2") == 128 + signal.SIGTERM
    assert "--resume" in capsys.readouterr().err
    state = torch.load(OutputPaths.of(tmp_path, "3D").checkpoint, weights_only=True)
    assert state["epoch"] == 1 and state["partial"]["step"] == 2
    assert not OutputPaths.of(tmp_path, "3D").weights.exists()


@pytest.mark.slow
def test_an_interrupted_and_resumed_run_ends_exactly_like_an_uninterrupted_one(
    tmp_path, tiny_mnist, monkeypatch, trained_output
):
    signal_at_step(monkeypatch, 5)
    assert train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "2") == 128 + signal.SIGTERM
    monkeypatch.undo()
    assert train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "2", "--resume") == 0
    resumed, straight = (OutputPaths.of(d, "3D") for d in (tmp_path, trained_output))
    assert load_info(resumed.info)["training loss"] == load_info(straight.info)["training loss"]
    assert load_info(resumed.info)["validation loss"] == load_info(straight.info)["validation loss"]
    for name, tensor in load_model(resumed.weights).state_dict().items():
        assert torch.equal(tensor, load_model(straight.weights).state_dict()[name]), name


@pytest.mark.slow
def test_a_diverging_loss_stops_training_with_a_clear_message(tmp_path, tiny_mnist, capsys):
    code = train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "2", "--recipe", "original", "--lr", "1e30")
    err = capsys.readouterr().err
    assert code == 3 and "lower --lr and rerun with --resume" in err and "Traceback" not in err
    assert not OutputPaths.of(tmp_path, "3D").weights.exists()


@pytest.mark.parametrize(
    "option",
    [
        ["--epochs", "0"],
        ["--batch-size", "-5"],
        ["--limit", "0"],
        ["--lr", "nan"],
        ["--recipe", "fancy"],
        ["--precision", "fp8"],
    ],
)
def test_invalid_option_values_are_one_line_errors(option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        auto_encoder.parse_args(option)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err  # no usage block above it
    assert err.startswith("error: ") and "python auto_encoder.py --help" in err


def test_an_unknown_model_is_a_one_line_error(tmp_path, tiny_mnist, capsys):
    assert train(tmp_path, tiny_mnist, "--model", "4x5") == 2
    assert capsys.readouterr().err.startswith("error: unknown model '4x5'")


class FakeClock:
    """Stands in for the time module of the training loop and the checkpoint: each training step
    takes `step` seconds."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def monotonic(self) -> float:
        return self.now

    perf_counter = monotonic


@pytest.mark.slow
def test_a_checkpoint_is_saved_once_the_interval_has_passed_and_after_the_last_epoch(tmp_path, tiny_mnist, monkeypatch):
    clock, saved_after = FakeClock(step=10.0), []  # 3 steps an epoch: 30 s
    real_step, real_save = training.train_step, Checkpoints.save

    def train_step(state, x):
        clock.now += clock.step
        return real_step(state, x)

    def save_checkpoint(checkpoints, state):
        saved_after.append(state.epochs_done)
        real_save(checkpoints, state)

    monkeypatch.setattr(training, "time", clock)
    monkeypatch.setattr(checkpoint, "time", clock)
    monkeypatch.setattr(training, "train_step", train_step)
    monkeypatch.setattr(Checkpoints, "save", save_checkpoint)
    assert train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "5") == 0
    assert saved_after == [2, 4, 5]  # 60 s after the start, 60 s later, and at the end
    saved_after.clear()
    assert train(tmp_path / "every", tiny_mnist, "--model", "3D", "--epochs", "3", "--checkpoint-interval", "0") == 0
    assert saved_after == [1, 2, 3]


@pytest.mark.slow
def test_resuming_a_finished_model_says_in_one_line_that_it_only_re_evaluates(
    tmp_path, tiny_mnist, trained_output, capsys
):
    out = tmp_path / "out"
    shutil.copytree(trained_output, out)
    assert train(out, tiny_mnist, "--model", "3D", "--epochs", "2", "--resume") == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "already trained" in line]
    assert said == [
        "3D: already trained for 2 epochs; --resume only re-evaluates it and rewrites its results, which keep "
        "the settings it was trained with"
    ]


@pytest.mark.slow
def test_a_refused_resume_says_not_set_for_an_option_left_out(tmp_path, tiny_mnist, trained_output, capsys):
    out = tmp_path / "out"
    shutil.copytree(trained_output, out)
    assert train(out, tiny_mnist, "--model", "3D", "--epochs", "2", "--limit", "40", "--resume") == 2
    assert "limit not set (now 40)" in capsys.readouterr().err


def test_the_original_recipe_refuses_a_weight_decay_it_would_ignore(tmp_path, tiny_mnist, capsys):
    assert train(tmp_path, tiny_mnist, "--recipe", "original", "--weight-decay", "0.1") == 2
    assert capsys.readouterr().err.startswith("error: --weight-decay applies to the modern recipe's AdamW")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_config_is_stored_whole_in_the_info_pickle_and_the_checkpoint(
    trained_output, tmp_path, tiny_mnist, monkeypatch
):
    paths = OutputPaths.of(trained_output, "4x4")
    stored = load_info(paths.info)["config"]
    assert TrainConfig(**stored) == TrainConfig(
        "4x4",
        batch_size=20,
        epochs=2,
        precision="fp32",
        device="cpu",
        output_dir=str(trained_output),
        data_sha256=stored["data_sha256"],
    )
    signal_at_step(monkeypatch, 4)  # a checkpoint stays only while a run is unfinished
    assert train(tmp_path, tiny_mnist, "--model", "4x4", "--epochs", "2") == 128 + signal.SIGTERM
    saved = torch.load(OutputPaths.of(tmp_path, "4x4").checkpoint, weights_only=True)["config"]
    assert saved == {**stored, "output_dir": str(tmp_path)}


@pytest.mark.slow
def test_without_a_terminal_each_epoch_is_one_plain_line(tmp_path, tiny_mnist, capsys):
    assert train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "2") == 0
    captured = capsys.readouterr()
    for text in (captured.out, captured.err):
        assert "\r" not in text and "\x1b" not in text
    lines = [line for line in captured.out.splitlines() if line.startswith("3D epoch")]
    assert len(lines) == 2 and re.fullmatch(
        r"3D epoch 2/2: training loss \d\.\d{5}, validation loss \d\.\d{5}, \d+\.\d s", lines[1]
    )


def test_without_a_terminal_a_long_epoch_also_reports_now_and_then(monkeypatch):
    clock, lines = FakeClock(step=0), io.StringIO()
    monkeypatch.setattr(progress, "time", clock)
    reporter = progress.LineProgress(lines)
    reporter.model_started("3D", 46, 0)
    reporter.epoch_started(1, 100, 0)
    for step in range(1, 101):
        clock.now += 1.5  # a 150 s epoch
        reporter.step(step, lambda: 0.25)
    assert lines.getvalue().splitlines() == [f"3D epoch 1/46: batch {b}/100, loss 0.25000" for b in (40, 80)]


def test_the_batch_bar_shows_the_loss_of_the_last_step_without_a_sync_per_step():
    bar, fetched = progress.BarProgress(io.StringIO()), []
    bar.model_started("3D", 2, 0)
    bar.epoch_started(1, 3, 0)
    for step, loss in enumerate((0.3, 0.2, 0.1), start=1):
        bar.step(step, lambda loss=loss: fetched.append(loss) or loss)
    assert fetched == [0.3, 0.1]  # the first step, then (within the interval) only the last one
    assert bar.batches.postfix == "loss=0.1000"
    bar.model_ended()


def test_a_torch_without_the_private_cpu_probes_falls_back_to_fp32_and_says_so_once(monkeypatch, capsys):
    for probe in CPU_BF16_PROBES:
        monkeypatch.delattr(torch.cpu, probe, raising=False)
    cpu_has_fast_bf16.cache_clear()  # the answer is kept for the process: ask afresh
    try:
        assert [resolve_precision("auto", torch.device("cpu")) for _ in range(3)] == ["fp32"] * 3
    finally:
        cpu_has_fast_bf16.cache_clear()
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(said) == 1 and "_is_avx512_bf16_supported" in said[0] and "--precision bf16" in said[0]


def test_a_deprecation_or_future_warning_from_the_project_fails_the_suite():
    for category in (DeprecationWarning, FutureWarning):
        with pytest.raises(category):
            warnings.warn_explicit("going away", category, "autoencoder/device.py", 1, module="autoencoder.device")


def recipe_table_rows() -> list[tuple[str, list[str]]]:
    """docs/recipes.md's rows of every value, as the table in autoencoder/recipes.py gives them."""

    def shown(value: object) -> str:
        if value is None:
            return "–"
        if isinstance(value, tuple):
            return ", ".join(f"{v:g}" for v in value)
        if isinstance(value, dict):  # dataset: {key: value}
            return (
                "; ".join(
                    f"{dataset}: " + ", ".join(f"{key} {v:g}" for key, v in values.items())
                    for dataset, values in value.items()
                )
                or "–"
            )
        return f"{value:g}" if isinstance(value, float) else str(value)

    return [
        (name, [shown(getattr(RECIPES[r], name)) for r in ("original", "modern")])
        for name in RECIPES["modern"].__dataclass_fields__
    ]


def test_the_recipes_page_lists_every_value_of_the_recipe_table():
    page = (ROOT / "docs" / "recipes.md").read_text().splitlines()
    for name, values in recipe_table_rows():
        rows = [line for line in page if line.startswith(f"| `{name}`")]
        assert len(rows) == 1, f"docs/recipes.md has no row for {name}"
        assert [cell.strip() for cell in rows[0].strip("|").split("|")[1:]] == values, rows[0]


def test_large_vector_codes_take_the_values_measured_on_their_dataset_and_the_others_keep_theirs():
    def values(model: str, dataset: str = "mnist") -> tuple:
        config = TrainConfig(model, dataset=dataset)
        return config.epochs, config.weight_decay, config.dropout

    small_code_values = (46, 0.1, 0.1)
    for model in ("30D", "64D"):  # docs/recipes.md has the trials behind each
        assert values(model) == (70, 0.5, 0.0)
        assert values(model, "fashion-mnist") == (46, 0.3, 0.0)  # the digits' values diverge on clothes
        assert values(model, "kmnist") == small_code_values  # not measured at 30+ units
    for dataset in DATASETS:
        for model in ("3D", "16D", "4x4", "8x8"):  # 8x8 is 64 units, but an image code
            assert values(model, dataset) == small_code_values
    assert TrainConfig("30D", weight_decay=0.2, dropout=0.05).weight_decay == 0.2
