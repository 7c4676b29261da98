"""Invariants of the trainer, not examples (issue 25, section 3): Hypothesis draws command lines
from the whole option space (codes ND and KxK, --limit, --batch-size, --epochs, recipe, dataset,
precision, --data in each format of each dataset, --resume/--restart) and sequences of runs,
interruptions and changed options, and checks that

- no valid command line ends in a traceback, and the configuration and dataset recorded in the
  info, the log, the weights and the codes file equal what trained the weights;
- every invalid command line exits 2 with one `error:` line and changes no file;
- a run interrupted at any step (SIGTERM, SIGINT, or a crash that saves nothing) or killed just
  before any file write, then resumed as the trainer says, ends bit for bit where the uninterrupted
  run ends;
- an output folder never holds files of two runs of one model, and the plot scripts' loader
  accepts every finished run in it.

Why the model is shrunk: these invariants are about the command line and the records, not the
widths, and the real 23 M-parameter model (93 MB a weights file) would allow a handful of examples
where hundreds are needed. So this module narrows the dense layers (autoencoder.model's
ENCODER_WIDTHS, DECODER_WIDTHS and DROPOUT_MIN_WIDTH, read when a model is built; the convolution
stays, so CONV_FEATURES does too): a tiny run takes a tenth of a second. One slow test trains on
the real widths. Torch runs on one thread here: runs compared bit for bit need the same thread
count, and one thread is also the fastest on a busy 2-core machine.

Data: three tiny datasets (50 training, 10 validation, 20 test images; tiny_splits with seeds
0, 1, 2) as MNIST, Fashion-MNIST and KMNIST, each as a pickle, an IDX folder (written by the
product's store_in_cache) and a Keras-style .npz. The first two are registered in
autoencoder.datasets.KNOWN_DATA, as the real ones are, so giving one dataset's files for the other
is refused; the tiny KMNIST stays unknown, as the real one is, and trains as whatever --dataset says.

Tiers: the quick tier runs a fixed, derandomized set of examples (TIERS["quick"]); the slow tier
(@pytest.mark.slow) runs the same properties with many more.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shlex
import shutil
import signal
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("hypothesis", reason="Hypothesis is a test-only dependency of this module")
import hypothesis
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from test_faults import log_rows  # (it also skips this module where there are no POSIX signals)

import auto_encoder
import autoencoder.datasets
import autoencoder.files
import autoencoder.model
from autoencoder import training
from autoencoder.datasets import DATASETS, Splits, read_dataset
from autoencoder.device import resolve_precision
from autoencoder.files import OutputPaths, load_info
from autoencoder.model import count_parameters, load_model, parse_code, parse_models
from autoencoder.recipes import CHECKPOINT_INTERVAL, RESUME_KEYS, TrainConfig
from autoencoder.run_files import changes_text
from autoencoder.sources import store_in_cache
from autoencoder.trained_run import load_trained_run
from autoencoder.training import batch_count
from conftest import assert_same_weights, codes_of, tiny_splits, truncated, weights_of, write_mnist_pickle

SMALL_WIDTHS = {"ENCODER_WIDTHS": (16, 16, 8, 8), "DECODER_WIDTHS": (8, 8, 16, 16, 32), "DROPOUT_MIN_WIDTH": 16}
REAL_WIDTHS = {name: getattr(autoencoder.model, name) for name in SMALL_WIDTHS}
N_TRAIN, N_TEST = 50, 20  # and 10 validation images
SOURCES = {"mnist": 0, "fashion-mnist": 1, "kmnist": 2}  # the tiny datasets and their tiny_splits seeds
KNOWN_SOURCES = ("mnist", "fashion-mnist")  # registered in KNOWN_DATA, as the real ones are
FORMATS = ("pickle", "idx", "npz")
SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}


@dataclass(frozen=True)
class Tier:
    invalid: int  # examples of each property
    valid: int
    resumed: int  # ... for each way of stopping the first command
    sequences: int  # state-machine runs ...
    steps: int  # ... of at most this many commands


TIERS = {
    "quick": Tier(invalid=110, valid=55, resumed=7, sequences=12, steps=6),
    "slow": Tier(invalid=1000, valid=400, resumed=40, sequences=60, steps=12),
}
TIER_PARAMS = [pytest.param("quick", id="quick"), pytest.param("slow", id="slow", marks=pytest.mark.slow)]


def check(examples: int, strategy: st.SearchStrategy, prop) -> None:
    """Run `prop` on `examples` derandomized draws of `strategy` (the same set on every run)."""

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(strategy)
    def each(case):
        prop(case)

    each()


# -- The small world: narrow model, tiny datasets, a folder for the working directory --------


@dataclass
class World:
    """The tiny datasets' files, their sha256 (Splits.sha256), and the folders examples work in."""

    files: dict[tuple[str, str], Path]  # (source, format) -> path
    sha: dict[str, str]  # source -> sha256 of its images
    train_x: dict[str, np.ndarray]  # source -> its 50 training images, then its 10 validation images
    scratch: Path  # where each example makes its own folder
    cwd: Path  # the working directory: nothing may appear in it
    references: dict[tuple, Path] = field(default_factory=dict)  # uninterrupted runs by configuration

    def data(self, source: str, fmt: str = "pickle") -> Path:
        return self.files[source, fmt]

    def source_of(self, sha: str) -> str:
        return next(source for source, digest in self.sha.items() if digest == sha)


def tiny_dataset(source: str) -> Splits:
    train, _, test = tiny_splits(SOURCES[source])
    (x, y), (test_x, test_y) = train, test
    return Splits(x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:], test_x, test_y, source="tiny", dataset=source)


