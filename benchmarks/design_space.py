"""Design-space benchmark: what full binarization costs and buys, row by row, on Fashion-MNIST.

Every row is BCNN18 at the accuracy benchmark's width multiplier (0.25) with a 3x3 input block
at stride 2 by default (stride 1, the accuracy benchmark's, about doubles the time of every row),
trained with the same short recipe and budget by the training CLI on the real Fashion-MNIST (60k train, 10k test, no augmentation):
the float twin first, then every other row in two steps (phase 1 + phase 2 epochs, as many as
the twin's), distilled from that twin. The rows differ only in which layers are float: the
input layer, the downsampling shortcuts, the classifier, or none (fully binary, at two width
roundings: multiples of 32, one word of LCE's bit-packing, and multiples of 8).

Each trained model is exported (`--allow-float` where needed), its `.tflite` size and binary MAC
share read from the flatbuffer, and all rows are timed at 28x28 on the LCE interpreter (x86,
1 thread, indirect BGEMM + XNNPACK) in interleaved rounds, as a ratio to the float twin.
Prints a table, writes JSON and a PNG (top-1 against latency, marker area = file size).

    python benchmarks/design_space.py            # or: make bench-design
"""

import argparse
import os
import shlex
import sys
import time

from bcnn_keras.run_dir import load_history
from bcnn_keras.training import TrainConfig
from common import (
    REPO, RESULTS_DIR, fresh_run_dir, interleaved_latencies, machine, run_training, png_plot, write_json,
)

TWIN = "float_twin"
# name -> (label, training CLI flags on top of the common ones). The twin comes first: it is
# every other row's teacher.
ROWS = {
    TWIN: ("float twin (real weights, hard-tanh for sign)", ["--float-twin"]),
    "larq_zoo_style": ("float input layer + float classifier", ["--input-layer", "float", "--classifier", "float"]),
    "float_shortcuts": (
        "float input, shortcuts, classifier",
        ["--input-layer", "float", "--shortcut", "float_conv", "--classifier", "float"],
    ),
    "float_classifier": ("float classifier only", ["--classifier", "float"]),
    "float_input": ("float input layer only", ["--input-layer", "float"]),
    "binary_x32": ("fully binary, widths x32", ["--channel-multiple", "32"]),
    "binary_x8": ("fully binary, widths x8", ["--channel-multiple", "8"]),
}
LATENCY_SETTINGS = dict(threads=1, indirect_bgemm=True, xnnpack=True)


def common_arguments(args):
    return [
        "--dataset", "fashion_mnist", "--model", "BCNN18", "--width-multiplier", str(args.width_multiplier),
        "--stem-strides", str(args.stem_strides), "--stem-kernel-size", str(args.stem_kernel_size),
        "--phase1-epochs", str(args.phase1_epochs), "--phase2-epochs", str(args.phase2_epochs),
        "--batch-size", str(args.batch_size), "--learning-rate", str(args.learning_rate), "--no-augment",
        "--seed", str(args.seed), "--verbose", "2",
        *(["--train-limit", str(args.train_limit)] if args.train_limit else []),
        *(["--test-limit", str(args.test_limit)] if args.test_limit else []),
    ]


def row_arguments(args, name, output_dir):
    """The training CLI's arguments for one row, with paths relative to the repo."""
    flags = ROWS[name][1]
    if "--channel-multiple" not in flags:
        flags = [*flags, "--channel-multiple", str(args.channel_multiple)]
    relative_dir = os.path.relpath(output_dir, REPO)
    if name != TWIN:
        flags = [*flags, "--teacher", os.path.join(relative_dir, TWIN, "model.keras")]
    return [*common_arguments(args), *flags, "--output-dir", os.path.join(relative_dir, name)]


def export_row(name, output_dir):
    """`(flatbuffer, facts)` of one trained row, through the exporter (float layers allowed)."""
    from bcnn_keras import export

    row_dir = os.path.join(output_dir, name)
    report = export.export(
        os.path.join(row_dir, "model.keras"), os.path.join(row_dir, "model.tflite"), allow_float=True, latency_runs=0
    )
    with open(os.path.join(row_dir, "model.tflite"), "rb") as stream:
        flatbuffer = stream.read()
    facts = {
        "size_bytes": report["size_bytes"],
        "binary_mac_fraction": report["binary_mac_fraction"],
        "macs": report["macs"],
        "float_layers": [entry["layer"] for entry in report["float_layers"]],
    }
    return flatbuffer, facts


def _final_records(row_dir, phase1_epochs):
    history = load_history(os.path.join(row_dir, "history.json"))
    after_phase1 = next((r["val_accuracy"] for r in history if r["epoch"] == phase1_epochs - 1), None)
    return history[-1]["val_accuracy"], after_phase1


def print_table(rows):
    header = f"{'row':46s} {'top-1':>7s} {'size':>10s} {'binary MACs':>12s} {'latency':>9s} {'vs twin':>8s}"
    print("\n" + header)
    print("-" * len(header))
    for row in rows.values():
        print(
            f"{row['label']:46s} {row['top1']:7.2%} {row['size_bytes'] / 1e3:8.1f}kB {row['binary_mac_fraction']:12.1%} "
            f"{row['latency']['median_ms']:7.3f}ms {row['latency_vs_float_twin']:7.2f}x"
        )


