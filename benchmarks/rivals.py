"""Rivals benchmark: fully binary files against what a user would pick instead, int8 TFLite models.

At 28x28 on Fashion-MNIST every model trains on the same 55,000 training images, with its
choices made on the 5,000-image validation set, and its test top-1 is measured once:

- int8 float CNNs at four sizes (`zoo.SMALL_CNNS`), trained in Keras (Adam, cosine decay, 15
  epochs), each with the augmentation (none or standard) and then the learning rate (1e-3,
  3e-3, 1e-2) that its validation top-1 preferred, converted by TFLite's converter with
  full-integer post-training quantization (uint8 input); also quantization-aware training
  (tensorflow-model-optimization) from the chosen model, 3 epochs at a tenth of its rate. One
  seed each: they train in minutes.
- partially binary (larq-zoo style: float input layer and classifier) and fully binary models,
  two seeds each: the design-space rows (`design_space.py`) and the small-image presets, with
  the fast recipe (`recipes.py`). Rows trained by the design-space benchmark are not trained again.
  The schedules tried on validation and not kept (`recipes.PRESET_VARIANTS`) run only when named.
- the shipped fully binary file (`weights="fashion_mnist"`), with its recorded test top-1; it is
  the latency reference of the small-image presets.

For every model: test top-1 (mean and min-max over the seeds), file bytes, binary MAC share,
and 1-thread x86 latency on LCE's interpreter (indirect BGEMM for binary ops, XNNPACK for the
rest), all files timed in interleaved rounds in one run. ARM latency: "n/a" at 28x28, where
nothing is published. At 224x224 (random weights, 1000 classes): latency and size of BCNN18,
BCNN18Small and BCNNA against larq-zoo's QuickNet and QuickNetSmall and the int8 files of
MobileNetV2, MobileNetV3Small and ResNet-18, timed the same way; ImageNet top-1 and ARM
latencies quoted from their publications, or estimated (`docs/deploy.md`), and marked so.

Resumable across machines: each row is saved when it finishes, in its run folder (`runs/...`)
and in the repo (`results/rows/...`), and a re-run skips it unless the row's command or recipe
changed since. A recorded row whose trained file is not at hand (trained in another clone) is
timed on its architecture rebuilt with random weights: latency does not depend on their values,
and the JSON says which file each row's latency comes from (`timed_file`).
Writes JSON and a PNG (test top-1 against bytes and against latency, the Pareto fronts).

    python benchmarks/rivals.py           # make bench-rivals (hours on 2 cores)
    python benchmarks/rivals.py --smoke   # every default row for a few steps
    python benchmarks/rivals.py --seeds 0 --binary-rows BCNN8,BCNN6 --int8-rows none   # a part of the rows
"""

import argparse
import os
import shlex
import sys
import time

import numpy as np

import recipes
import zoo
from bcnn_keras import data
from bcnn_keras.files import read_json as read_file, write_json as write_file
from common import (
    REPO,
    RESULTS_DIR,
    file_to_time,
    interleaved_latencies,
    machine,
    png_plot,
    randomize_weights,
    read_record,
    save_record,
    write_json,
)

