"""The benchmark compares like with like, and writes its results whole."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch

import bench_train
import curves
import gpu_check
import timing
from autoencoder import training
from autoencoder.device import tf32_switches
from autoencoder.files import OutputPaths, load_info
from autoencoder.model import load_model, parse_code
from autoencoder.training import TrainingState, train_step
from conftest import ROOT, tiny_splits, train

pytestmark = pytest.mark.slow


def tiny_batch() -> torch.Tensor:
    return torch.from_numpy(tiny_splits()[0][0][:8])


def one_step_each(device: torch.device) -> tuple[float, float, timing.TypicalPort, TrainingState]:
    """One step of the typical port and one of the project's trainer, same weights, same batch, fp32."""
    x = tiny_batch().to(device)
    spec = parse_code("3D")
    state = timing.new_state(timing.bench_config(spec, device, "fp32"), len(x))
    port = timing.TypicalPort(spec, timing.as_uint8(x.cpu().numpy()), device)
    port.model.load_state_dict(state.model.state_dict())
    torch.manual_seed(0)
    port_loss = port.step(x)
    torch.manual_seed(0)  # the same dropout masks for both steps
    return port_loss, train_step(state, x).item(), port, state


def test_typical_port_dataset_yields_the_projects_pixels():
    x = tiny_batch()
    dataset = timing.UInt8Images(timing.as_uint8(x.numpy()))
    assert all(torch.equal(dataset[i], x[i]) for i in range(len(x)))


