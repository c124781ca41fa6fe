"""Design-space benchmark: what full binarization costs and buys, row by row, on Fashion-MNIST.

Every row is BCNN18 at the fast recipe's settings (`recipes.FAST`: width 0.25, a 3x3 stride-1
input block, batch 128, 4 + 12 student epochs, an 8-epoch float twin, the 5,000-image
validation set): the float twin first, then every other row in two steps from the twin's
weights (the layers it has; a float input layer, a float classifier or float shortcuts start
fresh) and distilled from it. The rows differ only in which layers are float: the input layer,
the downsampling shortcuts, the classifier, or none (fully binary). Each row trains with two
seeds, each seed with its own twin; the test set is evaluated once per run.

The run is resumable: a row and seed is saved to `ROW/seedS/row.json` in the output dir when it
finishes, and with the default output dir also in the repo (`results/rows/design_space/`); a
re-run skips what is done (the training CLI resumes an unfinished one). A row whose trained file
is not at hand is timed on its architecture rebuilt with random weights. Each
trained model is exported (`--allow-float` where needed); its size and binary MAC share are read
from the flatbuffer, and the seed-0 files of all rows are timed at 28x28 on the LCE interpreter
(x86, 1 thread, indirect BGEMM + XNNPACK) in interleaved rounds, as a ratio to the float twin.
Prints a table (mean over the seeds, with the min-max spread), writes JSON and a PNG (top-1
against latency, whiskers for the spread, marker area = file size).

    python benchmarks/design_space.py            # or: make bench-design (about ten hours on 2 cores)
    python benchmarks/design_space.py --smoke    # every row for a few steps
"""

import argparse
import os
import shlex
import sys
import time

import numpy as np

import recipes
from common import RESULTS_DIR, file_to_time, interleaved_latencies, machine, png_plot, write_json

TWIN = recipes.TWIN
ROWS = recipes.DESIGN_ROWS
SEEDS = (0, 1)
LATENCY_SETTINGS = dict(threads=1, indirect_bgemm=True, xnnpack=True)


def summarize(name, records):
    """A row of the table: the seeds' test top-1 (mean, min, max) and the file's facts."""
    top1 = [record["test_top1"] for record in records.values()]
    first = next(iter(records.values()))
    return {
        "label": ROWS[name][0],
        "seeds": {seed: record for seed, record in records.items()},
        "test_top1_mean": float(np.mean(top1)),
        "test_top1_min": float(min(top1)),
        "test_top1_max": float(max(top1)),
        **{key: first[key] for key in ("size_bytes", "binary_mac_fraction", "macs", "float_layers")},
    }


def print_table(rows):
    header = (
        f"{'row':44s} {'test top-1 (min-max)':>22s} {'size':>9s} {'binary MACs':>12s} {'latency':>9s} {'vs twin':>8s}"
    )
    print("\n" + header)
    print("-" * len(header))
    for row in rows.values():
        spread = f"{row['test_top1_mean']:.2%} ({100 * row['test_top1_min']:.2f}-{100 * row['test_top1_max']:.2f})"
        print(
            f"{row['label']:44s} {spread:>22s} {row['size_bytes'] / 1e3:7.1f}kB {row['binary_mac_fraction']:12.1%} "
            f"{row['latency']['median_ms']:7.3f}ms {row['latency_vs_float_twin']:7.2f}x"
        )


