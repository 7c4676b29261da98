"""Bad input besides data: untrusted pickles, impossible options, and outputs the plot scripts
cannot use. Each ends with one clear `error:` line, a non-zero exit, no traceback, and nothing
overwritten. Nothing here trains: the plot scripts get untrained weights."""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import auto_encoder
import plot_3D
import plot_4x4
import plot_training
from autoencoder.errors import UserError
from autoencoder.files import OutputPaths, load_info, save_info
from autoencoder.model import DEFAULT_MODELS, AutoEncoder, load_lasagne_weights, load_model, save_model
from conftest import assert_refused, run_trainer, tiny_splits, truncated

# -- Untrusted pickles -----------------------------------------------------------------


class CreatesAFile:
    """Unpickling this calls open(path, "w"): a stand-in for any code a pickle could run."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


class RunsAShellCommand:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


@pytest.fixture(params=[CreatesAFile, RunsAShellCommand, "object array"])
def payload(request, tmp_path):
    """Something that, unpickled without care, creates the file `marker`."""
    marker = tmp_path / "pwned"
    if request.param == "object array":  # hidden inside a NumPy array of objects
        return np.array([0.1, CreatesAFile(marker)], dtype=object), marker
    return request.param(marker), marker


def test_a_loss_pickle_that_would_run_code_is_refused_without_running_it(tmp_path, payload):
    evil, marker = payload
    path = tmp_path / "auto_encoder_3D_info.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump({"training loss": [0.1], "validation loss": evil}, f)
    with pytest.raises(UserError, match="refusing to load"):
        load_info(path)
    assert not marker.exists()


def test_a_weights_file_that_would_run_code_is_refused_without_running_it(tmp_path, payload):
    evil, marker = payload
    path = tmp_path / "auto_encoder_2D_weights.pt"
    torch.save({"code": "2D", "recipe": "modern", "state_dict": {}, "x": evil}, path)
    with pytest.raises(UserError, match="is not a weights file of this suite"):
        load_model(path)
    assert not marker.exists()


def test_a_data_pickle_or_checkpoint_that_would_run_code_is_refused_by_the_trainer(
    tmp_path, tiny_mnist, payload, out, capsys
):
    evil, marker = payload
    data = tmp_path / "mnist.pkl.gz"
    with gzip.open(data, "wb") as f:
        pickle.dump((tiny_splits()[0], tiny_splits()[1], (evil, [1])), f)
    assert run_trainer(out, "--data", str(data)) == 2
    assert_refused(capsys.readouterr().err, out, "refusing to load")
    checkpoint = OutputPaths.of(out, "3D").checkpoint
    torch.save({"config": {}, "x": evil}, checkpoint)
    assert run_trainer(out, "--data", str(tiny_mnist), "--resume") == 2
    assert "cannot be read" in capsys.readouterr().err
    assert not marker.exists()


def test_original_lasagne_weights_that_would_run_code_are_refused(tmp_path, payload):
    evil, marker = payload
    path = tmp_path / "auto_encoder_3D_weights.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump([evil], f, protocol=2)
    with pytest.raises(UserError, match="refusing to load"):
        load_lasagne_weights(AutoEncoder("3D", "original"), path)
    assert not marker.exists()


# -- Options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option",
    [
        ["--epochs", "0"],
        ["--epochs", "-3"],
        ["--epochs", "2.5"],
        ["--batch-size", "0"],
        ["--batch-size", "-20"],
        ["--limit", "0"],
        ["--limit", "-1"],
        ["--lr", "0"],
        ["--lr", "-1"],
        ["--lr", "inf"],
        ["--weight-decay", "-0.1"],
        ["--weight-decay", "nan"],
        ["--seed", "-1"],
        ["--seed", str(2**64)],
        ["--checkpoint-interval", "-1"],
        ["--recipe", "fancy"],
        ["--precision", "fp16"],
        ["--epochs"],
        ["--dataset", "cifar10"],
    ],
)
def test_an_impossible_option_value_is_one_error_line(option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        auto_encoder.parse_args(option)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert "Traceback" not in err and len(errors) == 1 and option[0] in errors[0]


@pytest.mark.parametrize("model", ["5x4", "0D", "3D,banana", ",", "3 D"])
def test_an_unknown_model_is_refused_before_anything_is_written(model, tiny_mnist, out, capsys):
    assert run_trainer(out, "--data", str(tiny_mnist), "--model", model) == 2
    assert_refused(capsys.readouterr().err, out, "model")


@pytest.mark.parametrize("device", ["cuda", "cuda:99", "mps", "tpu", "cuda:x", "meta"])
def test_a_device_that_is_not_there_is_refused_before_anything_is_written(device, tiny_mnist, out, capsys):
    kind = device.split(":")[0]
    if (kind == "cuda" and device != "cuda:99" and torch.cuda.is_available()) or (
        kind == "mps" and torch.backends.mps.is_available()
    ):
        pytest.skip(f"this machine has {kind}")
    assert run_trainer(out, "--data", str(tiny_mnist), "--device", device) == 2
    assert_refused(capsys.readouterr().err, out, repr(device))


def test_an_output_folder_below_a_regular_file_is_one_error_line(tmp_path, tiny_mnist, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    assert run_trainer(blocker / "out", "--data", str(tiny_mnist)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --output-dir {blocker / 'out'}: {blocker} is a file, not a folder")
    assert len(err.strip().splitlines()) == 1 and blocker.read_text() == "a file, not a folder"


@pytest.fixture
def read_only(out: Path):
    """`out` mounted read-only over itself (root only; chmod does not stop root)."""
    if subprocess.run(["mount", "--bind", "-o", "ro", str(out), str(out)], capture_output=True).returncode != 0:
        pytest.skip("a read-only bind mount needs root")
    yield out
    subprocess.run(["umount", str(out)], check=True)


def test_a_read_only_output_folder_is_one_error_line_and_its_files_stay(read_only, tiny_mnist, capsys):
    assert run_trainer(read_only, "--data", str(tiny_mnist), "--device", "cpu") == 1
    err = capsys.readouterr().err
    line = [line for line in err.splitlines() if "error:" in line]
    assert "Traceback" not in err and len(line) == 1
    assert (
        line[0].startswith(f"error: cannot write {read_only}/auto_encoder_3D") and "(Read-only file system)" in line[0]
    )
    assert (read_only / "auto_encoder_3D.txt").read_text() == "previous run\n"


# -- Outputs given to the plot scripts (their absence: tests/test_plots.py) -------------

PLOTS = {"plot_training.py": plot_training, "plot_3D.py": plot_3D, "plot_4x4.py": plot_4x4}


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Weights of both default models, saved once; untrained ones do for these cases."""
    folder = tmp_path_factory.mktemp("weights")
    for model in DEFAULT_MODELS:
        save_model(folder / f"{model}.pt", AutoEncoder(model), "mnist")
    return {model: folder / f"{model}.pt" for model in DEFAULT_MODELS}