def test_typical_port_and_project_step_compute_the_same_loss_and_update():
    port_loss, project_loss, port, state = one_step_each(torch.device("cpu"))
    assert project_loss == pytest.approx(port_loss, rel=1e-6)
    for a, b in zip(port.model.parameters(), state.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # default vs fused AdamW


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_typical_port_and_project_step_agree_on_cuda():
    port_loss, project_loss, port, state = one_step_each(torch.device("cuda"))
    assert project_loss == pytest.approx(port_loss, rel=1e-4)
    for a, b in zip(port.model.parameters(), state.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def results_file(folder: Path) -> dict:
    files = sorted(folder.iterdir())
    assert [f.suffix for f in files] == [".json"], files  # one file, no temporary left behind
    assert re.fullmatch(r"cpu-[a-z0-9-]+(-quick|-levers)?\.json", files[0].name)
    return json.loads(files[0].read_text())


TINY = ["--device", "cpu", "--steps", "1", "--repeats", "1", "--threads", "1"]


def bench(data: Path, results: Path, options: str) -> int:
    """benchmarks/bench_train.py OPTIONS on `data` with tiny settings, its results into `results`."""
    return bench_train.main(["--data", str(data), "--results-dir", str(results), *options.split(), *TINY])


def test_quick_run_writes_its_json_and_ends_with_the_speedup_line(tiny_mnist, tmp_path, capsys):
    assert bench(tiny_mnist, tmp_path, "--quick") == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    results = results_file(tmp_path)
    assert re.fullmatch(r"speedup_vs_typical_port: \d+\.\d\d", last)
    assert float(last.split()[-1]) == pytest.approx(results["speedup_vs_typical_port"], abs=0.005)
    for trainer in ("typical_port", "project"):
        assert {"seconds_per_epoch", "images_per_s", "repeat_seconds"} <= set(results["throughput"]["3D"][trainer])
    assert results["device"] == "cpu" and results["threads"] == 1


def test_quick_run_times_what_happens_between_epochs_against_the_budget(tiny_mnist, tmp_path, capsys):
    assert bench(tiny_mnist, tmp_path, "--quick") == 0
    out = capsys.readouterr().out
    between = results_file(tmp_path)["between"]
    assert set(between) == {"modern", "original"}
    for b in between.values():
        assert b["fixed_total_seconds"] == pytest.approx(sum(b["fixed_seconds"].values()))
        assert all(s >= 0 for s in b["fixed_seconds"].values()) and b["budget_seconds"] == 0.005
        assert set(b["scaled"]) == {"validation", "code trace"}
        assert b["scaled"]["validation"]["flops"] == 20 * b["training_epoch_flops"] / 3 / 50_000  # 20 tiny images
    assert "work a faster device does not speed up" in out and "in all:" in out


def test_precision_part_sets_bf16_against_fp32_beside_the_2016_curve(tiny_mnist, tmp_path, capsys):
    assert bench(tiny_mnist, tmp_path, "--models 3D --parts precision --precision-epochs 2") == 0
    result = results_file(tmp_path)["original_precision"]
    assert list(result["curves"]) == ["bf16 seed 0", "bf16 seed 1", "fp32 seed 0", "fp32 seed 1"]
    assert all(len(c["validation_loss"]) == 2 for c in result["curves"].values())
    assert result["original_2016_validation_loss"] == pytest.approx([0.219850049132 * 1.05, 0.181715469985 * 1.05])
    assert "2016" in capsys.readouterr().out


def test_full_run_reports_time_to_quality_and_scaling(tiny_mnist, tmp_path):
    options = "--models 3D --parts quality,scaling --time-limit 0.001 --batch-sizes 16,32 --train-sizes 30,60"
    assert bench(tiny_mnist, tmp_path, options) == 0
    results = results_file(tmp_path)
    for recipe in ("modern", "original"):
        run = results["quality"][recipe]["3D"]
        assert run["epochs"] == 1 and run["target_mse"] == pytest.approx(0.0332, abs=5e-5)  # stopped by the time limit
        assert run["reached"] == (run["seconds"] is not None)
    rows = results["scaling"]["rows"]
    # batch sizes are measured on the whole training set (60 tiny images), then each size at batch 500
    assert [(r["batch_size"], r["train_images"]) for r in rows] == [(16, 60), (32, 60), (500, 30), (500, 60)]
    assert all(r["seconds_per_epoch"] > 0 and r["peak_rss_mb"] > 0 for r in rows)


def test_bad_device_is_one_line_error(tiny_mnist, tmp_path, capsys):
    assert bench_train.main(["--quick", "--device", "nonsense", "--results-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: unknown device")
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_gpu_check_without_cuda_exits_with_a_clear_message():
    script = ROOT / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "no CUDA device here" in result.stderr


def test_loss_curves_set_the_gap_between_steps_against_the_seed_noise(tiny_mnist, tmp_path):
    options = "--models 3D --parts curves --curve-epochs 3 --curve-images 40 --precision fp32"
    assert bench(tiny_mnist, tmp_path, options) == 0
    result = results_file(tmp_path)["curves"]
    seeds = [f"seed {s}" for s in curves.CURVE_SEEDS]
    assert list(result["curves"]) == [f"{name} {s}" for name in ("reference", "project") for s in seeds]
    assert all(len(c["validation_loss"]) == len(c["training_loss"]) == 3 for c in result["curves"].values())
    assert result["train_images"] == 40
    # both fp32 here: one seed's runs differ only by fused against default AdamW, far below the seed noise
    for gap in result["gaps"]:
        assert abs(gap["gap"]) < 1e-4 < gap["two_standard_errors"]
    assert result["within_noise_at_end"] is True and result["epochs_outside_noise"] == []


def test_a_gap_beyond_two_standard_errors_is_outside_the_noise():
    gap = curves.curve_gap([1.10, 1.11, 1.12], [1.00, 1.01, 1.02])
    assert gap["gap"] == pytest.approx(0.099, abs=1e-3)
    assert gap["two_standard_errors"] == pytest.approx(2 * 0.01 * (2 / 3) ** 0.5 / 1.01, rel=1e-6)
    assert abs(gap["gap"]) > gap["two_standard_errors"]


def test_gpu_check_dry_run_lists_every_step_without_a_gpu():
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DRY_RUN": "1"},
    )
    assert result.returncode == 0, result.stderr
    steps = [line for line in result.stdout.splitlines() if line.startswith("=== ")]
    assert [s.split()[1:4] for s in steps] == [
        ["python", "-m", "pytest"],
        ["python", "auto_encoder.py", "--device"],
        ["python", "auto_encoder.py", "--device"],
        ["python", "benchmarks/gpu_check.py", "--device"],
    ]
    assert "--recipe original --model 3D --precision fp32" in steps[2]
    assert result.stdout.strip().splitlines()[-1].startswith("gpu_check: dry run, nothing was run")


def test_gpu_check_verdicts_go_to_one_json_and_one_summary_line(tiny_mnist, trained_output, tmp_path, capsys):
    argv = [
        "--device",
        "cpu",
        "--data",
        str(tiny_mnist),
        "--default-dir",
        str(trained_output),
        "--original-dir",
        str(trained_output),
        "--json",
        str(tmp_path / "gpu.json"),
        "--timed-epochs",
        "1",
        "--compile-modes",
        "none",
    ]
    assert gpu_check.main(argv) == 1  # two tiny epochs are far from the reference MSEs
    results = json.loads((tmp_path / "gpu.json").read_text())
    assert [c["model"] for c in results["default_run"]] == ["3D", "4x4"]
    assert results["original_recipe"]["band"] == pytest.approx([0.0332225 * 0.9, 0.0332225 * 1.1], rel=1e-5)
    assert results["steps"][0]["compile"] == "none" and results["steps"][0]["ms_per_epoch"] > 0
    assert results["passed"] is False
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("gpu_check: FAIL on ") and "OUT OF BAND" in last and "target 25" in last


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_tiny_run_trains_on_cuda_and_its_weights_load_on_the_cpu(tiny_mnist, tmp_path):
    assert train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "2", "--device", "cuda", "--precision", "auto") == 0
    info = load_info(OutputPaths.of(tmp_path, "3D").info)
    assert info["config"]["device"].startswith("cuda") and info["config"]["precision"] == "bf16"
    assert 0 < info["test mse"] < 1
    assert load_model(OutputPaths.of(tmp_path, "3D").weights, "cpu").spec.name == "3D"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp32_runs_without_tf32_on_cuda_as_in_2016(tiny_mnist, tmp_path, monkeypatch):
    seen = []
    real_step = training.train_step
    owner, name, tf32, _ = tf32_switches()[0]

    def counting_step(state, x):
        seen.append(getattr(owner, name) == tf32)
        return real_step(state, x)

    monkeypatch.setattr(training, "train_step", counting_step)
    assert (
        train(tmp_path, tiny_mnist, "--model", "3D", "--epochs", "1", "--device", "cuda", "--recipe", "original") == 0
    )
    assert seen and not any(seen)


def test_the_benchmark_writes_its_results_where_git_ignores_them_by_default():
    written = bench_train.parse_args([]).results_dir / "cpu-some-cpu.json"
    assert subprocess.run(["git", "check-ignore", "-q", str(written)], cwd=ROOT).returncode == 0
    assert not written.resolve().is_relative_to(ROOT / "benchmarks" / "results")
