"""Train the MNIST autoencoders: the 3D model, then the 4x4 model (or any code size).

    python auto_encoder.py                      # modern recipe, both models
    python auto_encoder.py --recipe original    # the 2016 recipe: SGD lr 1.0, 500 epochs
    python auto_encoder.py --resume             # continue after an interruption

Writes, per model M, into --output-dir: auto_encoder_M.txt (log), auto_encoder_M_info.pkl.gz
(losses, test MSE, configuration), auto_encoder_M_init.pt / _weights.pt (weights before and
after training), auto_encoder_M_checkpoint.pt (for --resume) and, for codes of up to three
units, auto_encoder_M_codes.pt (the codes of 2,000 test digits after every epoch).
"""
from __future__ import annotations

import argparse
import datetime
import math
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from helpers import (AutoEncoder, CodeSpec, Mnist, OutputPaths, UserError, autocast, cuda_tf32,
                     count_parameters, load_mnist, map_batches, parse_models, pick_device,
                     reconstruction_mse, resolve_precision, save_info, save_model,
                     torch_save_atomic, write_text_atomic)

# Hyperparameters of each recipe; command-line options override them. Chosen before the model had
# batch norm; modern 3D test MSE, weight decay at lr 2e-3, 40 epochs: 0.01 -> 0.0270,
# 0.1 -> 0.0264, 0.3 -> 0.0265, 0.6 -> 0.0268; peak lr at weight decay 0.1: 2e-3 -> 0.0264,
# 4e-3 -> 0.0262 (40 or 46 epochs), 5e-3 -> 0.0261 (46 epochs); 6e-3, 7e-3 and 8e-3 were behind
# 5e-3 on validation when stopped (epochs 40, 40, 19). Batch norm then took 5e-3 to 0.0254.
RECIPE_DEFAULTS = {
    "original": dict(epochs=500, lr=1.0, batch_size=500, weight_decay=0.0),
    "modern": dict(epochs=46, lr=5e-3, batch_size=500, weight_decay=0.1),
}
# Sigmoid image codes (KxK) keep the lower peak: over 46 epochs (without batch norm) the 4x4 model
# ended at validation MSE 0.0095 with 5e-3 against 0.0082 with 2e-3.
MODERN_IMAGE_CODE_LR = 2e-3
ONE_CYCLE_WARMUP = 0.15         # fraction of the modern run spent raising the learning rate
TRACED_DIGITS = 2000            # test digits whose codes are stored after every epoch
TRACED_MAX_UNITS = 3            # store them only for codes small enough to plot
# Settings a resumed run must share with its checkpoint (the learning rate may change).
RESUME_KEYS = ("model", "recipe", "epochs", "batch_size", "weight_decay", "seed", "limit")


class TrainingDiverged(UserError):
    exit_code = 3


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopFlag:
    """Records SIGINT/SIGTERM so the loop can stop after the current step and save.

    Used as a context manager: the previous handlers come back on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict = {}

    def __enter__(self) -> "StopFlag":
        self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, not {text}")
    return value


def seed_value(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2 ** 64:  # the range torch.manual_seed accepts for every generator
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**64-1, not {text}")
    return value


def _recipe_values(key: str) -> str:
    return ", ".join(f"{defaults[key]:g} {recipe}" for recipe, defaults in RECIPE_DEFAULTS.items())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="auto_encoder.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="both",
                   help="3D, 4x4, both (default), any ND or KxK code, or a comma-separated list")
    p.add_argument("--recipe", choices=list(RECIPE_DEFAULTS), default="modern",
                   help="modern (AdamW, one-cycle, biases, bf16; default) or original (2016 SGD)")
    p.add_argument("--epochs", type=positive_int, help=f"default: {_recipe_values('epochs')}")
    p.add_argument("--batch-size", type=positive_int, help=f"default: {_recipe_values('batch_size')}")
    p.add_argument("--lr", type=positive_float, help="(peak) learning rate, may change on --resume; "
                   f"default: {_recipe_values('lr')} ({MODERN_IMAGE_CODE_LR:g} for modern image codes)")
    p.add_argument("--weight-decay", type=non_negative_float,
                   help=f"AdamW weight decay (modern only); default: {_recipe_values('weight_decay')}")
    p.add_argument("--seed", type=seed_value, default=0, help="seed for the init and shuffling (default 0)")
    p.add_argument("--limit", type=positive_int, help="train on the first N training images only")
    p.add_argument("--output-dir", type=Path, default=Path("output"), help="default: output/")
    p.add_argument("--resume", action="store_true",
                   help="continue from each model's checkpoint (a finished model is only re-evaluated)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto: bf16 autocast where the hardware is fast at it, else fp32")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--data", help="MNIST file or folder (pickle, IDX files or .npz); "
                   "default: $MNIST_DATA, the data/ cache, then download")
    p.add_argument("--prepare-data", action="store_true",
                   help="fetch and verify MNIST into data/, then exit")
    p.add_argument("--checkpoint-every", type=positive_int, default=1, metavar="N",
                   help="write the checkpoint every N epochs (default 1)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    return p.parse_args(argv)


def settings_for(args: argparse.Namespace, spec: CodeSpec) -> argparse.Namespace:
    """The settings of one model's run: each option left unset takes the recipe's default for this code."""
    defaults = dict(RECIPE_DEFAULTS[args.recipe])
    if args.recipe == "modern" and spec.is_image:
        defaults["lr"] = MODERN_IMAGE_CODE_LR
    unset = {key: value for key, value in defaults.items() if getattr(args, key) is None}
    return argparse.Namespace(**{**vars(args), **unset})


@dataclass
class History:
    """Per-epoch results; with the model, optimizer and RNG state it makes a checkpoint."""

    training_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    started: str = field(default_factory=lambda: str(datetime.datetime.now()))


def dropout_rng_state() -> dict:
    """The global RNG states that dropout draws from (shuffling has its own generator)."""
    return {"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_dropout_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def make_optimizer(model: AutoEncoder, args: argparse.Namespace, steps_per_epoch: int,
                   device: torch.device) -> tuple[torch.optim.Optimizer, object | None]:
    if args.recipe == "original":
        return torch.optim.SGD(model.parameters(), lr=args.lr), None
    fused = device.type in ("cuda", "cpu")
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                                  fused=fused)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch,
        pct_start=ONE_CYCLE_WARMUP)
    return optimizer, scheduler


def scale_learning_rate(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Scale every learning rate the optimizer and a one-cycle schedule keep."""
    for group in optimizer.param_groups:
        for key in ("lr", "initial_lr", "max_lr", "min_lr"):
            if key in group:
                group[key] *= factor