@pytest.fixture
def outputs(tmp_path: Path, untrained: dict[str, Path]) -> Path:
    """An output folder as two epochs of training leave it, for both default models."""
    out = tmp_path / "out"
    out.mkdir()
    for model, weights in untrained.items():
        paths = OutputPaths.of(out, model)
        os.link(weights, paths.init)
        os.link(weights, paths.weights)
        save_info(
            paths.info,
            {
                "training loss": [0.2, 0.1],
                "validation loss": [0.2, 0.1],
                "epoch time": [1.0, 1.0],
                "test mse": 0.1,
                "config": {"model": model, "dataset": "mnist"},
            },
        )
    torch.save(
        {"codes": torch.zeros(3, 20, 3, dtype=torch.float16), "config": {"model": "3D", "dataset": "mnist"}},
        OutputPaths.of(out, "3D").codes,
    )
    return out


def run_plot(script: str, out: Path, data: Path, *argv: str) -> int:
    return PLOTS[script].main(
        ["--output-dir", str(out), "--data", str(data), "--device", "cpu", "--format", "png", *argv]
    )


def assert_plot_refused(err: str, out: Path, before: dict, *fragments: str) -> None:
    """One `error:` line; every training output as it was (new figures may have been drawn)."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and all(f in lines[0] for f in fragments), err
    assert {name: stamp for name, stamp in stamps(out).items() if name in before} == before
    assert not list(out.glob(".*.tmp"))


def stamps(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.mark.parametrize(
    "script, model, other",
    [("plot_3D.py", "3D", "4x4"), ("plot_4x4.py", "4x4", "3D"), ("plot_training.py", "3D", "4x4")],
)
def test_weights_of_the_other_model_are_refused_by_the_plot_scripts(
    script, model, other, outputs, tiny_mnist, untrained, capsys
):
    weights = OutputPaths.of(outputs, model).weights
    weights.unlink()
    os.link(untrained[other], weights)
    before = stamps(outputs)
    assert run_plot(script, outputs, tiny_mnist) == 2
    assert_plot_refused(capsys.readouterr().err, outputs, before, f"holds the {other} model, not {model}")


@pytest.mark.parametrize("script", PLOTS)
def test_a_truncated_weights_file_is_refused_by_the_plot_scripts(script, outputs, tiny_mnist, capsys):
    model = "4x4" if script == "plot_4x4.py" else "3D"
    weights = OutputPaths.of(outputs, model).weights
    data = weights.read_bytes()
    weights.unlink()  # the init weights are a link to the same file: keep them whole
    truncated(weights, data)
    before = stamps(outputs)
    assert run_plot(script, outputs, tiny_mnist) == 2
    assert_plot_refused(capsys.readouterr().err, outputs, before, str(weights), "is damaged or truncated")


FOREIGN_INFO = {
    # name: (what another tool might have left as the info pickle, what the message says)
    "a list of losses": (lambda p: save_info(p, [0.2, 0.1]), "is not a training-info pickle"),
    "a dict with other keys": (
        lambda p: save_info(p, {"loss": [0.2], "val_loss": [0.1]}),
        "is not a training-info pickle",
    ),
    "losses that are not numbers": (
        lambda p: save_info(p, {"training loss": ["low"], "validation loss": []}),
        "holds losses that are not numbers",
    ),
    "a PyTorch file": (lambda p: torch.save({"training loss": torch.ones(2)}, p), "is not a readable pickle"),
    "a truncated gzip": (
        lambda p: save_info(p, {"training loss": [0.2]}) or truncated(p, p.read_bytes()),
        "is not a readable pickle",
    ),
}


@pytest.mark.parametrize("script", ["plot_training.py", "plot_3D.py"])
@pytest.mark.parametrize("case", FOREIGN_INFO)
def test_a_loss_pickle_from_another_tool_is_refused_by_the_plot_scripts(script, case, outputs, tiny_mnist, capsys):
    make, fragment = FOREIGN_INFO[case]
    info = OutputPaths.of(outputs, "3D").info
    make(info)
    before = stamps(outputs)
    assert run_plot(script, outputs, tiny_mnist, "--model", "3D") == 2
    assert_plot_refused(capsys.readouterr().err, outputs, before, str(info), fragment)


def test_a_loss_pickle_that_would_run_code_is_refused_by_plot_training(outputs, tiny_mnist, payload, capsys):
    evil, marker = payload
    other = outputs.parent / "auto_encoder_3D_info.pkl.gz"
    with gzip.open(other, "wb") as f:
        pickle.dump({"training loss": [0.1], "validation loss": [evil]}, f, protocol=2)
    before = stamps(outputs)
    assert run_plot("plot_training.py", outputs, tiny_mnist, "--info", str(other)) == 2
    assert_plot_refused(capsys.readouterr().err, outputs, before, "refusing to load")
    assert not marker.exists()


def test_a_truncated_codes_trace_is_refused_by_plot_3D(outputs, tiny_mnist, capsys):
    codes = OutputPaths.of(outputs, "3D").codes
    truncated(codes, codes.read_bytes())
    before = stamps(outputs)
    assert run_plot("plot_3D.py", outputs, tiny_mnist) == 2
    assert_plot_refused(capsys.readouterr().err, outputs, before, str(codes))