def plot(rows, path):
    largest = max(row["size_bytes"] for row in rows.values())
    with png_plot(
        path,
        "BCNN18 design space, two seeds (whiskers: min-max; marker area: .tflite size)",
        "x86 latency at 28x28 / float twin's (LCE interpreter, 1 thread)",
        "Fashion-MNIST test top-1, %",
        size=(7.5, 4.5),
    ) as axes:
        slowest = max(row["latency_vs_float_twin"] for row in rows.values())
        for name, row in rows.items():
            x, y = row["latency_vs_float_twin"], 100 * row["test_top1_mean"]
            color = "tab:blue" if name == TWIN else "tab:red" if row["binary_mac_fraction"] == 1.0 else "tab:orange"
            error = [[y - 100 * row["test_top1_min"]], [100 * row["test_top1_max"] - y]]
            axes.errorbar(x, y, yerr=error, fmt="none", ecolor=color, capsize=3)
            axes.scatter(x, y, s=40 + 800 * row["size_bytes"] / largest, color=color, alpha=0.6)
            left = x > 0.8 * slowest  # labels of the slowest points go to their left, inside the plot
            axes.annotate(
                row["label"],
                (x, y),
                textcoords="offset points",
                xytext=(-8 if left else 8, 6),
                ha="right" if left else "left",
                fontsize=7,
            )
        axes.margins(x=0.15, y=0.15)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", nargs="+", choices=list(ROWS), default=list(ROWS), help="rows to run (the twin always runs)"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--smoke", action="store_true", help="every row for a few steps on 256 images")
    parser.add_argument("--latency-runs", type=int, default=50, help="timed runs per row and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds over all rows")
    parser.add_argument("--output-dir", default=os.path.join("runs", "design_space"), help="relative to the repo")
    parser.add_argument("--json", default=os.path.join(RESULTS_DIR, "design_space.json"))
    parser.add_argument("--png", default=os.path.join(RESULTS_DIR, "design_space.png"))
    args = parser.parse_args()
    if args.smoke:
        args.latency_runs, args.rounds = 10, 1

    names = [TWIN] + [name for name in ROWS if name in args.rows and name != TWIN]
    started = time.time()
    records = {name: {} for name in names}
    configs = {
        (name, seed): recipes.design_row_config(name, seed, args.output_dir, args.smoke)
        for name in names
        for seed in args.seeds
    }
    for seed in args.seeds:  # a whole seed at a time: its rows are comparable as soon as it is done
        # The twin's model is every other row's teacher: a recorded twin whose file is gone trains again.
        students_left = any(recipes.recorded_row(configs[name, seed])[1] is None for name in names if name != TWIN)
        for name in names:
            label = f"{name} seed {seed}"
            records[name][seed] = recipes.trained_row(
                configs[name, seed], label, model_needed=name == TWIN and students_left
            )
    rows = {name: summarize(name, records[name]) for name in names}

    first_seed = args.seeds[0]
    flatbuffers = {}
    for name in names:
        record = dict(records[name][first_seed])
        flatbuffers[name] = file_to_time(
            record, lambda name=name: recipes.rebuilt_flatbuffer(configs[name, first_seed])
        )
        rows[name]["timed_file"] = record["timed_file"]
    print(
        f"\ntiming {len(rows)} models at 28x28, {args.rounds} interleaved rounds of {args.latency_runs} runs",
        flush=True,
    )
    latencies = interleaved_latencies(flatbuffers, LATENCY_SETTINGS, args.latency_runs, args.rounds)
    for name, row in rows.items():
        row["latency"] = latencies[name]
        row["latency_vs_float_twin"] = latencies[name]["median_ms"] / latencies[TWIN]["median_ms"]
    minutes = (time.time() - started) / 60

    print_table(rows)
    print(f"test top-1 on the 10,000 test images, mean of seeds {args.seeds}; {minutes:.1f} min in this run")
    results = {
        "dataset": "fashion_mnist: 55,000 training images, 5,000 held out for validation, 10,000 test images",
        "selected_on": "validation",
        "smoke": args.smoke,
        "benchmark_command": shlex.join(["python", "benchmarks/design_space.py", *sys.argv[1:]]),
        "recipe": {
            **recipes.FAST,
            "teacher": "the float twin of the same seed (its weights where the layers match, and distillation)",
        },
        "seeds": args.seeds,
        "latency_settings": LATENCY_SETTINGS,
        "latency_files": f"seed {first_seed}",
        "rows": rows,
        "wall_minutes_this_run": round(minutes, 1),
        **machine(),
    }
    write_json(results, args.json)
    plot(rows, args.png)
    print("wrote", args.png)


if __name__ == "__main__":
    main()
