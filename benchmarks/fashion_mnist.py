"""Accuracy benchmark: a fully binary BCNN against its float twin on the real Fashion-MNIST.

One command of the training CLI does both: step 0 trains the float twin (`--teacher
float-twin`), then the fully binary model starts from the twin's weights (`--init-from-teacher`)
and trains in two steps, distilled from it. Recipes (`benchmarks/recipes.py`) were chosen on a
validation set of 5,000 held-out training images: both models train on the other 55,000, their
per-epoch curves are measured on the validation set, and the 10k test set is evaluated once per
model, at the end. Then the exporter CLI converts the binary model and checks Keras against LCE
on all 10k test images. Prints a table and writes JSON with the exact commands, the wall time
and the CPU, and a PNG of the validation top-1 per epoch.

    python benchmarks/fashion_mnist.py                       # the fast recipe: make bench-accuracy
    python benchmarks/fashion_mnist.py --recipe accurate     # make bench-accuracy-93
"""

import argparse
import os
import shlex
import subprocess
import sys
import time

import recipes
from bcnn_keras.export.defaults import BENCHMARK_PARITY_THRESHOLD
from bcnn_keras.export.report import Report
from bcnn_keras.files import read_json
from bcnn_keras.run_dir import TEACHER, read_test_result
from common import REPO, RESULTS_DIR, fresh_run_dir, machine, png_plot, run_training, write_json

TEST_IMAGES = 10_000
# What the fully binary model must reach, per recipe: test top-1 and the largest gap to its twin.
TARGETS = {"fast": (0.92, 0.01), "accurate": (0.93, 0.005)}


def _epoch_value(history, epoch, key="val_accuracy"):
    return next(r[key] for r in history if r["epoch"] == epoch)


def export_and_verify(output_dir, samples):
    """Exports the trained model with the exporter CLI, with parity on `samples` test images."""
    report_path = os.path.join(output_dir, "report.json")
    command = [
        sys.executable,
        os.path.join(REPO, "export", "to_tflite.py"),
        os.path.join(output_dir, "model.keras"),
        "-o",
        os.path.join(output_dir, "model.tflite"),
        "--verify",
        "fashion_mnist",
        "--samples",
        str(samples),
        "--parity-threshold",
        str(BENCHMARK_PARITY_THRESHOLD),
        "--report",
        report_path,
        "--overwrite",
    ]
    # Below the threshold the exporter refuses the file but still writes its report.
    exit_code = subprocess.run(command, cwd=REPO).returncode
    if not os.path.exists(report_path):
        sys.exit(f"error: the export failed (exit code {exit_code}) before it wrote {report_path}")
    report = Report.from_dict(read_json(report_path))
    return {
        "exporter_exit_code": exit_code,
        "size_bytes": report.size_bytes,
        "binary_mac_fraction": report.binary_mac_fraction,
        "top1_agreement": report.parity.top1_agreement,
        "samples": report.parity.samples,
        "tflite_top1": report.parity.tflite_accuracy,
        "latency_ms_x86": report.latency_ms_x86,
    }


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=sorted(recipes.RECIPES), default="fast")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--set",
        metavar="SETTING=VALUE",
        nargs="+",
        default=[],
        help="override settings of the recipe, named as TrainConfig fields (phase2_epochs=14)",
    )
    parser.add_argument("--train-limit", type=int, help="train on the first N images only (smoke runs)")
    parser.add_argument("--test-limit", type=int, help="evaluate on the first N test images only (smoke runs)")
    parser.add_argument(
        "--verify-samples", type=int, default=TEST_IMAGES, help="test images of the Keras/LCE parity check"
    )
    parser.add_argument("--output-dir", help="relative to the repo (default: runs/bench_fashion_mnist_RECIPE_sSEED)")
    parser.add_argument("--json", help="default: benchmarks/results/fashion_mnist_RECIPE_sSEED.json")
    parser.add_argument("--png", help="validation top-1 per epoch (default: the --json path with .png)")
    return parser.parse_args()


def _overrides(pairs):
    """`--set` values, parsed as their `TrainConfig` field's type ("none" is None)."""
    import dataclasses

    from bcnn_keras.training.cli import value_type
    from bcnn_keras.training import TrainConfig

    fields = {field.name: field for field in dataclasses.fields(TrainConfig)}
    parsed = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        if name not in fields:
            sys.exit(f"error: --set {pair}: no setting {name!r} (settings are TrainConfig's fields)")
        kind = value_type(fields[name])
        parsed[name] = None if text == "none" else text == "true" if kind is bool else kind(text)
    return parsed


