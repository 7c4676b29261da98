"""jobs/local_slurm.sh's checks, as `python jobs/local_slurm_checks.py NAME ARGS...`.

Free ports, the MNIST subset, result comparison, log checks. They read the output files with
plain gzip/pickle, not the project's modules, which may change; each prints what it finds.
"""

import gzip
import os
import pickle
import re
import socket
import sys


def ports(count):
    sockets = [socket.socket() for _ in range(int(count))]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    print(" ".join(str(s.getsockname()[1]) for s in sockets))


def subset(source, dest, *sizes):
    """The first N images of each split of MNIST (any format the project reads), as a
    deeplearning.net pickle."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from autoencoder.datasets import read_mnist

    m = read_mnist(source)
    splits = ((m.train_x, m.train_y), (m.valid_x, m.valid_y), (m.test_x, m.test_y))
    counts = dict(size.split("=") for size in sizes)
    small = tuple(
        (x[: int(counts[name])], y[: int(counts[name])]) for name, (x, y) in zip(("train", "valid", "test"), splits)
    )
    with gzip.open(dest, "wb", compresslevel=1) as f:
        pickle.dump(small, f, protocol=2)


def load(path):
    with gzip.open(path, "rb") as f:
        return pickle.load(f)


def step_time(steps_per_epoch, *infos):
    """The fastest training step seen in these runs, in seconds."""
    print(min(t for info in infos for t in load(info)["epoch time"]) / int(steps_per_epoch))


def compare(actual, expected):
    """What differs between two runs' results (nothing printed if they are equal)."""
    if not os.path.exists(actual):
        print(f"no results ({os.path.basename(actual)} missing)")
        return
    a, e = load(actual), load(expected)
    for key in ("training loss", "validation loss"):
        if len(a[key]) != len(e[key]):
            print(f"{key}: {len(a[key])} epochs, expected {len(e[key])}")
        else:
            diffs = [i for i, (x, y) in enumerate(zip(a[key], e[key]), 1) if x != y]
            if diffs:
                i = diffs[0]
                print(f"{key} differs from epoch {i} ({a[key][i - 1]!r} vs {e[key][i - 1]!r})")
    if a["test mse"] != e["test mse"]:
        print(f"test mse {a['test mse']!r} vs {e['test mse']!r}")


def reevaluated(before, after):
    """How `after` is not `before` re-evaluated: same history, results written again."""
    b, a = load(before), load(after)
    if a["started"] != b["started"] or a["epoch time"] != b["epoch time"]:
        print("trained again instead of resuming the finished run")
    if a["finished"] == b["finished"]:
        print("results were not rewritten")


# The trainer's lines that show a run resumed, started over, or finished an epoch (matched
# loosely: only these forms are kept as the trainer changes).
RESUME_LINE = re.compile(r"^(\S+): resuming from .* at epoch (\d+)(?:, step (\d+))?\s*$")
SCRATCH_LINE = re.compile(r"no checkpoint.*starting from scratch", re.IGNORECASE)
EPOCH_LINE = re.compile(r"^(\S+) epoch (\d+)/(\d+): training loss")


def log_events(path, model):
    """("resume", epoch, step) and ("epoch", k, None) for `model`, in the order of the log."""
    events: list[tuple[str, int, int | None]] = []
    with open(path, errors="replace") as f:
        for line in f:
            resume, epoch = RESUME_LINE.match(line), EPOCH_LINE.match(line)
            if resume and resume[1] == model:
                events.append(("resume", int(resume[2]), int(resume[3] or 0)))
            elif epoch and epoch[1] == model:
                events.append(("epoch", int(epoch[2]), None))
    return events


def resumed(log, model, epochs):
    """How a job's log, holding all its runs (--open-mode=append), fails to show that each
    requeued run continued where the one before stopped: no resume line, a resume before epoch 2
    (the first run finished no epoch), an epoch trained twice or never, a second fresh start."""
    last, problems = 0, []
    events = log_events(log, model)
    if not any(kind == "resume" for kind, _, _ in events):
        problems.append(f"no '{model}: resuming from ... at epoch N' line: the requeued run did not resume")
    for kind, n, _ in events:
        if kind == "resume" and n < 2:
            problems.append(f"resumed at epoch {n}: the first run finished no epoch (size the case up)")
        if kind == "resume" and n != last + 1:
            problems.append(f"resumed at epoch {n} after epoch {last}")
        if kind == "epoch" and n != last + 1:
            problems.append(
                f"epoch {n} trained again after epoch {last}" if n <= last else f"epoch {n} after epoch {last}"
            )
        if kind == "epoch":
            last = n
    if last != int(epochs):
        problems.append(f"the log ends at epoch {last} of {epochs}")
    with open(log, errors="replace") as f:
        fresh = sum(bool(SCRATCH_LINE.search(line)) for line in f)
    if fresh > 1:
        problems.append(f"{fresh} runs started from scratch")
    print("\n".join(problems[:4]))  # the first few say what happened


def resume_points(log, model):
    """Where the job's runs resumed: "2 step 3, 5"."""
    print(
        ", ".join(
            f"{n}" + (f" step {step}" if step else "") for kind, n, step in log_events(log, model) if kind == "resume"
        )
    )


def log_problems(*paths):
    """What makes job logs hard to read: progress-bar control characters, no epoch lines."""
    epoch_line = re.compile(r"^\S+ epoch \d+/\d+: training loss", re.MULTILINE)
    for path in paths:
        with open(path, newline="", errors="replace") as f:  # newline="": keep each CR
            text = f.read()
        found = [f"{text.count(c)} {name}" for c, name in (("\r", "CR"), ("\x1b", "ESC")) if c in text]
        if not epoch_line.search(text):
            found.append("no 'M epoch i/n: training loss' lines")
        if found:
            print(f"{os.path.basename(path)}: {', '.join(found)}")


if __name__ == "__main__":
    globals()[sys.argv[1].replace("-", "_")](*sys.argv[2:])