def plot(rows, path):
    largest = max(row["size_bytes"] for row in rows.values())
    with png_plot(
        path,
        "BCNN18 design space (marker area = .tflite size)",
        "x86 latency at 28x28 / float twin's (LCE interpreter, 1 thread)",
        "Fashion-MNIST test top-1, %",
        size=(7, 4.5),
    ) as axes:
        slowest = max(row["latency_vs_float_twin"] for row in rows.values())
        for name, row in rows.items():
            x, y = row["latency_vs_float_twin"], 100 * row["top1"]
            color = "tab:blue" if name == TWIN else "tab:red" if row["binary_mac_fraction"] == 1.0 else "tab:orange"
            axes.scatter(x, y, s=40 + 800 * row["size_bytes"] / largest, color=color, alpha=0.6)
            # Labels of the slowest points go to their left, so that they stay inside the plot.
            left = x > 0.8 * slowest
            axes.annotate(
                row["label"], (x, y), textcoords="offset points", xytext=(-8 if left else 8, 6),
                ha="right" if left else "left", fontsize=7,
            )
        axes.margins(x=0.15, y=0.15)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS), help="rows to run (the twin always runs)")
    parser.add_argument("--width-multiplier", type=float, default=0.25)
    parser.add_argument(
        "--channel-multiple", type=int, default=TrainConfig.channel_multiple, help="width rounding of the rows that do not set it"
    )
    parser.add_argument("--stem-strides", type=int, default=2)
    parser.add_argument("--stem-kernel-size", type=int, default=3)
    parser.add_argument("--phase1-epochs", type=int, default=2)
    parser.add_argument("--phase2-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--train-limit", type=int, help="train on the first N images only (smoke runs)")
    parser.add_argument("--test-limit", type=int, help="evaluate on the first N test images only (smoke runs)")
    parser.add_argument("--latency-runs", type=int, default=50, help="timed runs per row and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds over all rows")
    parser.add_argument("--resume", action="store_true", help="keep finished rows of an earlier run in --output-dir")
    parser.add_argument("--output-dir", default=os.path.join("runs", "design_space"), help="relative to the repo")
    parser.add_argument("--json", default=os.path.join(RESULTS_DIR, "design_space.json"))
    parser.add_argument("--png", default=os.path.join(RESULTS_DIR, "design_space.png"))
    args = parser.parse_args()

    output_dir = fresh_run_dir(args.output_dir, keep=args.resume)
    names = [TWIN] + [name for name in ROWS if name in args.rows and name != TWIN]

    started = time.time()
    rows, flatbuffers = {}, {}
    for name in names:
        command, minutes = run_training(row_arguments(args, name, output_dir), label=f"\n[{name}]")
        top1, after_phase1 = _final_records(os.path.join(output_dir, name), args.phase1_epochs)
        flatbuffers[name], facts = export_row(name, output_dir)
        rows[name] = {
            "label": ROWS[name][0],
            "command": command,
            # A resumed row that had finished trains for no time at all.
            "train_minutes": None if args.resume else round(minutes, 1),
            "top1": top1,
            **({"top1_after_phase1": after_phase1} if name != TWIN else {}),
            **facts,
        }
    print(f"\ntiming {len(rows)} models at 28x28, {args.rounds} interleaved rounds of {args.latency_runs} runs", flush=True)
    latencies = interleaved_latencies(flatbuffers, LATENCY_SETTINGS, args.latency_runs, args.rounds)
    for name, row in rows.items():
        row["latency"] = latencies[name]
        row["latency_vs_float_twin"] = latencies[name]["median_ms"] / latencies[TWIN]["median_ms"]
    minutes = (time.time() - started) / 60

    print_table(rows)
    test_images = f"first {args.test_limit}" if args.test_limit else "all 10,000"
    print(f"top-1 on {test_images} Fashion-MNIST test images; {minutes:.1f} min in total")
    results = {
        "dataset": f"fashion_mnist ({test_images} test images)",
        "benchmark_command": shlex.join(["python", "benchmarks/design_space.py", *sys.argv[1:]]),
        "recipe": {
            "width_multiplier": args.width_multiplier,
            "channel_multiple": args.channel_multiple,
            "stem_strides": args.stem_strides,
            "stem_kernel_size": args.stem_kernel_size,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "augment": "none",
            "float_twin_epochs": args.phase1_epochs + args.phase2_epochs,
            "phase1_epochs": args.phase1_epochs,
            "phase2_epochs": args.phase2_epochs,
            "teacher": "the float twin of the first row (distillation only, no weight initialization)",
        },
        "latency_settings": LATENCY_SETTINGS,
        "rows": rows,
        "wall_minutes": round(minutes, 1),
        **machine(),
    }
    write_json(results, args.json)
    plot(rows, args.png)
    print("wrote", args.png)


if __name__ == "__main__":
    main()