def run_config(args: argparse.Namespace, spec: CodeSpec, device: torch.device, precision: str) -> dict:
    return dict(model=spec.name, recipe=args.recipe, epochs=args.epochs, batch_size=args.batch_size,
                lr=args.lr, weight_decay=args.weight_decay, seed=args.seed, limit=args.limit,
                precision=precision, device=str(device),
                optimizer="SGD" if args.recipe == "original" else "AdamW, one-cycle")


def render_log(paths: OutputPaths, config: dict, parameters: int, history: History,
               test_mse: float | None) -> str:
    """The original's log layout, with the recipe and device added."""
    row = "{:<10}{:<20}{:<20}{:<20}\n"
    text = (f"Started: {history.started}.\n>>> {paths.log}\n"
            f"Recipe: {config['recipe']} ({config['optimizer']}, lr {config['lr']:g}, "
            f"batch {config['batch_size']}, {config['precision']}) on {config['device']}\n"
            f"Autoencoder OK.\n{parameters} parameters\nData OK.\n"
            f"Training over {config['epochs']} Epochs...\n" + row.format("Epoch", "TL", "VL", "Time"))
    for epoch, losses in enumerate(zip(history.training_loss, history.validation_loss,
                                       history.epoch_time), start=1):
        text += row.format(epoch, *(f"{v:.6g}" for v in losses))
    if test_mse is not None:
        text += (f"Finished training.\nMSE on test data: {test_mse:.6g}.\n"
                 f"Completed: {datetime.datetime.now()}.\n")
    return text


