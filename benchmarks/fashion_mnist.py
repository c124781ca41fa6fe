"""Accuracy benchmark: a fully binary BCNN18 against its float twin on the real Fashion-MNIST.

One command of the training CLI does both: step 0 trains the float twin (`--teacher
float-twin`, `--teacher-epochs`), then the fully binary model starts from the float twin's
weights (`--init-from-teacher`) and trains in two steps, distilled from it. Both train without
augmentation by default (`--augment` sets it). Then the exporter CLI converts the model and
checks Keras against LCE on all 10k test images. Reports the 10k-test top-1 of the float twin,
after phase 1, after phase 2 and of the exported file, prints a table and writes JSON with the
exact commands, the wall time and the CPU, and a PNG of the test top-1 per epoch.

    python benchmarks/fashion_mnist.py            # or: make bench-accuracy
"""

import argparse
import os
import shlex
import subprocess
import sys
import time

from bcnn_keras import data
from bcnn_keras.files import read_json
from bcnn_keras.training import TrainConfig
from common import REPO, RESULTS_DIR, fresh_run_dir, machine, png_plot, run_training, write_json

TARGET_TOP1 = 0.92
TEST_IMAGES = 10_000
# Keras/LCE top-1 agreement the exported model must reach on all test images.
MIN_AGREEMENT = 0.998
# The fully binary model must come within this of its own float twin.
MAX_GAP_TO_TWIN = 0.01


def training_arguments(args):
    return [
        "--dataset", "fashion_mnist", "--model", "BCNN18",
        "--width-multiplier", str(args.width_multiplier), "--channel-multiple", str(args.channel_multiple),
        "--stem-strides", str(args.stem_strides), "--stem-kernel-size", str(args.stem_kernel_size),
        "--phase1-epochs", str(args.phase1_epochs), "--phase2-epochs", str(args.phase2_epochs),
        "--teacher", "float-twin", "--teacher-epochs", str(args.teacher_epochs), "--init-from-teacher",
        "--batch-size", str(args.batch_size), "--learning-rate", str(args.learning_rate),
        "--phase2-learning-rate", str(args.phase2_learning_rate), "--alpha", str(args.alpha),
        "--augment", args.augment,
        *(["--train-limit", str(args.train_limit)] if args.train_limit else []),
        *(["--test-limit", str(args.test_limit)] if args.test_limit else []),
        "--seed", str(args.seed), "--output-dir", args.output_dir, "--verbose", "2",
    ]


def _test_top1(history, epoch):
    return next(r["val_accuracy"] for r in history if r["epoch"] == epoch)