OUTPUT_DIR = os.path.join("runs", "rivals")
LATENCY_SETTINGS = dict(threads=1, indirect_bgemm=True, xnnpack=True)
EPOCHS = 15
BATCH_SIZE = 128
LEARNING_RATES = (1e-3, 3e-3, 1e-2)
MIDDLE_RATE = 3e-3
QAT_EPOCHS = 3
INT8_FILE = "rows.json"
# What an int8 row's record was made by: a row recorded with other settings trains again.
INT8_RECIPE = (
    f"Adam, cosine decay, {EPOCHS} epochs, batch {BATCH_SIZE}; augmentation none or standard at {MIDDLE_RATE}, "
    f"then learning rates {', '.join(map(str, LEARNING_RATES))}, chosen on validation; PTQ, QAT {QAT_EPOCHS} epochs"
)
SEEDS = (0, 1)
# Binary rows: id -> (label, the config of a seed); the functions take the seed and the folders
# of the design space and of the presets.
BINARY_ROWS = {
    "binary_x8": (
        "BCNN18 w0.25 (fast recipe)",
        lambda seed, dirs: recipes.design_row_config("binary_x8", seed, dirs[0], dirs[2]),
    ),
    "larq_zoo_style": (
        "larq-zoo style BCNN18 w0.25",
        lambda seed, dirs: recipes.design_row_config("larq_zoo_style", seed, dirs[0], dirs[2]),
    ),
    **{
        name: (
            recipes.ALL_PRESET_ROWS[name][0],
            lambda seed, dirs, name=name: recipes.preset_row_config(name, seed, dirs[1], dirs[2]),
        )
        for name in recipes.ALL_PRESET_ROWS
    },
}
# What `make bench-rivals` trains: the variants that were not kept are left out.
DEFAULT_BINARY_ROWS = ["binary_x8", "larq_zoo_style", *recipes.PRESET_ROWS]
# The latency reference of the small-image target: the shipped file, BCNN18 at width 0.25 with
# its stride-1 input block (the architecture of the fast recipe and of the `binary_x8` row).
REFERENCE = "shipped BCNN18 w0.25 (weights='fashion_mnist')"
# The small-image target: mean test top-1 over the seeds, the worst seed, file bytes, latency
# against the reference in the same run.
PRESET_TARGET = {"mean_top1": 0.92, "min_top1": 0.918, "size_bytes": 150_000, "latency_vs_reference": 0.36}
# Quoted, not measured here: ImageNet top-1 (of the float model, where the file is its int8
# conversion) and 1-thread ARM latency where published.
QUOTED_224 = {
    "QuickNetSmall": {
        "imagenet_top1": 0.594,
        "imagenet_source": "larq-zoo",
        "arm_ms": "27.7 ms Raspberry Pi 4B, 16.8 ms Pixel 1 (quoted, LCE README)",
    },
    "QuickNet": {
        "imagenet_top1": 0.633,
        "imagenet_source": "larq-zoo",
        "arm_ms": "45.0 ms Raspberry Pi 4B, 25.5 ms Pixel 1 (quoted, LCE README)",
    },
    "MobileNetV2 int8": {"imagenet_top1": 0.718, "imagenet_source": "float, TF-Slim's MobileNetV2 1.0 224"},
    "MobileNetV3Small int8": {"imagenet_top1": 0.674, "imagenet_source": "float, the MobileNetV3 paper"},
    "ResNet-18 int8": {"imagenet_top1": 0.698, "imagenet_source": "float, torchvision's ResNet-18"},
    "BCNN18": {
        "imagenet_top1": None,
        "arm_ms": "about 43 ms Raspberry Pi 4B, 24 ms Pixel 1 (estimated, docs/deploy.md)",
    },
    "BCNN18Small": {
        "imagenet_top1": None,
        "arm_ms": "about 13 ms Raspberry Pi 4B, 8 ms Pixel 1 (estimated, docs/deploy.md)",
    },
}


def _datasets(augment, smoke):
    """Scaled (0..1) training, validation and test pipelines of Fashion-MNIST."""
    options = dict(validation_images=recipes.VALIDATION_IMAGES, limit=256 if smoke else None)

    def scaled(split, **more):
        dataset = data.make_dataset("fashion_mnist", split, BATCH_SIZE, **options, **more)
        return dataset.map(lambda images, labels: (images * zoo.PIXEL_SCALE, labels))

    return scaled("train", augment=augment, seed=0), scaled(data.VALIDATION_SPLIT), scaled("test")