class Run:
    """One model's training run: state, checkpointing and the epoch loop."""

    def __init__(self, args: argparse.Namespace, spec: CodeSpec, data: dict[str, torch.Tensor],
                 device: torch.device, precision: str, stop: StopFlag):
        args = settings_for(args, spec)
        self.args, self.spec, self.data, self.device = args, spec, data, device
        self.precision, self.stop = precision, stop
        self.paths = OutputPaths.of(args.output_dir, spec.name)
        self.config = run_config(args, spec, device, precision)
        self.steps_per_epoch = math.ceil(len(data["train"]) / args.batch_size)
        torch.manual_seed(args.seed)
        self.model = AutoEncoder(spec, args.recipe).to(device)
        self.forward = torch.compile(self.model) if args.compile else self.model
        self.optimizer, self.scheduler = make_optimizer(self.model, args, self.steps_per_epoch, device)
        self.generator = torch.Generator().manual_seed(args.seed)
        self.history = History()
        self.partial: dict | None = None   # a saved part-epoch: permutation, step, loss sum
        self.checkpointed = False           # whether this run saved or resumed a checkpoint
        traced = TRACED_DIGITS if spec.units <= TRACED_MAX_UNITS and not spec.is_image else 0
        self.traced_x = data["test"][:traced]
        self.code_trace: list[torch.Tensor] = []

    # -- checkpoints ------------------------------------------------------
    def state(self) -> dict:
        return {"config": self.config, "epoch": len(self.history.training_loss),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "generator": self.generator.get_state(), "dropout_rng": dropout_rng_state(),
                "history": vars(self.history), "partial": self.partial, "code_trace": self.code_trace}

    def save_checkpoint(self) -> None:
        """Write the checkpoint, unless the weights diverged: then the last good one stays."""
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise self.diverged("the weights became infinite or NaN")
        torch_save_atomic(self.state(), self.paths.checkpoint)
        self.checkpointed = True

    def check_settings(self, saved: dict) -> None:
        mismatched = [f"{k} {saved.get(k)} (now {self.config[k]})"
                      for k in RESUME_KEYS if saved.get(k) != self.config[k]]
        if mismatched:
            raise UserError(f"{self.paths.checkpoint} was made with other settings: "
                            f"{', '.join(mismatched)}; rerun with those settings or without --resume")

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.args.lr != state["config"]["lr"]:
            scale_learning_rate(self.optimizer, self.args.lr / state["config"]["lr"])
        self.generator.set_state(state["generator"].cpu())
        set_dropout_rng_state(state["dropout_rng"])
        self.history = History(**state["history"])
        self.partial = state["partial"]
        self.code_trace = list(state["code_trace"])

    def load_checkpoint(self) -> bool:
        """Restore from the checkpoint if there is one; False if there is none."""
        if not self.paths.checkpoint.is_file():
            return False
        try:
            state = torch.load(self.paths.checkpoint, map_location=self.device, weights_only=True)
            saved = dict(state["config"])
        except Exception as e:
            raise UserError(f"{self.paths.checkpoint} cannot be read ({str(e).splitlines()[0]}); "
                            "delete it to start over") from None
        self.check_settings(saved)
        try:
            self.restore(state)
        except Exception as e:  # loads, but is not a whole checkpoint of this model
            raise UserError(f"{self.paths.checkpoint} is damaged or from another tool "
                            f"({str(e).splitlines()[0]}); delete it to start over") from None
        self.checkpointed = True
        return True

    def diverged(self, what: str) -> TrainingDiverged:
        epoch = len(self.history.training_loss) + 1
        kept = (f"The last good checkpoint is kept in {self.paths.checkpoint}" if self.checkpointed
                else "No checkpoint was saved yet")
        return TrainingDiverged(f"{self.spec.name}: {what} at epoch {epoch}; training stopped. "
                                f"{kept}: lower --lr and rerun with --resume.")

    # -- training ----------------------------------------------------------
    def train_step(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.precision):
            recon = self.forward(x)
        loss = torch.nn.functional.mse_loss(recon.flatten(1), x)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler:
            self.scheduler.step()
        return loss.detach()

    def train_epoch(self, bar: tqdm) -> float:
        """One pass over the shuffled training set; returns its true mean loss.

        On SIGINT/SIGTERM it stores the part-epoch in the checkpoint and raises Interrupted.
        """
        train = self.data["train"]
        if self.partial is None:
            perm = torch.randperm(len(train), generator=self.generator)
            self.partial = {"perm": perm, "step": 0, "loss_sum": torch.zeros((), device=self.device),
                            "elapsed": 0.0}
        part = self.partial
        batches = part["perm"].to(self.device).split(self.args.batch_size)
        start = time.perf_counter() - part["elapsed"]
        bar.reset(total=len(batches))
        bar.update(part["step"])
        for step in range(part["step"], len(batches)):
            x = train[batches[step]]
            part["loss_sum"] += self.train_step(x) * len(x)
            part["step"], part["elapsed"] = step + 1, time.perf_counter() - start
            bar.update()
            if step % 10 == 0:
                seen = min((step + 1) * self.args.batch_size, len(train))
                bar.set_postfix(loss=f"{part['loss_sum'].item() / seen:.4f}")
            if self.stop.signum is not None:
                self.save_checkpoint()
                raise Interrupted(self.stop.signum)
        return part["loss_sum"].item() / len(train)

    def end_epoch(self, train_loss: float) -> None:
        self.model.eval()
        valid_loss = reconstruction_mse(self.model, self.data["valid"], self.precision)
        self.trace_codes()
        self.model.train()
        if not (math.isfinite(train_loss) and math.isfinite(valid_loss)):
            raise self.diverged(f"the loss became {train_loss:g} (validation {valid_loss:g})")
        epoch = len(self.history.training_loss) + 1
        self.history.training_loss.append(train_loss)
        self.history.validation_loss.append(valid_loss)
        self.history.epoch_time.append(self.partial["elapsed"])
        self.partial = None
        write_text_atomic(self.paths.log, render_log(self.paths, self.config, count_parameters(self.model),
                                                     self.history, None))
        if epoch % self.args.checkpoint_every == 0 or epoch == self.args.epochs:
            self.save_checkpoint()

    def trace_codes(self) -> None:
        if len(self.traced_x):
            with autocast(self.device, self.precision):
                codes = map_batches(self.model.encode, self.traced_x)
            self.code_trace.append(codes.float().cpu().half())

    def train(self) -> float:
        """Train to the last epoch (from a checkpoint if resuming); returns the test MSE."""
        if not (self.args.resume and self.load_checkpoint()):
            if self.args.resume:
                tqdm.write(f"{self.spec.name}: no checkpoint in {self.args.output_dir}/, starting from scratch")
            save_model(self.paths.init, self.model)
            self.model.eval()
            self.trace_codes()
        self.model.train()
        done = len(self.history.training_loss)
        with tqdm(total=self.args.epochs, initial=done, desc=f"{self.spec.name} epochs", unit="epoch",
                  dynamic_ncols=True) as epochs_bar, \
                tqdm(desc="  batches", unit="batch", leave=False, dynamic_ncols=True) as batch_bar:
            for epoch in range(done + 1, self.args.epochs + 1):
                self.end_epoch(self.train_epoch(batch_bar))
                epochs_bar.update()
                epochs_bar.set_postfix(train=f"{self.history.training_loss[-1]:.4f}",
                                       valid=f"{self.history.validation_loss[-1]:.4f}")
        return self.finish()

    def finish(self) -> float:
        self.model.eval()
        test_mse = reconstruction_mse(self.model, self.data["test"], "fp32")
        parameters = count_parameters(self.model)
        save_model(self.paths.weights, self.model)
        if self.code_trace:
            torch_save_atomic(torch.stack(self.code_trace), self.paths.codes)
        info = {"training loss": self.history.training_loss,
                "validation loss": self.history.validation_loss,
                "epoch time": self.history.epoch_time, "test mse": test_mse,
                "parameters": parameters, "config": self.config,
                "started": self.history.started, "finished": str(datetime.datetime.now())}
        save_info(self.paths.info, info)
        write_text_atomic(self.paths.log, render_log(self.paths, self.config, parameters,
                                                     self.history, test_mse))
        return test_mse