def export_and_verify(output_dir, samples):
    """Exports the trained model with the exporter CLI, with parity on `samples` test images."""
    report_path = os.path.join(output_dir, "report.json")
    command = [
        sys.executable, os.path.join(REPO, "export", "to_tflite.py"), os.path.join(output_dir, "model.keras"),
        "-o", os.path.join(output_dir, "model.tflite"), "--verify", "fashion_mnist",
        "--samples", str(samples), "--parity-threshold", str(MIN_AGREEMENT), "--report", report_path,
    ]
    # Below the threshold the exporter refuses the file but still writes its report.
    exit_code = subprocess.run(command, cwd=REPO).returncode
    if not os.path.exists(report_path):
        sys.exit(f"error: the export failed (exit code {exit_code}) before it wrote {report_path}")
    report = read_json(report_path)
    return {
        "exporter_exit_code": exit_code,
        "size_bytes": report["size_bytes"],
        "binary_mac_fraction": report["binary_mac_fraction"],
        "top1_agreement": report["parity"]["top1_agreement"],
        "samples": report["parity"]["samples"],
        "tflite_top1": report["parity"]["tflite_accuracy"],
        "latency_ms_x86": report["latency_ms_x86"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width-multiplier", type=float, default=0.25)
    parser.add_argument("--channel-multiple", type=int, default=TrainConfig.channel_multiple)
    parser.add_argument("--stem-strides", type=int, default=1)
    parser.add_argument("--stem-kernel-size", type=int, default=3)
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--phase1-epochs", type=int, default=4)
    parser.add_argument("--phase2-epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--phase2-learning-rate", type=float, default=3e-3)
    parser.add_argument("--alpha", type=float, default=TrainConfig.alpha, help="weight of the distillation loss")
    parser.add_argument("--augment", choices=data.AUGMENTATIONS, default="none", help="training augmentation")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--train-limit", type=int, help="train on the first N images only (smoke runs)")
    parser.add_argument("--test-limit", type=int, help="evaluate on the first N test images only (smoke runs)")
    parser.add_argument("--verify-samples", type=int, default=TEST_IMAGES, help="test images of the Keras/LCE parity check")
    parser.add_argument("--output-dir", default=os.path.join("runs", "bench_fashion_mnist"), help="relative to the repo")
    parser.add_argument("--json", default=os.path.join(RESULTS_DIR, "fashion_mnist.json"))
    parser.add_argument("--png", help="test top-1 per epoch (default: the --json path with .png)")
    args = parser.parse_args()

    arguments = training_arguments(args)
    output_dir = fresh_run_dir(args.output_dir)
    started = time.time()
    training_command, _ = run_training(arguments)
    exported = export_and_verify(output_dir, args.verify_samples)
    minutes = (time.time() - started) / 60

    float_history = read_json(os.path.join(output_dir, "teacher", "history.json"))
    binary_history = read_json(os.path.join(output_dir, "history.json"))
    epochs = args.phase1_epochs + args.phase2_epochs
    top1 = {
        "float_twin": _test_top1(float_history, args.teacher_epochs - 1),
        "binary_after_phase1": _test_top1(binary_history, args.phase1_epochs - 1),
        "binary_final": _test_top1(binary_history, epochs - 1),
    }
    results = {
        "dataset": f"fashion_mnist ({args.test_limit or TEST_IMAGES} test images)",
        "benchmark_command": shlex.join(["python", "benchmarks/fashion_mnist.py", *sys.argv[1:]]),
        "command": training_command,
        "epochs": {"float_twin": args.teacher_epochs, "phase1": args.phase1_epochs, "phase2": args.phase2_epochs},
        "top1": top1,
        "gap_to_float_twin": top1["float_twin"] - top1["binary_final"],
        "exported": exported,
        "target_top1": TARGET_TOP1,
        "max_gap_to_float_twin": MAX_GAP_TO_TWIN,
        "wall_minutes": round(minutes, 1),
        **machine(),
    }
    results["target_met"] = (
        top1["binary_final"] >= TARGET_TOP1
        and results["gap_to_float_twin"] <= MAX_GAP_TO_TWIN
        and exported["binary_mac_fraction"] == 1.0
        and exported["top1_agreement"] >= MIN_AGREEMENT
    )

    print(f"\nFashion-MNIST top-1 ({results['dataset']}), {minutes:.1f} min in total (training, export, parity)")
    print(f"{'model':36s} {'epochs':>6s} {'top-1':>7s}")
    rows = (
        ("float twin (same architecture)", args.teacher_epochs, top1["float_twin"]),
        ("BCNN18 after phase 1", args.phase1_epochs, top1["binary_after_phase1"]),
        ("BCNN18 fully binary (final)", epochs, top1["binary_final"]),
        ("exported .tflite on LCE", "", exported["tflite_top1"]),
    )
    for label, epochs_run, accuracy in rows:
        print(f"{label:36s} {epochs_run!s:>6s} {accuracy:7.2%}")
    print(
        f"exported: {exported['size_bytes']:,} bytes, {exported['binary_mac_fraction']:.0%} binary MACs, "
        f"Keras/LCE top-1 agreement {exported['top1_agreement']:.2%} on {exported['samples']:,} images"
    )
    verdict = "met" if results["target_met"] else "MISSED"
    print(
        f"target >= {TARGET_TOP1:.1%} fully binary, within {MAX_GAP_TO_TWIN:.1%} of the twin, "
        f">= {MIN_AGREEMENT:.1%} agreement: {verdict}"
    )
    write_json(results, args.json)
    png = args.png or os.path.splitext(args.json)[0] + ".png"
    plot_test_accuracy(float_history, binary_history, args.phase1_epochs, png)
    print("wrote", png)


def plot_test_accuracy(float_history, binary_history, phase1_epochs, path):
    """Test top-1 per epoch of the float twin and of the binary student (both phases), with the
    phase switch and the target, to the PNG `path`."""
    title = "Fashion-MNIST: fully binary BCNN18 against its float twin"
    with png_plot(path, title, "epoch (of each model)", "test top-1 (%)", size=(7, 4)) as axis:
        for history, label in ((float_history, "float twin"), (binary_history, "fully binary BCNN18")):
            epochs = [record["epoch"] + 1 for record in history]
            axis.plot(epochs, [100 * record["val_accuracy"] for record in history], marker="o", label=label)
        axis.axvline(phase1_epochs + 0.5, color="gray", linestyle="--", label="student: phase 1 -> 2")
        axis.axhline(100 * TARGET_TOP1, color="red", linestyle=":", label=f"target {TARGET_TOP1:.0%}")
        axis.set_ylim(bottom=max(80, axis.get_ylim()[0]))
        axis.legend(loc="lower right")


if __name__ == "__main__":
    main()
