"""Inference benchmark: BCNN18 and BCNNA against float ResNet-18 and larq-zoo's binary networks.

Every model is built at 224x224x3 with 1000 classes and random weights (latency and size do
not depend on the values), converted with the LCE converter and timed in one run on the same
LCE interpreter, so the ratios between models are what to read: the timing visits the models
in interleaved rounds. Per model: file size, binary and float MACs from the flatbuffer and
latency (median and p10-p90 of all timed runs). With `--profile`, every op of every model is
also timed on its own (see `op_profile.py`): milliseconds by op category and by layer, and the
binary rate of the bconv ops. Prints tables, writes JSON (with the CPU model and flags: only
figures from the same run compare) and a PNG.

    python benchmarks/inference.py --profile  # or: make bench

Needs the `bench` extra (larq-zoo): pip install -e '.[bench]'.
"""

import argparse
import os
import shlex
import sys

import bcnn_keras  # noqa: F401  (sets up Keras 2 before anything touches tf.keras)
import larq as lq
import tensorflow as tf
import zoo

from bcnn_keras import export
from bcnn_keras.export.latency import cpu_info
from common import RESULTS_DIR, interleaved_latencies, machine, png_plot, write_json
from op_profile import METHOD as PROFILE_METHOD
from op_profile import print_profiles, profile_models

INPUT_SHAPE = (224, 224, 3)
CLASSES = 1000
REFERENCE = "BCNN18"
SMALL = "BCNN18Small"
TARGETS = {
    "latency_vs_QuickNet": 1.0,
    "small_latency_vs_QuickNetSmall": 1.0,
    "small_size_bytes": 1_000_000,
    "latency_vs_float_ResNet18": 0.6,
    "size_bytes": 1_600_000,
    "size_ratio_float_ResNet18_over_BCNN18": 28.0,
    "binary_mac_fraction": 1.0,
}


MODELS = {
    "BCNN18": lambda: bcnn_keras.BCNN18(input_shape=INPUT_SHAPE, classes=CLASSES),
    "BCNN18Small": lambda: bcnn_keras.BCNN18Small(input_shape=INPUT_SHAPE, classes=CLASSES),
    "BCNNA": lambda: bcnn_keras.BCNNA(input_shape=INPUT_SHAPE, classes=CLASSES),
    "float_ResNet18": lambda: zoo.float_resnet18(INPUT_SHAPE, CLASSES),
    "QuickNetSmall": lambda: zoo.larq_zoo("QuickNetSmall", INPUT_SHAPE, CLASSES),
    "QuickNet": lambda: zoo.larq_zoo("QuickNet", INPUT_SHAPE, CLASSES),
    "BinaryResNetE18": lambda: zoo.larq_zoo("BinaryResNetE18", INPUT_SHAPE, CLASSES),
}


def cpu_peak():
    """A notional peak binary rate of one core: one 512-bit XOR + POPCNT per cycle.

    2 ops per binary MAC (XOR, then count), 512 MACs per instruction pair, at the clock that
    /proc/cpuinfo reports. Cores without AVX-512 VPOPCNTDQ reach a fraction of it.
    """
    ghz = (cpu_info()["mhz"] or 0) / 1000
    return {"clock_ghz": round(ghz, 3), "peak_binary_gops_512bit": round(ghz * 512 * 2, 1)}


def convert_and_count(build):
    """Builds and converts one model; returns `(flatbuffer, result)` with size and MACs."""
    model = build()
    flatbuffer = export.convert(model)
    census = export.census(flatbuffer)
    result = {
        "size_bytes": census.size_bytes,
        "binary_macs": census.macs["binary"],
        "float_macs": census.macs["float"],
        "binary_mac_fraction": census.binary_mac_fraction,
        "ops": census.ops,
    }
    tf.keras.backend.clear_session()
    return flatbuffer, result


# Interpreter settings of the latency columns: the target column first, then the extras.
LATENCY_SETTINGS = {
    "latency": dict(threads=1, indirect_bgemm=True, xnnpack=True),
    "latency_default_kernel": dict(threads=1, indirect_bgemm=False, xnnpack=True),
    "latency_2_threads": dict(threads=2, indirect_bgemm=True, xnnpack=True),
}


def ratios(results):
    reference = results[REFERENCE]
    latency = {name: r["latency"]["median_ms"] for name, r in results.items()}
    found = {}
    if "QuickNet" in results:
        found["latency_vs_QuickNet"] = latency[REFERENCE] / latency["QuickNet"]
    if "float_ResNet18" in results:
        found["latency_vs_float_ResNet18"] = latency[REFERENCE] / latency["float_ResNet18"]
        found["size_ratio_float_ResNet18_over_BCNN18"] = (
            results["float_ResNet18"]["size_bytes"] / reference["size_bytes"]
        )
    if SMALL in results and "QuickNetSmall" in results:
        found["small_latency_vs_QuickNetSmall"] = latency[SMALL] / latency["QuickNetSmall"]
    if SMALL in results:
        found["small_size_bytes"] = results[SMALL]["size_bytes"]
    found["size_bytes"] = reference["size_bytes"]
    found["binary_mac_fraction"] = reference["binary_mac_fraction"]
    at_least = ("size_ratio_float_ResNet18_over_BCNN18", "binary_mac_fraction")
    return {
        key: {
            "value": value,
            "target": TARGETS[key],
            "met": value >= TARGETS[key] if key in at_least else value <= TARGETS[key],
        }
        for key, value in found.items()
    }