def write_formats(splits: Splits, folder: Path) -> dict[str, Path]:
    """The dataset as a deeplearning.net pickle, an IDX folder and a Keras-style .npz."""
    folder.mkdir(parents=True)
    pickle_path = write_mnist_pickle(
        folder / "data.pkl.gz",
        [(splits.train_x, splits.train_y), (splits.valid_x, splits.valid_y), (splits.test_x, splits.test_y)],
    )
    as_bytes = {
        name: np.round(x * 256).astype(np.uint8).reshape(len(x), 28, 28)
        for name, x in (("train", np.concatenate([splits.train_x, splits.valid_x])), ("test", splits.test_x))
    }
    np.savez(
        folder / "data.npz",
        x_train=as_bytes["train"],
        y_train=np.concatenate([splits.train_y, splits.valid_y]),
        x_test=as_bytes["test"],
        y_test=splits.test_y,
    )
    return {"pickle": pickle_path, "idx": store_in_cache(splits, folder / "idx"), "npz": folder / "data.npz"}


RAM_DISK = Path("/dev/shm")


@contextlib.contextmanager
def work_folder(tmp_path_factory: pytest.TempPathFactory):
    """A RAM-backed folder where the system has one: each run fsyncs its files, which costs a
    tenth of a second a run on a busy disk and nothing there."""
    if not RAM_DISK.is_dir():
        yield tmp_path_factory.mktemp("invariants")
        return
    with tempfile.TemporaryDirectory(dir=RAM_DISK, prefix="test_invariants-") as folder:
        yield Path(folder)


@pytest.fixture(scope="module", autouse=True)
def world(tmp_path_factory: pytest.TempPathFactory):
    threads = torch.get_num_threads()
    with work_folder(tmp_path_factory) as root, pytest.MonkeyPatch.context() as mp:
        for name, value in SMALL_WIDTHS.items():
            mp.setattr(autoencoder.model, name, value)
        for spec in DATASETS.values():
            mp.delenv(spec.env_var, raising=False)
        files, sha, train_x = {}, {}, {}
        for source in SOURCES:
            splits = tiny_dataset(source)
            sha[source], train_x[source] = splits.sha256, splits.training_images(with_validation=True)
            for fmt, path in write_formats(splits, root / "data" / source).items():
                files[source, fmt] = path
        for source in KNOWN_SOURCES:
            mp.setitem(autoencoder.datasets.KNOWN_DATA, sha[source], source)
        (root / "cwd").mkdir()
        mp.chdir(root / "cwd")
        torch.set_num_threads(1)
        try:
            yield World(files, sha, train_x, root / "scratch", root / "cwd")
        finally:
            torch.set_num_threads(threads)


@contextlib.contextmanager
def example_folder(world: World):
    world.scratch.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=world.scratch))
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


# -- Running the trainer in-process and watching its steps ----------------------------------


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    def error_line(self) -> str:
        """The one line of a refused command line (nothing else on stderr)."""
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), self.stderr
        return lines[0]


