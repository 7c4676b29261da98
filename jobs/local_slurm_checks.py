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
    from helpers import read_mnist
    m = read_mnist(source)
    splits = ((m.train_x, m.train_y), (m.valid_x, m.valid_y), (m.test_x, m.test_y))
    counts = dict(size.split("=") for size in sizes)
    small = tuple((x[:int(counts[name])], y[:int(counts[name])])
                  for name, (x, y) in zip(("train", "valid", "test"), splits))
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
                print(f"{key} differs from epoch {i} ({a[key][i-1]!r} vs {e[key][i-1]!r})")
    if a["test mse"] != e["test mse"]:
        print(f"test mse {a['test mse']!r} vs {e['test mse']!r}")


def reevaluated(before, after):
    """How `after` is not `before` re-evaluated: same history, results written again."""
    b, a = load(before), load(after)
    if a["started"] != b["started"] or a["epoch time"] != b["epoch time"]:
        print("trained again instead of resuming the finished run")
    if a["finished"] == b["finished"]:
        print("results were not rewritten")


def epochs_done(log):
    """Epoch rows in a model's log table (auto_encoder_M.txt); 0 if there is no table yet."""
    try:
        text = open(log).read()
    except FileNotFoundError:
        text = ""
    print(len(re.findall(r"^\d+ +\d", text, re.MULTILINE)))


def log_problems(*paths):
    """What makes job logs hard to read: progress-bar control characters, no epoch lines."""
    epoch_line = re.compile(r"^\S+ epoch \d+/\d+: training loss", re.MULTILINE)
    for path in paths:
        with open(path, newline="", errors="replace") as f:  # newline="": keep each CR
            text = f.read()
        found = [f"{text.count(c)} {name}"
                 for c, name in (("\r", "CR"), ("\x1b", "ESC")) if c in text]
        if not epoch_line.search(text):
            found.append("no 'M epoch i/n: training loss' lines")
        if found:
            print(f"{os.path.basename(path)}: {', '.join(found)}")


if __name__ == "__main__":
    globals()[sys.argv[1].replace("-", "_")](*sys.argv[2:])