def _train_float(name, augment, rate, folder, smoke):
    """Trains one small CNN with one augmentation and learning rate; returns its validation
    top-1 (the model is saved in `folder`), or the saved result of an earlier run."""
    import tensorflow as tf

    done = os.path.join(folder, "result.json")
    if os.path.exists(done):
        return read_file(done)["validation_top1"]
    tf.keras.utils.set_random_seed(0)
    train, validation, _ = _datasets(augment, smoke)
    epochs = 1 if smoke else EPOCHS
    model = zoo.SMALL_CNNS[name][0]()
    schedule = tf.keras.optimizers.schedules.CosineDecay(rate, epochs * int(train.cardinality()))
    model.compile(
        tf.keras.optimizers.Adam(schedule),
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    print(f"[int8 {name}] augment {augment}, learning rate {rate}", flush=True)
    history = model.fit(train, validation_data=validation, epochs=epochs, verbose=2)
    os.makedirs(folder, exist_ok=True)
    model.save(os.path.join(folder, "model.keras"))
    validation_top1 = float(history.history["val_accuracy"][-1])
    write_file(done, {"augment": augment, "learning_rate": rate, "validation_top1": validation_top1})
    return validation_top1


def _test_int8(flatbuffer, smoke):
    """Top-1 of an int8 file on the test set, fed raw uint8 pixels as its input scale says."""
    import larq_compute_engine as lce

    images, labels = data.load_fashion_mnist_arrays("test")
    if smoke:
        images, labels = images[:256], labels[:256]
    interpreter = lce.testing.Interpreter(flatbuffer, use_xnnpack=True)
    scale, zero_point = interpreter.input_scales[0], interpreter.input_zero_points[0]
    quantized = np.clip(np.rint(images * zoo.PIXEL_SCALE / scale + zero_point), 0, 255).astype(np.uint8)
    return float(np.mean(interpreter.predict(quantized).argmax(-1) == labels)), len(labels)


def int8_rows(name, output_dir, smoke):
    """The PTQ and QAT rows of one small CNN: augmentation, then learning rate, chosen on validation."""
    import tensorflow as tf

    folder = os.path.join(REPO, output_dir, "int8", name)
    done, rows = read_record(folder, INT8_FILE, "recipe", INT8_RECIPE)
    if rows is not None:
        print(f"[int8 {name}] done earlier: {done}")
        return rows["rows"]
    trials = {}
    for augment in ("none", "standard"):
        trials[(augment, MIDDLE_RATE)] = _train_float(
            name, augment, MIDDLE_RATE, os.path.join(folder, f"{augment}_{MIDDLE_RATE}"), smoke
        )
    augment = max(("none", "standard"), key=lambda choice: trials[(choice, MIDDLE_RATE)])
    for rate in LEARNING_RATES:
        if (augment, rate) not in trials:
            trials[(augment, rate)] = _train_float(
                name, augment, rate, os.path.join(folder, f"{augment}_{rate}"), smoke
            )
    rate = max((r for a, r in trials if a == augment), key=lambda r: trials[(augment, r)])
    chosen = tf.keras.models.load_model(os.path.join(folder, f"{augment}_{rate}", "model.keras"), compile=False)
    train, validation, _ = _datasets(augment, smoke)
    calibration = np.concatenate([images for images, _ in train.take(4)])  # 512 training images
    ptq = zoo.int8_flatbuffer(chosen, calibration)
    qat = _quantization_aware(chosen, rate, augment, smoke)
    common = {
        "parameters": int(chosen.count_params()),
        "augment": augment,
        "learning_rate": rate,
        "validation_top1_of_trials": {f"{a} {r}": value for (a, r), value in trials.items()},
        "selected_on": "validation",
        "trained_on": machine(),
        "seeds": "one seed (a small CNN trains in minutes)",
    }
    rows = {}
    for kind, flatbuffer in (("PTQ", ptq), ("QAT", qat)):
        if flatbuffer is None:
            continue
        path = os.path.join(folder, f"int8_{kind.lower()}.tflite")
        with open(path, "wb") as stream:
            stream.write(flatbuffer)
        top1, images = _test_int8(flatbuffer, smoke)
        rows[f"{zoo.SMALL_CNNS[name][1]}, int8 {kind}"] = {
            **common,
            "kind": f"int8 {kind}",
            "test_top1": {"0": top1},
            "test_images": images,
            "size_bytes": len(flatbuffer),
            "binary_mac_fraction": 0.0,
            "tflite": os.path.relpath(path, REPO),
        }
    save_record(folder, INT8_FILE, {"recipe": INT8_RECIPE, "rows": rows})
    return rows


def _quantization_aware(model, rate, augment, smoke):
    """QAT from the chosen float model (None if tensorflow-model-optimization is missing)."""
    try:
        import tensorflow_model_optimization as tfmot
    except ImportError:
        print("tensorflow-model-optimization is not installed: no QAT rows (pip install -e '.[bench]')")
        return None
    import tensorflow as tf

    train, validation, _ = _datasets(augment, smoke)
    quantized = tfmot.quantization.keras.quantize_model(model)
    quantized.compile(
        tf.keras.optimizers.Adam(rate / 10),
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    quantized.fit(train, validation_data=validation, epochs=1 if smoke else QAT_EPOCHS, verbose=2)
    return _qat_flatbuffer(quantized)


def _qat_flatbuffer(quantized):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(quantized)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.inference_input_type = tf.uint8
    return converter.convert()


def rebuilt_int8(name, kind):
    """The int8 file (`kind` "int8 PTQ" or "int8 QAT") of the small CNN `name` with random weights."""
    model = zoo.SMALL_CNNS[name][0]()
    randomize_weights(model)
    if kind == "int8 QAT":
        import tensorflow_model_optimization as tfmot

        return _qat_flatbuffer(tfmot.quantization.keras.quantize_model(model))
    return zoo.int8_flatbuffer(model, np.random.default_rng(0).uniform(0, 1, (16, *model.input_shape[1:])))


def binary_rows(names, seeds, output_dir, smoke):
    """The binary rows `names`, trained where their run has no `row.json` yet: test top-1 per seed.
    Their runs are the design space's and the presets' (smoke runs go under `output_dir` instead)."""
    dirs = _run_dirs(output_dir, smoke)
    for seed in seeds:  # the design-space rows learn from their seed's float twin
        students = [BINARY_ROWS[name][1](seed, dirs) for name in names if name in recipes.DESIGN_ROWS]
        if any(recipes.recorded_row(student)[1] is None for student in students):
            twin = recipes.design_row_config(recipes.TWIN, seed, dirs[0], dirs[2])
            recipes.trained_row(twin, f"float twin seed {seed}", model_needed=True)
    rows = {}
    for name in names:
        label, config_of = BINARY_ROWS[name]
        records = {seed: recipes.trained_row(config_of(seed, dirs), f"{label} seed {seed}") for seed in seeds}
        first = records[seeds[0]]
        rows[label] = {
            "id": name,
            "kind": "fully binary" if first["binary_mac_fraction"] == 1.0 else "partially binary",
            "test_top1": {str(seed): record["test_top1"] for seed, record in records.items()},
            "commands": [record["command"] for record in records.values()],
            "trained_on": first["trained_on"],
            "selected_on": "validation",
            **{key: first[key] for key in ("size_bytes", "binary_mac_fraction", "tflite")},
        }
    return rows


def _run_dirs(output_dir, smoke):
    """The folders of the design-space and preset runs, and whether they are smoke runs."""
    if smoke:
        return os.path.join(output_dir, "design_space"), os.path.join(output_dir, "presets"), True
    return recipes.DESIGN_DIR, recipes.PRESET_DIR, False


def rebuild(row, seed, output_dir, smoke):
    """A function that rebuilds `row`'s file with random weights (for `file_to_time`)."""
    if row["kind"].startswith("int8"):
        return lambda: rebuilt_int8(row["id"], row["kind"])
    return lambda: recipes.rebuilt_flatbuffer(BINARY_ROWS[row["id"]][1](seed, _run_dirs(output_dir, smoke)))


def shipped_row():
    """The shipped fully binary file with its recorded test top-1 (one seed, trained on all 60k
    images with the recipe chosen on test curves, so optimistic)."""
    from bcnn_keras import pretrained

    shipped = pretrained.SHIPPED[("BCNN18", "fashion_mnist")]
    record = shipped.record
    return {
        "id": "shipped",
        "kind": "fully binary",
        "test_top1": {"0": record["exported_tflite"]["parity_10k"]["tflite_accuracy"]},
        "commands": [record["training_command"]],
        "trained_on": record["machine"],
        "selected_on": "test (older recipe, chosen on test curves; trained on all 60,000 images)",
        "size_bytes": record["exported_tflite"]["size_bytes"],
        "binary_mac_fraction": record["exported_tflite"]["binary_mac_fraction"],
        "tflite": os.path.relpath(shipped.tflite_path, REPO),
    }


def models_224():
    """name -> (kind, builder) of the 224x224 comparison (random weights)."""
    import tensorflow as tf

    import bcnn_keras

    shape, classes = (224, 224, 3), 1000
    return {
        "BCNN18": ("fully binary", lambda: bcnn_keras.BCNN18(input_shape=shape, classes=classes)),
        "BCNN18Small": ("fully binary", lambda: bcnn_keras.BCNN18Small(input_shape=shape, classes=classes)),
        "BCNNA": ("fully binary", lambda: bcnn_keras.BCNNA(input_shape=shape, classes=classes)),
        "QuickNet": ("partially binary", lambda: zoo.larq_zoo("QuickNet", shape, classes)),
        "QuickNetSmall": ("partially binary", lambda: zoo.larq_zoo("QuickNetSmall", shape, classes)),
        "MobileNetV2 int8": ("int8", lambda: tf.keras.applications.MobileNetV2(input_shape=shape, weights=None)),
        "MobileNetV3Small int8": (
            "int8",
            lambda: tf.keras.applications.MobileNetV3Small(input_shape=shape, weights=None),
        ),
        "ResNet-18 int8": ("int8", lambda: zoo.float_resnet18(shape, classes)),
    }


def convert_224(output_dir, smoke):
    """The 224x224 files and their facts (converted once, then read back from `OUTPUT_DIR/224`)."""
    import tensorflow as tf

    from bcnn_keras import export

    folder = os.path.join(REPO, output_dir, "224")
    os.makedirs(folder, exist_ok=True)
    files, facts = {}, {}
    names = list(models_224())[:2] if smoke else list(models_224())
    for name in names:
        kind, build = models_224()[name]
        path = os.path.join(folder, name.replace(" ", "_") + ".tflite")
        if not os.path.exists(path):
            print(f"[224] converting {name}", flush=True)
            model = build()
            calibration = np.random.default_rng(0).uniform(0, 1, (8, 224, 224, 3))
            flatbuffer = zoo.int8_flatbuffer(model, calibration) if kind == "int8" else export.convert(model)
            with open(path, "wb") as stream:
                stream.write(flatbuffer)
            tf.keras.backend.clear_session()
        with open(path, "rb") as stream:
            files[name] = stream.read()
        census = export.census(files[name])
        facts[name] = {
            "kind": kind,
            "size_bytes": len(files[name]),
            "binary_mac_fraction": census.binary_mac_fraction,
            "imagenet_top1": QUOTED_224.get(name, {}).get("imagenet_top1"),
            "imagenet_source": QUOTED_224.get(name, {}).get("imagenet_source"),
            "arm_latency": QUOTED_224.get(name, {}).get("arm_ms", "n/a"),
        }
    return files, facts


def summarize(rows):
    for row in rows.values():
        top1 = list(row["test_top1"].values())
        row.update(test_top1_mean=float(np.mean(top1)), test_top1_min=float(min(top1)), test_top1_max=float(max(top1)))
        row.setdefault("arm_latency", "n/a (nothing published at 28x28)")


def targets(rows):
    """Which fully binary presets meet the small-image target, and which int8 rivals a fully
    binary file beats at equal or fewer bytes."""
    presets = {}
    for name, row in rows.items():
        if row["kind"] != "fully binary" or name in (REFERENCE, BINARY_ROWS["binary_x8"][0]):
            continue
        checks = {
            "mean_top1": row["test_top1_mean"] >= PRESET_TARGET["mean_top1"],
            "min_top1": row["test_top1_min"] >= PRESET_TARGET["min_top1"],
            "size_bytes": row["size_bytes"] <= PRESET_TARGET["size_bytes"],
            "latency_vs_reference": row["latency_vs_reference"] <= PRESET_TARGET["latency_vs_reference"],
        }
        presets[name] = {**checks, "met": all(checks.values())}
    binary = [row for row in rows.values() if row["kind"] == "fully binary"]
    beaten = {
        name: any(b["size_bytes"] <= row["size_bytes"] and b["test_top1_mean"] > row["test_top1_mean"] for b in binary)
        for name, row in rows.items()
        if row["kind"].startswith("int8")
    }
    return {"target": PRESET_TARGET, "presets": presets, "int8_beaten_at_equal_or_fewer_bytes": beaten}


def pareto(rows, key):
    """The names on the front of test top-1 against `key` (smaller is better), best first."""
    ordered = sorted(rows, key=lambda name: (rows[name][key], -rows[name]["test_top1_mean"]))
    front, best = [], -1.0
    for name in ordered:
        if rows[name]["test_top1_mean"] > best:
            front.append(name)
            best = rows[name]["test_top1_mean"]
    return front


def plot(rows, path):
    import matplotlib.ticker

    colors = {
        "int8 PTQ": "tab:blue",
        "int8 QAT": "tab:cyan",
        "partially binary": "tab:orange",
        "fully binary": "tab:red",
    }
    panels = (("size_bytes", "file size, kB (log)", 1e-3), ("latency_ms", "x86 latency, ms (log; 1 thread)", 1))
    with png_plot(
        path,
        "Fashion-MNIST 28x28: test top-1 (mean of the seeds, whiskers min-max) and the Pareto fronts",
        [label for _, label, _ in panels],
        ["test top-1, %"] * 2,
        size=(12, 4.8),
        panels=2,
    ) as axes:
        for panel, (key, _, scale) in zip(axes, panels):
            for kind, color in colors.items():
                members = {name: row for name, row in rows.items() if row["kind"] == kind}
                if not members:
                    continue
                names = list(members)
                y = [100 * rows[n]["test_top1_mean"] for n in names]
                error = [
                    [100 * rows[n]["test_top1_mean"] - 100 * rows[n]["test_top1_min"] for n in names],
                    [100 * rows[n]["test_top1_max"] - 100 * rows[n]["test_top1_mean"] for n in names],
                ]
                panel.errorbar(
                    [rows[n][key] * scale for n in names], y, yerr=error, fmt="o", color=color, label=kind, capsize=2
                )
                for name in names if kind != "int8 QAT" else ():  # a QAT point sits by its PTQ twin's label
                    panel.annotate(
                        rows[name]["id"],
                        (rows[name][key] * scale, 100 * rows[name]["test_top1_mean"]),
                        textcoords="offset points",
                        xytext=(4, 4),
                        fontsize=6,
                    )
                front = pareto(members, key)
                panel.step(
                    [rows[n][key] * scale for n in front],
                    [100 * rows[n]["test_top1_mean"] for n in front],
                    where="post",
                    color=color,
                    alpha=0.4,
                )
            panel.set_xscale("log")
            panel.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            panel.legend(fontsize=7, loc="lower right")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="every row for a few steps on 256 images")
    parser.add_argument("--skip-224", action="store_true", help="no 224x224 comparison")
    parser.add_argument(
        "--output-dir", default=OUTPUT_DIR, help="the int8 rows and 224x224 files (relative to the repo)"
    )
    parser.add_argument("--runs", type=int, default=50, help="timed runs per file and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--int8-rows",
        type=_int8_rows,
        default=list(zoo.SMALL_CNNS),
        help=f"int8 rivals to train and time, in this order, comma-separated ({', '.join(zoo.SMALL_CNNS)}), or none",
    )
    parser.add_argument("--seeds", type=_seeds, default=SEEDS, help="seeds of the binary rows, e.g. 0,1")
    parser.add_argument(
        "--binary-rows",
        type=_binary_rows,
        default=DEFAULT_BINARY_ROWS,
        help=f"binary rows to train and time, comma-separated ({', '.join(BINARY_ROWS)}), or none "
        f"(default: {','.join(DEFAULT_BINARY_ROWS)})",
    )
    parser.add_argument("--json", default=os.path.join(RESULTS_DIR, "rivals.json"))
    parser.add_argument("--png", default=os.path.join(RESULTS_DIR, "rivals.png"))
    args = parser.parse_args()
    seeds = args.seeds[:1] if args.smoke else args.seeds
    if args.smoke:
        args.runs, args.rounds = 10, 1
    started = time.time()

    rows = {}
    for name in args.int8_rows:
        rows.update({label: dict(row, id=name) for label, row in int8_rows(name, args.output_dir, args.smoke).items()})
    rows[REFERENCE] = shipped_row()
    rows.update(binary_rows(args.binary_rows, seeds, args.output_dir, args.smoke))
    summarize(rows)
    files = {name: file_to_time(row, rebuild(row, seeds[0], args.output_dir, args.smoke)) for name, row in rows.items()}
    print(f"\ntiming {len(files)} files at 28x28, {args.rounds} interleaved rounds of {args.runs} runs", flush=True)
    latencies = interleaved_latencies(files, LATENCY_SETTINGS, args.runs, args.rounds)
    for name, row in rows.items():
        row["latency"] = latencies[name]
        row["latency_ms"] = latencies[name]["median_ms"]
    for row in rows.values():
        row["latency_vs_reference"] = row["latency_ms"] / rows[REFERENCE]["latency_ms"]

    at_224 = {}
    if not args.skip_224:
        files_224, at_224 = convert_224(args.output_dir, args.smoke)
        latencies = interleaved_latencies(files_224, LATENCY_SETTINGS, max(10, args.runs // 5), args.rounds)
        for name, facts in at_224.items():
            facts["latency"] = latencies[name]
            facts["latency_ms"] = latencies[name]["median_ms"]

    print_tables(rows, at_224)
    results = {
        "benchmark_command": shlex.join(["python", "benchmarks/rivals.py", *sys.argv[1:]]),
        "smoke": args.smoke,
        "selected_on": "validation",
        "dataset": "fashion_mnist: 55,000 training images, 5,000 held out for validation, test top-1 once per model",
        "latency_settings": {**LATENCY_SETTINGS, "note": "binary ops: LCE indirect BGEMM; float and int8 ops: XNNPACK"},
        "reference": REFERENCE,
        "rows_28x28": rows,
        "targets": targets(rows),
        "pareto_bytes": pareto(rows, "size_bytes"),
        "pareto_latency": pareto(rows, "latency_ms"),
        "rows_224x224": at_224,
        "wall_minutes_this_run": round((time.time() - started) / 60, 1),
        **machine(),
    }
    write_json(results, args.json)
    plot(rows, args.png)
    print("wrote", args.png)


def _seeds(text):
    try:
        return tuple(int(seed) for seed in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are whole numbers separated by commas, not {text!r}") from None


def _row_names(kind, known):
    """An argparse type: comma-separated names out of `known`, or none."""

    def parse(text):
        names = [] if text == "none" else text.split(",")
        unknown = [name for name in names if name not in known]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"no {kind} row {', '.join(unknown)}; the rows: {', '.join(known)}, or none"
            )
        return names

    return parse


_binary_rows = _row_names("binary", BINARY_ROWS)
_int8_rows = _row_names("int8", zoo.SMALL_CNNS)


def print_tables(rows, at_224):
    header = (
        f"{'28x28 model':58s} {'test top-1 (min-max)':>22s} {'file':>10s} {'binary':>7s} {'x86 ms':>8s} {'vs ref':>7s}"
    )
    print("\n" + header)
    print("-" * len(header))
    for name, row in sorted(rows.items(), key=lambda item: item[1]["size_bytes"]):
        spread = f"{row['test_top1_mean']:.2%} ({100 * row['test_top1_min']:.2f}-{100 * row['test_top1_max']:.2f})"
        print(
            f"{name:58s} {spread:>22s} {row['size_bytes']:>10,} {row['binary_mac_fraction']:7.1%} "
            f"{row['latency_ms']:8.3f} {row['latency_vs_reference']:6.2f}x"
        )
    if at_224:
        print(f"\n{'224x224 model (random weights)':30s} {'file':>12s} {'x86 ms':>8s}  ImageNet top-1 (quoted)  ARM")
        for name, facts in at_224.items():
            top1 = f"{facts['imagenet_top1']:.1%}" if facts["imagenet_top1"] else "n/a"
            print(
                f"{name:30s} {facts['size_bytes']:>12,} {facts['latency_ms']:8.2f}  {top1:>22s}  {facts['arm_latency']}"
            )


if __name__ == "__main__":
    main()