def run(argv: list[str]) -> Outcome:
    """`python auto_encoder.py ARGV`, in-process. An exception escaping main() is a traceback: it
    fails the test (argparse's SystemExit is the script's exit)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = auto_encoder.main(argv)
        except SystemExit as e:
            code = e.code
    return Outcome(code, stdout.getvalue(), stderr.getvalue())


class SimulatedCrash(BaseException):
    """A crash at a training step, like kill -9: nothing after it runs, no checkpoint is saved."""


@dataclass
class Step:
    """One optimizer step as training.train_step saw it."""

    config: TrainConfig
    rows: np.ndarray
    weight_decay: float
    decays_1d: bool  # whether any 1-D parameter has weight decay
    lr: float
    dropout: list[float]


@dataclass
class Watched:
    """What the commands run inside `watched` did: their training steps and the files they began to write."""

    steps: list[Step] = field(default_factory=list)
    writes: list[Path] = field(default_factory=list)

    def reached(self, how: str, stop_at: int | None) -> bool:
        return stop_at is not None and len(self.writes if how == WRITE_CRASH else self.steps) >= stop_at


WRITE_CRASH = "crash before a write"
STOPS = ("SIGTERM", "SIGINT", "crash", WRITE_CRASH)


@contextlib.contextmanager
def watched(stop_at: int | None = None, how: str = "SIGTERM"):
    """Record every training step and every atomic write of the commands run inside; at step
    `stop_at` (counted from 1) deliver a real signal to this process or crash, or crash just
    before write `stop_at` (WRITE_CRASH)."""
    real_step, real_atomic_path, seen = training.train_step, autoencoder.files.atomic_path, Watched()

    def train_step(state, x):
        group = state.optimizer.param_groups[0]
        seen.steps.append(
            Step(
                state.config,
                x.cpu().numpy().copy(),
                group["weight_decay"],
                any(g["weight_decay"] > 0 for g in state.optimizer.param_groups for p in g["params"] if p.dim() < 2),
                group.get("max_lr", group["lr"]),
                [m.p for m in state.model.modules() if isinstance(m, torch.nn.Dropout)],
            )
        )
        if how != WRITE_CRASH and len(seen.steps) == stop_at:
            if how == "crash":
                raise SimulatedCrash
            os.kill(os.getpid(), SIGNALS[how])
        return real_step(state, x)

    @contextlib.contextmanager
    def atomic_path(path, durable=True):
        seen.writes.append(Path(path))
        if how == WRITE_CRASH and len(seen.writes) == stop_at:
            raise SimulatedCrash
        with real_atomic_path(path, durable) as tmp:
            yield tmp

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "train_step", train_step)
        mp.setattr(autoencoder.files, "atomic_path", atomic_path)
        yield seen


def run_interrupted(argv: list[str], stop_at: int | None, how: str) -> tuple[Outcome | None, Watched]:
    """The command, stopped at step (or write) `stop_at`; the outcome is None after a crash."""
    with watched(stop_at, how) as seen:
        try:
            return run(argv), seen
        except SimulatedCrash:
            return None, seen


def snapshot(*folders: Path) -> dict[str, tuple]:
    """Every file and folder below `folders`: its name, size, mtime and content hash."""
    found = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            st_ = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
            found[str(path)] = (st_.st_size, st_.st_mtime_ns, digest)
    return found


# -- Command lines ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """A command line of the trainer; None leaves the option out (its default applies)."""

    model: str
    source: str  # whose files --data gives
    fmt: str = "pickle"
    dataset: str | None = None
    recipe: str | None = None
    epochs: int | None = 2
    batch_size: int | None = None
    limit: int | None = None
    seed: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    dropout: float | None = None
    decay_1d: bool | None = None
    train_on_validation: bool = False
    precision: str | None = None
    interval: float | None = None  # --checkpoint-interval
    flags: tuple[str, ...] = ()

    def argv(self, world: World, out: Path) -> list[str]:
        argv = [
            "--model",
            self.model,
            "--data",
            str(world.data(self.source, self.fmt)),
            "--output-dir",
            str(out),
            "--device",
            "cpu",
        ]
        for option, value in (
            ("--dataset", self.dataset),
            ("--recipe", self.recipe),
            ("--epochs", self.epochs),
            ("--batch-size", self.batch_size),
            ("--limit", self.limit),
            ("--seed", self.seed),
            ("--lr", self.lr),
            ("--weight-decay", self.weight_decay),
            ("--dropout", self.dropout),
            ("--precision", self.precision),
            ("--checkpoint-interval", self.interval),
        ):
            if value is not None:
                argv += [option, repr(value) if isinstance(value, float) else str(value)]
        if self.decay_1d is not None:
            argv.append("--decay-1d" if self.decay_1d else "--no-decay-1d")
        argv += ["--train-on-validation"] if self.train_on_validation else []
        return argv + list(self.flags)

    def config(self, model: str, world: World | None = None, out: Path = Path("output")) -> TrainConfig:
        """What the command line should train `model` with: TrainConfig filled from the same options
        (without a world, the data's sha256 is left out)."""
        interval = CHECKPOINT_INTERVAL if self.interval is None else self.interval
        return TrainConfig(
            parse_code(model).name,
            self.dataset or "mnist",
            self.recipe or "modern",
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            dropout=self.dropout,
            decay_1d=self.decay_1d,
            seed=self.seed or 0,
            limit=self.limit,
            train_on_validation=self.train_on_validation,
            precision=resolve_precision(self.precision or "auto", torch.device("cpu")),
            device="cpu",
            checkpoint_interval=interval,
            output_dir=str(out),
            data_sha256=world.sha[self.source] if world else "",
        )

    def models(self) -> list[str]:
        return [spec.name for spec in parse_models(self.model)]


def options_of(config: dict, world: World) -> Options:
    """A command line that trains `config` (a recorded configuration) from the start."""
    return Options(
        config["model"],
        world.source_of(config["data_sha256"]),
        dataset=config["dataset"],
        recipe=config["recipe"],
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        limit=config["limit"],
        seed=config["seed"],
        lr=config["lr"],
        weight_decay=config["weight_decay"],
        dropout=config["dropout"],
        decay_1d=config["decay_1d"],
        train_on_validation=config["train_on_validation"],
        precision=config["precision"],
    )


CODES = st.one_of(st.integers(1, 40).map(lambda n: f"{n}D"), st.integers(1, 6).map(lambda k: f"{k}x{k}"))


@st.composite
def model_options(draw) -> str:
    """One code, two (in either order, vector codes in either case) or `both`."""
    kind = draw(st.sampled_from(["one", "two", "both"]))
    if kind == "both":
        return "both"
    codes = draw(
        st.lists(
            CODES,
            min_size=1 if kind == "one" else 2,
            max_size=1 if kind == "one" else 2,
            unique_by=lambda code: parse_code(code).name,
        )
    )
    return ",".join(code.lower() if draw(st.booleans()) else code for code in codes)


def maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.none(), strategy)


FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def anywhere(ordinary: st.SearchStrategy, most: float | None = None) -> st.SearchStrategy:
    """Mostly the values people use, sometimes anything the option accepts (up to `most`)."""
    return st.one_of(ordinary, ordinary, st.floats(0, most, exclude_min=True, allow_infinity=False))


@st.composite
def valid_options(draw, fp32: bool = False, flags: bool = True, extreme: bool = True) -> Options:
    """Any command line that should train; `fp32` for runs compared bit for bit; `extreme` also
    draws rates that diverge (exit 3, one line)."""
    recipe = draw(st.sampled_from([None, "modern", "original"]))
    modern = recipe != "original"
    lr = st.floats(1e-4, 0.02 if modern else 1.0)
    lr = anywhere(lr, FLOAT32_MAX) if extreme else lr  # a larger rate is refused (the invalid property)
    weight_decay = st.floats(0, 1)
    weight_decay = anywhere(weight_decay) if extreme else weight_decay
    dataset = draw(st.sampled_from([None, "mnist", "fashion-mnist", "kmnist"]))
    minimum = 2 if modern else 1  # batch norm needs two images a batch
    both = draw(st.booleans())  # --train-on-validation: the 10 validation images too
    return Options(
        model=draw(model_options()),
        source=draw(st.sampled_from([dataset or "mnist", "kmnist"])),  # its own files, or files nobody knows
        fmt=draw(st.sampled_from(FORMATS)),
        dataset=dataset,
        recipe=recipe,
        epochs=draw(st.integers(1, 2)),
        batch_size=draw(maybe(st.integers(minimum, N_TRAIN + 10))),
        limit=draw(maybe(st.integers(minimum, N_TRAIN + 10 * both))),
        seed=draw(maybe(st.integers(0, 2**64 - 1))),
        lr=draw(maybe(lr)),
        weight_decay=draw(maybe(weight_decay if modern else st.just(0.0))),
        dropout=draw(maybe(st.floats(0, 1, exclude_max=True) if modern else st.just(0.0))),
        decay_1d=draw(maybe(st.booleans())),
        train_on_validation=both,
        precision="fp32" if fp32 else draw(st.sampled_from([None, "auto", "fp32", "bf16"])),
        interval=draw(maybe(st.sampled_from([0.0, 60.0]))),
        flags=draw(st.sampled_from([(), ("--resume",), ("--restart",)])) if flags else (),
    )