def add_profiles(results, flatbuffers, args):
    """Adds each model's op profile and, from its bconv ops, their binary rate."""
    print("profiling every op alone ...", flush=True)
    profiles = profile_models(flatbuffers, LATENCY_SETTINGS["latency"], args.runs, args.rounds)
    for name, profile in profiles.items():
        results[name]["profile"] = profile
        bconv_ms = [op["ms"] for op in profile["ops"] if op["op"] == export.BINARY_CONV_OP]
        if bconv_ms:
            results[name]["bconv_ms"] = sum(bconv_ms)
            results[name]["bconv_binary_gops"] = 2 * results[name]["binary_macs"] / sum(bconv_ms) / 1e6


def print_table(results, peak, vpopcntdq):
    header = (
        f"{'model':16s} {'size':>10s} {'binary MACs':>12s} {'float MACs':>11s} {'binary':>7s} "
        f"{'latency ms':>11s} {'p10-p90':>13s} {'bconv GOPS':>11s}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        latency = r["latency"]
        gops = f"{r['bconv_binary_gops']:.0f}" if r.get("bconv_binary_gops") else "-"
        print(
            f"{name:16s} {r['size_bytes'] / 1e6:8.2f}MB "
            f"{r['binary_macs'] / 1e9:10.2f} G {r['float_macs'] / 1e9:9.2f} G "
            f"{r['binary_mac_fraction']:7.1%} {latency['median_ms']:11.1f} "
            f"{latency['p10_ms']:6.1f}-{latency['p90_ms']:<6.1f} {gops:>11s}"
        )
    extras = [
        column for column in ("latency_default_kernel", "latency_2_threads") if column in next(iter(results.values()))
    ]
    if extras:
        print(
            f"\n{'model':16s} "
            + " ".join(f"{column.replace('latency_', ''):>16s}" for column in extras)
            + "  (median ms)"
        )
        for name, r in results.items():
            print(f"{name:16s} " + " ".join(f"{r[column]['median_ms']:16.1f}" for column in extras))
    print(
        f"peak estimate: {peak['peak_binary_gops_512bit']:.0f} binary GOPS per core "
        f"(512-bit XOR+POPCNT per cycle at {peak['clock_ghz']} GHz; AVX-512 VPOPCNTDQ here: {vpopcntdq})"
    )


def plot(results, path):
    with png_plot(
        path,
        "224x224 ImageNet-shaped models: size against latency",
        "latency, ms (1 thread, LCE interpreter, x86)",
        "flatbuffer size, MB (log)",
    ) as axes:
        for name, r in results.items():
            x, y = r["latency"]["median_ms"], r["size_bytes"] / 1e6
            axes.scatter(x, y, color="tab:red" if name.startswith("BCNN") else "tab:blue")
            axes.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        axes.set_yscale("log")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="models to measure")
    parser.add_argument(
        "--runs", type=int, default=20, help="timed runs per model and round, after 3 warm-up runs (>= 10)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds over all models (interleaved timing)")
    parser.add_argument("--extras", action="store_true", help="also time the default kernel and 2 threads")
    parser.add_argument("--profile", action="store_true", help="also time every op alone: ms by op category and layer")
    parser.add_argument("--json", default=os.path.join(RESULTS_DIR, "inference.json"))
    parser.add_argument("--png", default=os.path.join(RESULTS_DIR, "inference.png"))
    args = parser.parse_args()
    if args.runs < 10:
        parser.error("--runs must be >= 10")

    results, flatbuffers = {}, {}
    for name in args.models:
        print(f"converting {name} ...", flush=True)
        flatbuffers[name], results[name] = convert_and_count(MODELS[name])
    columns = list(LATENCY_SETTINGS) if args.extras else ["latency"]
    for column in columns:
        print(f"timing {column} ...", flush=True)
        latencies = interleaved_latencies(flatbuffers, LATENCY_SETTINGS[column], args.runs, args.rounds)
        for name, latency in latencies.items():
            results[name][column] = latency
    if args.profile:
        add_profiles(results, flatbuffers, args)
    peak, host = cpu_peak(), machine()
    print()
    print_table(results, peak, host["cpu_flags"]["avx512_vpopcntdq"])
    if args.profile:
        print()
        print_profiles({name: r["profile"] for name, r in results.items()})
        print(f"method: {PROFILE_METHOD}")
    report = {
        "command": shlex.join(["python", "benchmarks/inference.py", *sys.argv[1:]]),
        "input_shape": list(INPUT_SHAPE),
        "classes": CLASSES,
        "interpreter": "larq_compute_engine Interpreter, 1 thread, indirect BGEMM, XNNPACK for float ops",
        **host,
        "cpu_peak": peak,
        **({"profile_method": PROFILE_METHOD} if args.profile else {}),
        "versions": {"tensorflow": tf.__version__, "larq": lq.__version__},
        "models": results,
    }
    if REFERENCE in results:
        report["targets"] = ratios(results)
        print()
        for key, check in report["targets"].items():
            print(
                f"{key:42s} {check['value']:10.3f}  target {check['target']:<10g} {'met' if check['met'] else 'MISSED'}"
            )
    write_json(report, args.json)
    plot(results, args.png)
    print("wrote", args.png)


if __name__ == "__main__":
    main()