def data_tensors(mnist: Mnist, limit: int | None, device: torch.device) -> dict[str, torch.Tensor]:
    """The whole dataset on the device; batches are then index permutations."""
    train = mnist.train_x[:limit] if limit else mnist.train_x
    return {name: torch.from_numpy(x).to(device)
            for name, x in (("train", train), ("valid", mnist.valid_x), ("test", mnist.test_x))}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = StopFlag()
    try:
        if args.prepare_data:
            mnist = load_mnist(args.data, log=tqdm.write)
            print(f"MNIST ready ({mnist.source}): {len(mnist.train_x)} train, "
                  f"{len(mnist.valid_x)} validation, {len(mnist.test_x)} test images")
            return 0
        specs = parse_models(args.model)
        device = pick_device(args.device)
        precision = resolve_precision(args.precision, device)
        args.output_dir.mkdir(parents=True, exist_ok=True)
        data = data_tensors(load_mnist(args.data, log=tqdm.write), args.limit, device)
        with stop, cuda_tf32(device):
            for spec in specs:
                run = Run(args, spec, data, device, precision, stop)
                print(f"{spec.name} model: {count_parameters(run.model):,} parameters, recipe {args.recipe}, "
                      f"{run.args.epochs} epochs, batch {run.args.batch_size}, {precision} on {device}")
                test_mse = run.train()
                print(f"{spec.name}: MSE on test data: {test_mse:.6g} (outputs in {args.output_dir}/)")
    except KeyboardInterrupt:
        print("\nInterrupted before training started; nothing was written.", file=sys.stderr)
        return 130
    except Interrupted as e:
        print(f"\nStopped by {e}: checkpoint saved. Continue with the same command plus --resume:\n"
              f"  python auto_encoder.py {shlex.join(_resume_argv(argv))}", file=sys.stderr)
        return 128 + e.signum
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        print(f"error: cannot write {e.filename or 'an output file'} ({e.strerror or e}); "
              "the previous files are intact. Free space or fix permissions, then rerun with --resume.",
              file=sys.stderr)
        return 1
    return 0


def _resume_argv(argv: list[str] | None) -> list[str]:
    argv = list(sys.argv[1:] if argv is None else argv)
    return argv if "--resume" in argv else argv + ["--resume"]


if __name__ == "__main__":
    sys.exit(main())