# -- Reading what a run wrote ---------------------------------------------------------------


def run_ids(out: Path, model: str) -> dict[str, str]:
    """The run id each file of `model` in `out` names."""
    paths, ids = OutputPaths.of(out, model), {}
    if paths.info.is_file():
        ids["info"] = load_info(paths.info)["run_id"]
    for name in ("init", "weights", "codes"):
        if getattr(paths, name).is_file():
            ids[name] = torch.load(getattr(paths, name), weights_only=True)["run_id"]
    if paths.checkpoint.is_file():
        ids["checkpoint"] = torch.load(paths.checkpoint, weights_only=True)["history"]["run_id"]
    if paths.log.is_file():
        ids["log"] = re.search(r"^Run: (\w+)$", paths.log.read_text(), re.M).group(1)
    return ids


def model_of(path: str | Path) -> str:
    """The model a run file belongs to: auto_encoder_M_weights.pt -> M."""
    return re.sub(
        r"(_info\.pkl\.gz|_init\.pt|_weights\.pt|_checkpoint\.pt|_codes\.pt|\.txt)$",
        "",
        Path(path).name.removeprefix("auto_encoder_"),
    )


def models_in(out: Path) -> set[str]:
    return {model_of(p) for p in out.glob("auto_encoder_*")} if out.is_dir() else set()


def assert_one_run_per_model(out: Path, world: World) -> None:
    """No model's files in `out` come from two runs; a checkpoint beside a finished run's info is
    that run's last (a crash between writing the info and removing the checkpoint); the plot
    scripts' loader accepts every finished run with the data it trained on."""
    for model in models_in(out):
        ids = run_ids(out, model)
        assert len(set(ids.values())) == 1, f"{model}: files of two runs: {ids}"
        paths = OutputPaths.of(out, model)
        if paths.info.is_file() and paths.checkpoint.is_file():  # only a crash between the two writes leaves both
            saved = torch.load(paths.checkpoint, weights_only=True)
            assert saved["epoch"] == saved["config"]["epochs"] and saved["partial"] is None, (
                f"{model}: a finished run beside an unfinished one"
            )
        if paths.info.is_file():
            config = load_info(paths.info)["config"]
            load_trained_run(
                out,
                parse_code(model),
                config["dataset"],
                str(world.data(world.source_of(config["data_sha256"]))),
                "cpu",
                needs_codes=paths.codes.is_file(),
            )


def batch_sizes(config: TrainConfig, n_train: int) -> list[int]:
    """Full batches, then the rest; a last batch of one image joins the one before (batch norm)."""
    sizes = [min(config.batch_size, n_train - start) for start in range(0, n_train, config.batch_size)]
    if config.recipe == "modern" and len(sizes) > 1 and sizes[-1] == 1:
        sizes[-2:] = [sizes[-2] + 1]
    return sizes


def assert_records_match(out: Path, model: str, config: TrainConfig, steps: list[Step], world: World) -> None:
    """The info, the log, the weights and the codes file record `config`, and `config` (its data,
    epochs, batches, limit, learning rate, weight decay, dropout) is what trained the weights."""
    expected, paths, spec = config.as_dict(), OutputPaths.of(out, model), config.spec
    info = load_info(paths.info)
    assert info["config"] == expected
    both = config.train_on_validation
    assert info["changes"] == [] and len(info["training loss"]) == config.epochs
    assert len(info["validation loss"]) == (0 if both else config.epochs)
    init, weights = (torch.load(p, weights_only=True) for p in (paths.init, paths.weights))
    for saved in (init, weights):
        assert (saved["code"], saved["recipe"], saved["dataset"]) == (model, config.recipe, config.dataset)
    ids = {info["run_id"], init["run_id"], weights["run_id"]}
    if not spec.is_image and spec.units <= training.TRACED_MAX_UNITS:
        codes = torch.load(paths.codes, weights_only=True)
        ids.add(codes["run_id"])
        assert codes["config"] == expected and codes["codes"].shape == (config.epochs + 1, N_TEST, spec.units)
    else:
        assert not paths.codes.exists()
    assert len(ids) == 1 and info["run_id"]
    assert not paths.checkpoint.exists()
    assert info["parameters"] == count_parameters(load_model(paths.weights, "cpu", model, config.dataset))

    log = paths.log.read_text()
    title = DATASETS[config.dataset].title
    assert f"Run: {info['run_id']}\n" in log
    assert f"Data OK: {title}, images sha256 {config.data_sha256}.\n" in log
    assert (f"Limit: the first {config.limit} training images (--limit {config.limit}).\n" in log) == bool(
        config.limit and not both
    )
    assert ("training and validation images (" in log) == both
    assert (
        f"Recipe: {config.recipe} ({config.optimizer_name}, lr {config.lr:g}, batch {config.batch_size}, "
        f"{config.precision}) on cpu\n" in log
    )
    assert f"Training over {config.epochs} Epochs...\n" in log
    losses = [info["training loss"]] if both else [info["training loss"], info["validation loss"]]
    assert log_rows(log) == [
        [str(epoch), *(f"{v:.6g}" for v in values)] for epoch, values in enumerate(zip(*losses), start=1)
    ]

    mine = [step for step in steps if step.config.model == model]
    n_train = config.limit or N_TRAIN + 10 * both
    per_epoch = batch_count(config, n_train)
    assert len(mine) == config.epochs * per_epoch
    train_x = world.train_x[world.source_of(config.data_sha256)][:n_train]
    for epoch in range(config.epochs):
        batches = mine[epoch * per_epoch : (epoch + 1) * per_epoch]
        assert all(step.config == config for step in batches)
        rows = np.concatenate([step.rows for step in batches])
        assert sorted(map(bytes, rows)) == sorted(map(bytes, train_x)), "an epoch is not one pass over the data"
        assert [len(step.rows) for step in batches] == batch_sizes(config, n_train)
    first = mine[0]
    assert first.weight_decay == (config.weight_decay if config.optimizer == "AdamW" else 0)
    assert first.decays_1d == (config.optimizer == "AdamW" and config.weight_decay > 0 and config.decay_1d)
    assert first.lr == config.lr
    assert first.dropout == [config.dropout] * len(first.dropout) and (len(first.dropout) > 0) == (
        config.recipe == "modern"
    )


