"""The benchmark's printed tables, one function a part."""

from __future__ import annotations

from timing import BATCH, EPOCH_IMAGES


def print_report(results: dict) -> None:
    print(
        f"\n{results['device_name']} ({results['device']}, {results['threads']} threads, "
        f"project precision {results['precision']}, torch {results['torch']}); "
        f"load average {results['load_average'][0]:.2f} at start"
    )
    for part, show in (
        ("throughput", print_throughput),
        ("between", print_between),
        ("quality", print_quality),
        ("scaling", print_scaling),
        ("curves", print_curves),
        ("original_precision", print_precision),
        ("levers", print_levers),
    ):
        if part in results:
            show(results[part], results)


def print_throughput(throughput: dict, results: dict) -> None:
    print(
        f"\nThroughput, batch {BATCH} ({results['steps']} steps x {results['repeats']} repeats, "
        f"median, extrapolated to {EPOCH_IMAGES:,} images):"
    )
    print(f"{'model':<7}{'trainer':<15}{'s/epoch':>10}{'images/s':>10}{'speedup':>9}")
    for model, r in throughput.items():
        print(
            f"{model:<7}{'typical port':<15}{r['typical_port']['seconds_per_epoch']:>10.2f}"
            f"{r['typical_port']['images_per_s']:>10.0f}{1:>9.2f}"
        )
        print(
            f"{model:<7}{'project':<15}{r['project']['seconds_per_epoch']:>10.2f}"
            f"{r['project']['images_per_s']:>10.0f}{r['speedup']:>9.2f}"
        )


def print_between(between: dict, results: dict) -> None:
    for recipe, b in between.items():
        total, budget = b["fixed_total_seconds"], b["budget_seconds"]
        print(
            f"\nBetween two epochs, {b['model']} model, {recipe} recipe ({b['epochs']} epochs of "
            f"{b['batches_per_epoch']} batches), median of the repeats on this machine:"
        )
        print("  work a faster device does not speed up (host work, file writes, bookkeeping):")
        for name, seconds in b["fixed_seconds"].items():
            print(f"    {seconds * 1000:>9.3f} ms  {name}")
        verdict = "within" if total <= budget else "OVER"
        print(
            f"    {total * 1000:>9.3f} ms  in all: {verdict} the {budget * 1000:.0f} ms budget "
            f"(10 % of a {b['gpu_epoch_seconds'] * 1000:.0f} ms GPU epoch)"
        )
        print(f"    (on a terminal, bars instead of plain lines: {b['progress_bars_seconds'] * 1000:.3f} ms)")
        print(f"  work that scales with the device (a training epoch is {b['training_epoch_flops'] / 1e12:.1f} TFLOP):")
        for name, s in b["scaled"].items():
            print(
                f"    {name}: {s['flops'] / 1e9:.0f} GFLOP, {s['seconds_here']:.3f} s here, "
                f"{s['seconds_at_gpu_rate'] * 1000:.2f} ms at the GPU epoch's rate"
            )


def print_quality(quality: dict, results: dict) -> None:
    print("\nTime to the original's test MSE (training clock; evaluation excluded, shown apart):")
    print(f"{'model':<7}{'recipe':<10}{'target':>8}{'seconds':>9}{'epochs':>7}{'best MSE':>10}{'eval s':>8}")
    for recipe, models in quality.items():
        for model, r in models.items():
            seconds = f"{r['seconds']:.1f}" if r["reached"] else f">{r['train_seconds']:.0f}"
            target = f"{r['target_mse']:.4f}" if r["target_mse"] else "-"
            print(
                f"{model:<7}{recipe:<10}{target:>8}{seconds:>9}{r['epochs']:>7}"
                f"{r['best_mse']:>10.4f}{r['eval_seconds']:>8.1f}"
            )


def print_scaling(scaling: dict, results: dict) -> None:
    print(f"\nScaling, {scaling['model']} model (a few steps, extrapolated per epoch):")
    print(f"{'batch':>6}{'images':>8}{'s/epoch':>10}{'images/s':>10}{'peak RSS MB':>13}{'CUDA MB':>9}")
    for r in scaling["rows"]:
        cuda = f"{r['cuda_peak_mb']:.0f}" if "cuda_peak_mb" in r else "-"
        print(
            f"{r['batch_size']:>6}{r['train_images']:>8}{r['seconds_per_epoch']:>10.2f}"
            f"{r['images_per_s']:>10.0f}{r['peak_rss_mb']:>13.0f}{cuda:>9}"
        )


def print_curve_table(c: dict, extra: dict[str, list[float]] | None = None) -> None:
    """Validation MSE of each curve after each epoch, the gap of the first side's mean to the
    second's, and the noise it is set against; `extra` adds columns (the 2016 run)."""
    names, extra = list(c["curves"]), extra or {}
    print(
        f"{'epoch':>5}"
        + "".join(f"{name.replace(' seed ', ' s'):>13}" for name in [*names, *extra])
        + f"{'gap':>9}{'noise':>8}"
    )
    for epoch, gap in enumerate(c["gaps"]):
        values = [c["curves"][n]["validation_loss"][epoch] for n in names] + [v[epoch] for v in extra.values()]
        print(
            f"{epoch + 1:>5}"
            + "".join(f"{v:>13.5f}" for v in values)
            + f"{gap['gap']:>+9.2%}{gap['two_standard_errors']:>8.2%}"
        )
    verdict = "within" if c["within_noise_at_end"] else "OUTSIDE"
    outside = ", ".join(map(str, c["epochs_outside_noise"])) or "none"
    print(f"final validation MSE: {verdict} the noise; epochs outside it: {outside}")


def print_curves(c: dict, results: dict) -> None:
    print(
        f"\nLoss curves, {c['model']} model, {c['epochs']}-epoch modern schedule on {c['train_images']:,} "
        f"images, validation MSE after each epoch; project = {c['project']}, reference = {c['reference']}; "
        "gap = project mean / reference mean - 1, noise = two standard errors of that gap:"
    )
    print_curve_table(c)


def print_precision(c: dict, results: dict) -> None:
    print(
        f"\nOriginal recipe, {c['model']} model, bf16 autocast against fp32 throughout, {c['epochs']} epochs "
        f"on {c['train_images']:,} images, fp32 validation MSE after each epoch; gap = bf16 mean / fp32 "
        "mean - 1; 2016 = the original run's validation loss as a true mean:"
    )
    original = c.get("original_2016_validation_loss")
    print_curve_table(c, {"2016": original} if original else None)
    seconds = {name: sum(curve["epoch_seconds"]) / len(curve["epoch_seconds"]) for name, curve in c["curves"].items()}
    print("seconds an epoch: " + ", ".join(f"{name} {s:.1f}" for name, s in seconds.items()))


def print_levers(levers: dict, results: dict) -> None:
    print(f"\nLevers, {levers['model']} model, batch {BATCH}, each changed alone from the project's step:")
    print(f"{'lever':<58}{'images/s':>9}{'speed':>7}{'loss change':>13}")
    for r in levers["step"]:
        change = f"{r['loss_change']:+.2%}" if "loss_change" in r else "-"
        extra = f"  (compile {r['compile_seconds']:.0f} s)" if "compile_seconds" in r else ""
        print(f"{r['lever']:<58}{r['images_per_s']:>9.0f}{r['speed_vs_project']:>7.2f}{change:>13}{extra}")
    for r in levers["eval"]:
        mse = f"MSE {r['mse']:.5f}"
        print(f"{r['lever']:<58}{r['images'] / r['seconds']:>9.0f}{r['speed_vs_typical']:>7.2f}{mse:>13}")