def main():
    args = parse_args()
    name = f"{args.recipe}_s{args.seed}"
    output_dir = fresh_run_dir(args.output_dir or os.path.join("runs", f"bench_fashion_mnist_{name}"))
    limits = {
        key: value for key, value in (("train_limit", args.train_limit), ("test_limit", args.test_limit)) if value
    }
    config = recipes.config(args.recipe, os.path.relpath(output_dir, REPO), args.seed, **_overrides(args.set), **limits)
    target_top1, max_gap = TARGETS[args.recipe]

    started = time.time()
    training_command, _ = run_training(config.to_argv())
    exported = export_and_verify(output_dir, args.verify_samples)
    minutes = (time.time() - started) / 60

    float_history = read_json(os.path.join(output_dir, TEACHER, "history.json"))
    binary_history = read_json(os.path.join(output_dir, "history.json"))
    validation = {
        "float_twin": _epoch_value(float_history, config.teacher_training_epochs - 1),
        "binary_after_phase1": _epoch_value(binary_history, config.phase1_epochs - 1) if config.phase1_epochs else None,
        "binary_final": _epoch_value(binary_history, config.epochs - 1),
    }
    test = {
        "float_twin": read_test_result(os.path.join(output_dir, TEACHER))["top1"],
        "binary_final": read_test_result(output_dir)["top1"],
    }
    test_images = read_test_result(output_dir)["images"]
    results = {
        "dataset": f"fashion_mnist: {config.validation_images} validation images held out of the 60k training images, "
        f"{test_images} test images",
        "selected_on": "validation",
        "recipe": args.recipe,
        "benchmark_command": shlex.join(["python", "benchmarks/fashion_mnist.py", *sys.argv[1:]]),
        "command": training_command,
        "epochs": {
            "float_twin": config.teacher_training_epochs,
            "phase1": config.phase1_epochs,
            "phase2": config.phase2_epochs,
        },
        "validation_top1": validation,
        "test_top1": test,
        "gap_to_float_twin": test["float_twin"] - test["binary_final"],
        "exported": exported,
        "target_top1": target_top1,
        "max_gap_to_float_twin": max_gap,
        "wall_minutes": round(minutes, 1),
        **machine(),
    }
    results["target_met"] = (
        test["binary_final"] >= target_top1
        and results["gap_to_float_twin"] <= max_gap
        and exported["binary_mac_fraction"] == 1.0
        and exported["top1_agreement"] >= BENCHMARK_PARITY_THRESHOLD
    )
    print_table(results, config)
    json_path = args.json or os.path.join(RESULTS_DIR, f"fashion_mnist_{name}.json")
    write_json(results, json_path)
    png = args.png or os.path.splitext(json_path)[0] + ".png"
    plot_validation_accuracy(float_history, binary_history, config.phase1_epochs, target_top1, png)
    print("wrote", png)


def print_table(results, config):
    validation, test, exported = results["validation_top1"], results["test_top1"], results["exported"]
    print(
        f"\nFashion-MNIST top-1, recipe {results['recipe']}, {results['wall_minutes']:.1f} min in total "
        "(training, export, parity)"
    )
    print(f"{'model':36s} {'epochs':>6s} {'validation':>10s} {'test':>7s}")
    rows = (
        (
            "float twin (same architecture)",
            config.teacher_training_epochs,
            validation["float_twin"],
            test["float_twin"],
        ),
        ("after phase 1", config.phase1_epochs, validation["binary_after_phase1"], None),
        ("fully binary (final)", config.epochs, validation["binary_final"], test["binary_final"]),
        ("exported .tflite on LCE", "", None, exported["tflite_top1"]),
    )
    for label, epochs_run, on_validation, on_test in rows:
        cells = [f"{value:.2%}" if value is not None else "" for value in (on_validation, on_test)]
        print(f"{label:36s} {epochs_run!s:>6s} {cells[0]:>10s} {cells[1]:>7s}")
    print(
        f"exported: {exported['size_bytes']:,} bytes, {exported['binary_mac_fraction']:.0%} binary MACs, "
        f"Keras/LCE top-1 agreement {exported['top1_agreement']:.2%} on {exported['samples']:,} images"
    )
    verdict = "met" if results["target_met"] else "MISSED"
    print(
        f"target >= {results['target_top1']:.1%} fully binary on test, within {results['max_gap_to_float_twin']:.1%} "
        f"of the twin, >= {BENCHMARK_PARITY_THRESHOLD:.1%} agreement: {verdict}"
    )


def plot_validation_accuracy(float_history, binary_history, phase1_epochs, target, path):
    """Validation top-1 per epoch of the float twin and of the binary student (both phases),
    with the phase switch and the target, to the PNG `path`."""
    title = "Fashion-MNIST: fully binary model against its float twin"
    with png_plot(path, title, "epoch (of each model)", "validation top-1 (%)", size=(7, 4)) as axis:
        for history, label in ((float_history, "float twin"), (binary_history, "fully binary")):
            epochs = [record["epoch"] + 1 for record in history]
            axis.plot(epochs, [100 * record["val_accuracy"] for record in history], marker="o", label=label)
        axis.axvline(phase1_epochs + 0.5, color="gray", linestyle="--", label="student: phase 1 -> 2")
        axis.axhline(100 * target, color="red", linestyle=":", label=f"target {target:.0%} (on test)")
        axis.set_ylim(bottom=max(80, axis.get_ylim()[0]))
        axis.legend(loc="lower right")


if __name__ == "__main__":
    main()