def reference(world: World, config: dict) -> Path:
    """The output folder of an uninterrupted run of `config` on the model's present widths (made once)."""
    widths = tuple(getattr(autoencoder.model, name) for name in SMALL_WIDTHS)
    key = (widths, *sorted((k, v) for k, v in config.items() if k not in ("output_dir", "checkpoint_interval")))
    if key not in world.references:
        out = world.scratch / "references" / f"{len(world.references)}"
        outcome = run(options_of(config, world).argv(world, out))
        assert outcome.code == 0, outcome.stderr
        world.references[key] = out
    return world.references[key]


def assert_same_run(out: Path, model: str, world: World) -> None:
    """`model`'s finished run in `out` equals, bit for bit, the uninterrupted run of its configuration."""
    paths = OutputPaths.of(out, model)
    info = load_info(paths.info)
    ref_paths = OutputPaths.of(reference(world, info["config"]), model)
    ref = load_info(ref_paths.info)
    for key in ("training loss", "validation loss", "test mse", "parameters", "changes"):
        assert info[key] == ref[key], key
    assert_same_weights(weights_of(paths.init), weights_of(ref_paths.init))
    assert_same_weights(weights_of(paths.weights), weights_of(ref_paths.weights))
    assert paths.codes.is_file() == ref_paths.codes.is_file()
    if paths.codes.is_file():
        assert torch.equal(codes_of(paths.codes), codes_of(ref_paths.codes))
    assert log_rows(paths.log.read_text()) == log_rows(ref_paths.log.read_text())


# -- 1. Valid command lines train and record what trained ------------------------------------


def trains_and_records_what_trained(world: World, opts: Options) -> None:
    with example_folder(world) as root:
        out = root / "out"
        with watched() as seen:
            outcome = run(opts.argv(world, out))
        models = opts.models()
        if outcome.code == 3:  # a rate that large diverged: one line, and that model records no result
            diverged = outcome.error_line().split()[1].rstrip(":")
            assert "training stopped" in outcome.stderr and not OutputPaths.of(out, diverged).info.exists()
            models = models[: models.index(diverged)]
        hypothesis.event(f"exit {outcome.code}")
        assert outcome.code in (0, 3), outcome.stderr
        unknown = opts.source not in KNOWN_SOURCES
        assert ("is not a copy of" in outcome.stdout) == unknown, outcome.stdout
        assert not any(world.cwd.iterdir())
        for model in models:
            assert_records_match(out, model, opts.config(model, world, out), seen.steps, world)
        assert_one_run_per_model(out, world)


@pytest.mark.parametrize("tier", TIER_PARAMS)
def test_every_valid_command_line_trains_and_records_the_configuration_and_data_that_trained_it(world, tier):
    check(TIERS[tier].valid, valid_options(), lambda opts: trains_and_records_what_trained(world, opts))


# -- 2. Invalid command lines exit 2 with one line and change nothing -------------------------

TEMPLATE = Options("3D", "mnist", epochs=2, batch_size=20, limit=40, precision="fp32")  # 2 steps an epoch


@pytest.fixture(scope="module")
def templates(world: World) -> dict[str, Path]:
    """Output folders holding TEMPLATE's 3D run: finished, and stopped by SIGTERM at step 3."""
    folders = {}
    for state, stop_at in (("finished", None), ("unfinished", 3)):
        folders[state] = world.scratch.parent / "templates" / state
        outcome, _ = run_interrupted(TEMPLATE.argv(world, folders[state]), stop_at, "SIGTERM")
        assert outcome.code == (0 if stop_at is None else 128 + signal.SIGTERM), outcome.stderr
    return folders


# Each breaker, appended to a valid command line (the last value of an option counts), makes it
# invalid whatever came before.
ARGUMENT_ERRORS = [
    ["--epochs", "0"],
    ["--epochs", "-2"],
    ["--epochs", "1.5"],
    ["--epochs"],
    ["--batch-size", "0"],
    ["--batch-size", "x"],
    ["--limit", "0"],
    ["--limit", "-1"],
    ["--lr", "0"],
    ["--lr", "-0.1"],
    ["--lr", "nan"],
    ["--lr", "inf"],
    ["--lr", "1e39"],
    ["--weight-decay", "-1"],
    ["--weight-decay", "nan"],
    ["--dropout", "1"],
    ["--dropout", "-0.1"],
    ["--seed", "-1"],
    ["--seed", str(2**64)],
    ["--seed", "0.5"],
    ["--dataset", "cifar10"],
    ["--recipe", "new"],
    ["--precision", "fp16"],
    ["--checkpoint-interval", "-1"],
    ["--compile", "fast"],
    ["--resume", "--restart"],
    ["--frobnicate"],
    ["--device", "tpu"],
]
BAD_MODELS = ["0D", "3x4", "x", "", ",", " , ", "3D,3D", "3D,3d", "both,3D", "D3", "03D", "4x4x4", "3 D", "-3D"]


