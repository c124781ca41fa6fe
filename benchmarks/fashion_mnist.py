"""Accuracy benchmark: a fully binary BCNN18 against its float twin on the real Fashion-MNIST.

One command of the training CLI does both, with the same budget: step 0 trains the float twin
(`--teacher float-twin`, `--teacher-epochs` = phase 1 + phase 2 epochs), then the fully binary
model starts from the float twin's weights (`--init-from-teacher`) and trains in two steps,
distilled from it. Both train without augmentation (`--augment` adds it): in this short
schedule the models underfit with it. Reports the 10k-test top-1 of the float twin,
after phase 1 and after phase 2, prints a table and writes JSON.

    python benchmarks/fashion_mnist.py            # or: make bench-accuracy
"""

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time

from common import RESULTS_DIR, write_json

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TARGET_TOP1 = 0.91


def training_arguments(args):
    epochs = args.phase1_epochs + args.phase2_epochs
    return [
        "--dataset", "fashion_mnist", "--model", "BCNN18",
        "--width-multiplier", str(args.width_multiplier), "--stem-strides", str(args.stem_strides),
        "--phase1-epochs", str(args.phase1_epochs), "--phase2-epochs", str(args.phase2_epochs),
        "--teacher", "float-twin", "--teacher-epochs", str(epochs), "--init-from-teacher",
        "--batch-size", str(args.batch_size), "--learning-rate", str(args.learning_rate),
        "--phase2-learning-rate", str(args.phase2_learning_rate),
        *([] if args.augment else ["--no-augment"]),
        "--seed", str(args.seed), "--output-dir", args.output_dir, "--verbose", "2",
    ]


def _test_top1(history, epoch):
    return next(r["val_accuracy"] for r in history if r["epoch"] == epoch)


def _load(path):
    with open(path) as stream:
        return json.load(stream)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width-multiplier", type=float, default=0.375)
    parser.add_argument("--stem-strides", type=int, default=2)
    parser.add_argument("--phase1-epochs", type=int, default=5)
    parser.add_argument("--phase2-epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--phase2-learning-rate", type=float, default=3e-3)
    parser.add_argument("--augment", action="store_true", help="train with the standard augmentation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=os.path.join("runs", "bench_fashion_mnist"), help="relative to the repo")
    parser.add_argument("--json", default=os.path.join(RESULTS_DIR, "fashion_mnist.json"))
    args = parser.parse_args()

    arguments = training_arguments(args)
    output_dir = os.path.join(REPO, args.output_dir)
    if os.path.commonpath([os.path.abspath(output_dir), os.path.join(REPO, "runs")]) != os.path.join(REPO, "runs"):
        parser.error("--output-dir must be inside runs/ (the benchmark deletes it first)")
    # The training CLI resumes from an existing output dir; a benchmark must time a fresh run.
    shutil.rmtree(output_dir, ignore_errors=True)
    command = [sys.executable, "-m", "bcnn_keras.train", *arguments]
    print("running:", shlex.join(["python", "-m", "bcnn_keras.train", *arguments]), flush=True)
    started = time.time()
    subprocess.run(command, check=True, cwd=REPO)
    minutes = (time.time() - started) / 60

    float_history = _load(os.path.join(output_dir, "teacher", "history.json"))
    binary_history = _load(os.path.join(output_dir, "history.json"))
    epochs = args.phase1_epochs + args.phase2_epochs
    results = {
        "dataset": "fashion_mnist (10k test images)",
        "command": shlex.join(["python", "-m", "bcnn_keras.train", *arguments]),
        "epochs_each": epochs,
        "top1": {
            "float_twin": _test_top1(float_history, epochs - 1),
            "binary_after_phase1": _test_top1(binary_history, args.phase1_epochs - 1),
            "binary_final": _test_top1(binary_history, epochs - 1),
        },
        "target_top1": TARGET_TOP1,
        "wall_minutes": round(minutes, 1),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }
    results["target_met"] = results["top1"]["binary_final"] >= TARGET_TOP1

    print(f"\nFashion-MNIST top-1 (10k test), {epochs} epochs each, {minutes:.1f} min in total")
    print(f"{'model':32s} {'top-1':>7s}")
    labels = {
        "float_twin": "float twin (same architecture)",
        "binary_after_phase1": "BCNN18 after phase 1",
        "binary_final": "BCNN18 fully binary (final)",
    }
    for key, label in labels.items():
        print(f"{label:32s} {results['top1'][key]:7.2%}")
    print(f"target {TARGET_TOP1:.1%}: {'met' if results['target_met'] else 'MISSED'}")
    write_json(results, args.json)


if __name__ == "__main__":
    main()