@st.composite
def invalid_cases(draw) -> tuple[Options, list[str], str | None]:
    """A valid command line, what makes it invalid, and the run already in its folder (if any)."""
    base = draw(valid_options(flags=False))
    kind = draw(st.sampled_from(["data", "folder", "argument", "model", "recipe"]))
    hypothesis.event(kind)
    if kind == "argument":
        return base, draw(st.sampled_from(ARGUMENT_ERRORS)), None
    if kind == "model":
        return base, ["--model", draw(st.sampled_from(BAD_MODELS))], None
    if kind == "recipe":
        breaker = draw(
            st.sampled_from(
                [
                    ["--recipe", "original", "--weight-decay", repr(draw(st.floats(1e-6, 1)))],
                    ["--recipe", "original", "--dropout", repr(draw(st.floats(1e-6, 0.9)))],
                    ["--recipe", "modern", "--batch-size", "1"],
                ]
            )
        )
        return base, breaker, None
    if kind == "data":
        known = draw(st.sampled_from(KNOWN_SOURCES))
        other = draw(st.sampled_from([d for d in DATASETS if d != known]))
        breaker = draw(
            st.sampled_from(
                [
                    ["--limit", str(draw(st.integers(N_TRAIN + 11, 10**12)))],  # more than training + validation
                    ["--recipe", "modern", "--limit", "1"],
                    ["--dataset", other, "--data", str(Path("data", known, draw(st.sampled_from(FORMATS))))],
                    ["--data", f"bad:{draw(st.sampled_from(list(BAD_DATA)))}"],
                ]
            )
        )
        return base, breaker, None
    # A run of TEMPLATE's 3D model is in the folder: a command line that does not say what to do
    # with it, or that resumes it with other settings or data.
    state = draw(st.sampled_from(["finished", "unfinished"]))
    models = draw(st.sampled_from(["3D", "3D,2x2", "both", "3d"]))
    folder_base = replace(TEMPLATE, model=models, fmt=draw(st.sampled_from(FORMATS)))
    if draw(st.booleans()):
        return folder_base, draw(st.sampled_from([[], ["--lr", "0.001"], ["--checkpoint-interval", "0"]])), state
    change = draw(
        st.sampled_from(
            [
                ["--epochs", "3"],
                ["--batch-size", "10"],
                ["--limit", "30"],
                ["--seed", "1"],
                ["--recipe", "original", "--weight-decay", "0", "--dropout", "0"],
                ["--weight-decay", "0.2"],
                ["--dropout", "0.3"],
                ["--data", "kmnist"],
                ["--dataset", "kmnist", "--data", "kmnist"],
            ]
        )
    )
    return folder_base, [*change, "--resume"], state


def _without(path: Path, copy: Path, drop: str) -> Path:
    """A copy of the IDX folder or .npz at `path` without the file or key `drop`."""
    if path.is_dir():
        shutil.copytree(path, copy, ignore=shutil.ignore_patterns(drop))
    else:
        with np.load(path) as npz:
            np.savez(copy, **{key: npz[key] for key in npz.files if key != drop})
    return copy


BAD_DATA = {  # name: (world, folder) -> the path of files no dataset can be read from
    "missing": lambda world, root: root / "missing.pkl.gz",
    "truncated pickle": lambda world, root: truncated(root / "data.pkl.gz", world.data("mnist").read_bytes()),
    "empty file": lambda world, root: truncated(root / "data.npz", b""),
    "IDX folder without test labels": lambda world, root: _without(
        world.data("fashion-mnist", "idx"), root / "idx", "t10k-labels-idx1-ubyte*"
    ),
    ".npz without test labels": lambda world, root: _without(world.data("kmnist", "npz"), root / "data.npz", "y_test"),
}


def resolve_paths(breaker: list[str], world: World, root: Path) -> list[str]:
    """Put real paths into a breaker: a tiny dataset's files (SOURCE or data/SOURCE/FORMAT), or bad:NAME."""
    resolved = []
    for i, arg in enumerate(breaker):
        if i and breaker[i - 1] == "--data":
            parts = Path(arg).parts
            if arg.startswith("bad:"):
                arg = str(BAD_DATA[arg[len("bad:") :]](world, root))
            elif parts[0] == "data":
                arg = str(world.data(parts[1], parts[2]))
            else:
                arg = str(world.data(arg))
        resolved.append(arg)
    return resolved


def refused_without_change(world: World, templates: dict[str, Path], case) -> None:
    base, breaker, state = case
    with example_folder(world) as root:
        out = root / "out"
        if state:
            shutil.copytree(templates[state], out, copy_function=shutil.copy2)
        argv = base.argv(world, out) + resolve_paths(breaker, world, root)
        note(shlex.join(argv))
        before = snapshot(out, world.cwd) if out.exists() else {}
        outcome = run(argv)
        assert outcome.code == 2, (outcome.code, outcome.stderr)
        outcome.error_line()
        assert (snapshot(out, world.cwd) if out.exists() else {}) == before
        assert not any(world.cwd.iterdir())
        assert out.exists() == bool(state), "a refused command line leaves no output folder"


@pytest.mark.parametrize("tier", TIER_PARAMS)
def test_every_invalid_command_line_exits_2_with_one_error_line_and_changes_no_file(world, templates, tier):
    check(TIERS[tier].invalid, invalid_cases(), lambda case: refused_without_change(world, templates, case))


# -- 3. A run interrupted anywhere and resumed ends where the uninterrupted run ends ----------


@st.composite
def interrupted_runs(draw, first: str) -> tuple[Options, list[tuple[str, int]]]:
    """A command line at fp32 (one or two codes) and the interruptions of its successive commands:
    how (`first`, then a signal or a crash) and at which of that command's steps (or file writes)."""
    opts = draw(valid_options(fp32=True, flags=False, extreme=False))
    steps = sum(batch_count(opts.config(model), opts.limit or N_TRAIN) * opts.epochs for model in opts.models())
    writes = 8 * len(opts.models())  # init, log, checkpoints, weights, codes, info, log: about this many
    stop = st.sampled_from(STOPS).flatmap(
        lambda how: st.tuples(st.just(how), st.integers(1, writes if how == WRITE_CRASH else steps))
    )
    return opts, [
        (first, draw(st.integers(1, writes if first == WRITE_CRASH else steps))),
        *draw(st.lists(stop, max_size=2)),
    ]


def resumes_to_the_uninterrupted_run(world: World, case) -> None:
    opts, stops = case
    with example_folder(world) as root:
        out = root / "out"
        argv = opts.argv(world, out)
        for how, stop_at in stops:
            outcome, seen = run_interrupted(argv, stop_at, how)
            fired = seen.reached(how, stop_at)
            hypothesis.event(f"{how}: {'stopped the run' if fired else 'the run ended first'}")
            assert_one_run_per_model(out, world)
            if not fired:
                assert outcome.code == 0, outcome.stderr
                break
            if how in ("crash", WRITE_CRASH):
                assert outcome is None
                argv = [*opts.argv(world, out), "--resume"]
                continue
            assert outcome.code == 128 + SIGNALS[how], outcome.stderr
            assert f"Stopped by {how}: checkpoint saved" in outcome.stderr
            assert OutputPaths.of(out, seen.steps[-1].config.model).checkpoint.is_file()
            before = snapshot(out)  # the plain command again: refused, the checkpoint kept
            assert run(opts.argv(world, out)).code == 2 and snapshot(out) == before
            command = shlex.split(outcome.stderr.strip().splitlines()[-1])  # the command it says resumes
            assert command[:2] == ["python", "auto_encoder.py"] and command[-1] == "--resume"
            argv = command[2:]
        else:
            outcome = run(argv)
            assert outcome.code == 0, outcome.stderr
        for model in opts.models():
            assert not OutputPaths.of(out, model).checkpoint.exists()
            assert_same_run(out, model, world)


@pytest.mark.parametrize("first", STOPS)
@pytest.mark.parametrize("tier", TIER_PARAMS)
def test_a_run_interrupted_at_any_step_and_resumed_equals_the_uninterrupted_run_bit_for_bit(world, tier, first):
    check(TIERS[tier].resumed, interrupted_runs(first), lambda case: resumes_to_the_uninterrupted_run(world, case))


# -- 4. Sequences of runs in one folder -------------------------------------------------------

SEQUENCE_BASE = Options("2D", "mnist", epochs=2, batch_size=20, limit=40, precision="fp32")  # 4 steps a model
CHANGES = {
    "none": {},
    "lr": {"lr": 0.002},
    "epochs": {"epochs": 3},
    "batch": {"batch_size": 15},
    "seed": {"seed": 7},
    "limit": {"limit": 30},
    "bf16": {"precision": "bf16"},
    "every epoch": {"interval": 0.0},
    "same images as IDX": {"fmt": "idx"},
    "other data": {"source": "fashion-mnist", "dataset": "fashion-mnist"},
    "unknown data": {"source": "kmnist"},
    "diverging rate": {"lr": 1e30},
}


@dataclass
class Kept:
    """What the machine expects of one model's files in the folder."""

    state: str  # "finished", "unfinished" (a checkpoint) or "started" (crashed before one)
    settings: dict  # the settings --resume must match


def resume_settings(config: dict) -> dict:
    return {key: config[key] for key in (*RESUME_KEYS, "data_sha256")}


class RunsInOneFolder(RuleBasedStateMachine):
    """Runs, interruptions, --resume, --restart and changed options, one after another, in one
    output folder: each command is refused (exit 2, nothing changed) exactly when it should be,
    and the folder never holds two runs' files of one model."""

    def __init__(self, world: World):
        super().__init__()
        self.world = world
        world.scratch.mkdir(exist_ok=True)
        self.out = Path(tempfile.mkdtemp(dir=world.scratch)) / "out"
        self.kept: dict[str, Kept] = {}

    def teardown(self) -> None:
        shutil.rmtree(self.out.parent)

    def settings(self, opts: Options, model: str) -> dict:
        return resume_settings(opts.config(model, self.world, self.out).as_dict())

    def refusal_expected(self, opts: Options) -> bool:
        settings_now = {model: self.settings(opts, model) for model in opts.models()}
        kept = {model: self.kept[model] for model in opts.models() if model in self.kept}
        if "--restart" in opts.flags:
            return False
        if "--resume" not in opts.flags:
            return any(k.state != "started" for k in kept.values())
        return any(k.state != "started" and k.settings != settings_now[model] for model, k in kept.items())

    @rule(
        models=st.sampled_from(["2D", "2x2", "2D,2x2", "2x2,2D"]),
        flags=st.sampled_from([(), ("--resume",), ("--restart",)]),
        change=st.sampled_from(list(CHANGES)),
        stop=st.one_of(st.none(), st.tuples(st.sampled_from(["SIGTERM", "crash"]), st.integers(1, 8))),
    )
    def train(self, models, flags, change, stop):
        opts = replace(SEQUENCE_BASE, model=models, flags=flags, **CHANGES[change])
        diverging = change == "diverging rate"
        stop = None if diverging else stop  # a stop signal would save weights on their way to infinity
        refused = self.refusal_expected(opts)
        before = snapshot(self.out) if self.out.exists() else {}
        others = {k: v for k, v in before.items() if model_of(k) not in opts.models()}
        how, stop_at = stop or ("SIGTERM", None)
        outcome, seen = run_interrupted(opts.argv(self.world, self.out), stop_at, how)
        hypothesis.event("refused" if refused else "crashed" if outcome is None else f"exit {outcome.code}")
        if refused:
            assert outcome is not None and outcome.code == 2, outcome and outcome.stderr
            outcome.error_line()
            assert (snapshot(self.out) if self.out.exists() else {}) == before
            return
        after = snapshot(self.out)
        assert {k: v for k, v in after.items() if k in others} == others, "another model's files changed"
        fired = seen.reached(how, stop_at)
        if outcome is None:
            assert fired and how == "crash"
        elif diverging and outcome.code == 3:
            assert "training stopped" in outcome.error_line()
        else:
            assert outcome.code == (128 + signal.SIGTERM if fired else 0), outcome.stderr
        stopped = seen.steps[-1].config.model if fired or (outcome and outcome.code == 3) else None
        for model in opts.models():  # in order: those before the stopped one finished (a resume matched)
            if model == stopped:
                checkpoint = OutputPaths.of(self.out, model).checkpoint.is_file()
                self.kept[model] = Kept("unfinished" if checkpoint else "started", self.settings(opts, model))
                break
            self.kept[model] = Kept("finished", self.settings(opts, model))

    @invariant()
    def the_folder_holds_one_run_per_model_as_expected(self) -> None:
        assert_one_run_per_model(self.out, self.world)
        assert not any(self.world.cwd.iterdir())
        for model, kept in self.kept.items():
            paths = OutputPaths.of(self.out, model)
            assert paths.info.is_file() == (kept.state == "finished"), (model, kept)
            assert paths.checkpoint.is_file() == (kept.state == "unfinished"), (model, kept)
            if kept.state == "finished":
                info = load_info(paths.info)
                assert resume_settings(info["config"]) == kept.settings
                if not info["changes"]:
                    assert_same_run(self.out, model, self.world)
                else:  # settings changed on --resume: the info and the log say which, and from where
                    assert {change["setting"] for change in info["changes"]} <= {"lr", "precision"}
                    assert f"Changed on --resume: {changes_text(info['changes'])}.\n" in paths.log.read_text()


@pytest.mark.parametrize("tier", TIER_PARAMS)
def test_any_sequence_of_runs_interruptions_resumes_and_restarts_keeps_one_run_per_model_in_a_folder(world, tier):
    run_state_machine_as_test(
        lambda: RunsInOneFolder(world),
        settings=settings(
            max_examples=TIERS[tier].sequences,
            stateful_step_count=TIERS[tier].steps,
            derandomize=True,
            database=None,
            deadline=None,
            print_blob=False,
            suppress_health_check=list(HealthCheck),
        ),
    )


# -- Plain tests: the data, the real widths, and the regressions found ------------------------


def test_the_recorded_sha256_of_a_dataset_is_the_same_whatever_file_format_holds_it(world):
    for source in SOURCES:
        assert {read_dataset(world.data(source, fmt), source).sha256 for fmt in FORMATS} == {world.sha[source]}
    assert len(set(world.sha.values())) == len(SOURCES)


@pytest.mark.slow
def test_on_the_real_widths_a_run_records_what_trained_it_and_resumes_to_the_same_weights(world):
    with pytest.MonkeyPatch.context() as mp:
        for name, value in REAL_WIDTHS.items():
            mp.setattr(autoencoder.model, name, value)
        opts = Options("3D", "mnist", epochs=2, batch_size=20, limit=40, precision="fp32")
        check(1, st.just(opts), lambda opts: trains_and_records_what_trained(world, opts))
        check(1, st.just((opts, [("SIGTERM", 3)])), lambda case: resumes_to_the_uninterrupted_run(world, case))


def test_a_refused_resume_of_a_later_model_leaves_the_earlier_models_files_alone(world):
    with example_folder(world) as root:
        out = root / "out"
        base = Options("3D", "mnist", batch_size=20, precision="fp32")
        assert run(replace(base, epochs=1).argv(world, out)).code == 0
        assert run(replace(base, model="2x2", epochs=2).argv(world, out)).code == 0
        before = snapshot(out)
        outcome = run(replace(base, model="3D,2x2", epochs=1, flags=("--resume",)).argv(world, out))
        assert outcome.code == 2 and "was made with other settings" in outcome.error_line()
        assert snapshot(out) == before


@pytest.mark.parametrize("recipe", ["original", "modern"])
def test_a_rate_beyond_float32_is_refused_in_one_line_not_a_traceback(world, recipe):
    with example_folder(world) as root:
        outcome = run(Options("3D", "mnist", recipe=recipe, epochs=1, lr=1e39).argv(world, root / "out"))
        assert outcome.code == 2 and "float32's largest" in outcome.error_line()
        assert not (root / "out").exists()


@pytest.mark.parametrize("below", [False, True], ids=["a file", "below a file"])
def test_an_output_dir_that_is_a_file_is_refused_in_one_line_with_exit_2(world, below):
    with example_folder(world) as root:
        (root / "notes").write_text("mine\n")
        out = root / "notes" / "out" if below else root / "notes"
        outcome = run(Options("3D", "mnist", epochs=1).argv(world, out))
        assert outcome.code == 2 and "--resume" not in outcome.error_line()
        assert (root / "notes").read_text() == "mine\n"


def test_a_resume_with_another_learning_rate_prints_no_pytorch_warning(world, templates):
    with example_folder(world) as root:
        out = shutil.copytree(templates["unfinished"], root / "out")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcome = run(replace(TEMPLATE, lr=0.001, flags=("--resume",)).argv(world, out))
        assert outcome.code == 0, outcome.stderr
        assert [str(w.message) for w in caught if "lr_scheduler" in str(w.message)] == []
