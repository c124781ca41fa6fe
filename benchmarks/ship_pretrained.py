"""Turns a run of the accuracy benchmark into the shipped `BCNN18(weights="fashion_mnist")`.

    python benchmarks/ship_pretrained.py benchmarks/results/fashion_mnist.json runs/bench_fashion_mnist
    python benchmarks/ship_pretrained.py --tflite-only     # re-export the shipped weights' model.tflite

The first argument is the benchmark's result JSON (`fashion_mnist.py --json`), the second its
`--output-dir`. Writes, into `bcnn_keras/pretrained/<folder>/`: `weights.npz` (binary kernels
as packed sign bits), `classes.json`, `model.tflite` (exported from the stored weights and
checked on all 10k test images) and `record.json`. The model rebuilt from `weights.npz` must
give the run's `model.keras` outputs exactly. Prints the sha256 and top-1 that
`bcnn_keras.pretrained.SHIPPED` must then hold (a stored checksum guards every load).
"""

import os
import pathlib
import shutil
import sys
import tempfile

# Before TensorFlow is imported: its import-time log lines would break the one-line errors.
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

import numpy as np  # noqa: E402

import bcnn_keras  # noqa: E402
from bcnn_keras import console, data, export, loading, pretrained  # noqa: E402
from bcnn_keras.files import read_json, write_json  # noqa: E402
from bcnn_keras.export.defaults import BENCHMARK_PARITY_THRESHOLD  # noqa: E402

DATASET = "fashion_mnist"
TEST_IMAGES = 10_000  # the whole test split, for the parity check


def main():
    parser = console.OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("result_json", nargs="?", help="the accuracy benchmark's result JSON")
    parser.add_argument("run_dir", nargs="?", help="the benchmark's --output-dir (holds model.keras and config.json)")
    parser.add_argument("--into", help="write the files here instead of the package's shipped folder")
    parser.add_argument(
        "--tflite-only",
        action="store_true",
        help="only export the shipped weights again into model.tflite (and its record entry), "
        "as the exporter now makes it",
    )
    args = parser.parse_args()
    if not args.tflite_only and not (args.result_json and args.run_dir):
        parser.error("give RESULT_JSON and RUN_DIR, or --tflite-only")
    console.quiet_libraries()
    try:
        if args.tflite_only:
            reexport(args.into)
        else:
            ship(args.result_json, args.run_dir, args.into)
    except (OSError, ValueError, KeyError, export.ExportError) as error:
        sys.exit(console.fail(error, console.EXIT_BAD_INPUT))


def ship(result_json, run_dir, into=None):
    """Makes the shipped folder (or `into`) from the benchmark result `result_json` and its `run_dir`."""
    shipped = pretrained.SHIPPED[("BCNN18", DATASET)]
    result, config = read_json(result_json), read_json(os.path.join(run_dir, "config.json"))
    differing = {k: v for k, v in shipped.architecture.items() if k in config and config[k] != v}
    if differing:
        raise ValueError(f"the run's architecture differs from the shipped one in {differing}")
    folder = pathlib.Path(into) if into else shipped.path.parent
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a directory")
    trained = loading.load_model(os.path.join(run_dir, "model.keras"))
    class_names = data.read_class_names(os.path.join(run_dir, data.CLASS_NAMES_FILE), shipped.architecture["classes"])
    # Everything is made in a scratch folder and moved in only once all of it passed.
    with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
        staged = {name: os.path.join(scratch, name) for name in ("weights.npz", data.CLASS_NAMES_FILE, "model.tflite")}
        pretrained.save_binary_weights(trained, staged["weights.npz"])
        rebuilt = bcnn_keras.BCNN18(**shipped.architecture)
        pretrained.load_binary_weights(rebuilt, staged["weights.npz"])
        images = data.load_fashion_mnist_arrays("test")[0][:1000].astype("float32")
        difference = float(np.max(np.abs(trained.predict(images, verbose=0) - rebuilt.predict(images, verbose=0))))
        if difference != 0.0:
            raise ValueError(f"the model rebuilt from weights.npz differs from the run's by up to {difference}")
        data.write_class_names(staged[data.CLASS_NAMES_FILE], class_names)
        report = _export(rebuilt, staged["model.tflite"], class_names)
        staged["record.json"] = os.path.join(scratch, "record.json")
        record = _record(result, shipped, staged["weights.npz"], images_compared=len(images))
        write_json(
            staged["record.json"], {**record, "exported_tflite": _exported_entry(report, staged["model.tflite"])}
        )
        for name, path in staged.items():
            os.replace(path, folder / name)
    print(
        f"sha256={pretrained.file_sha256(folder / 'weights.npz')} top1={result['test_top1']['binary_final']:.4f}: "
        "put both into bcnn_keras.pretrained.SHIPPED"
    )


def reexport(into=None):
    """Exports the shipped weights again into `model.tflite` of the shipped folder (or `into`,
    with a copy of the other files) and updates the record's entry for it."""
    shipped = pretrained.SHIPPED[("BCNN18", DATASET)]
    folder = pathlib.Path(into) if into else shipped.path.parent
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a directory")
    model = bcnn_keras.BCNN18(weights=DATASET)
    record = shipped.record
    with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
        staged = os.path.join(scratch, "model.tflite")
        report = _export(model, staged, shipped.class_names)
        write_json(os.path.join(scratch, "record.json"), {**record, "exported_tflite": _exported_entry(report, staged)})
        if into:
            for name in ("weights.npz", data.CLASS_NAMES_FILE):
                shutil.copy(shipped.path.parent / name, folder / name)
        os.replace(staged, folder / "model.tflite")
        os.replace(os.path.join(scratch, "record.json"), folder / "record.json")
    print(
        f"exported {folder / 'model.tflite'}: {report.size_bytes:,} bytes, agreement {report.parity.top1_agreement:.2%}"
    )


def _export(model, path, class_names):
    """The shipped model's export, checked on every test image; its names ride in the file."""
    return export.export(
        model,
        path,
        verify=DATASET,
        samples=TEST_IMAGES,
        parity_threshold=BENCHMARK_PARITY_THRESHOLD,
        class_names=class_names,
        overwrite=True,
    )


def _exported_entry(report, path):
    return {
        "file": "model.tflite",
        "sha256": pretrained.file_sha256(path),
        "size_bytes": report.size_bytes,
        "binary_mac_fraction": report.binary_mac_fraction,
        "class_names_inside": report.class_names is not None,
        "parity_10k": {
            key: getattr(report.parity, key)
            for key in ("top1_agreement", "keras_accuracy", "tflite_accuracy", "samples")
        },
        "made_with": f"bcnn_keras.export.export(BCNN18(weights={DATASET!r}), 'model.tflite', "
        f"verify={DATASET!r}, samples={TEST_IMAGES}, class_names=...)",
    }


def _record(result, shipped, weights_path, images_compared):
    """record.json: how the weights were made and what they reached."""
    return {
        "description": "BCNN18 trained on Fashion-MNIST by the accuracy benchmark; phase-2 weights, "
        "binary kernels as packed sign bits",
        "file": "weights.npz",
        "sha256": pretrained.file_sha256(weights_path),
        "benchmark_command": result["benchmark_command"],
        "training_command": result["command"],
        "architecture": shipped.architecture,
        "selected_on": result.get("selected_on", "test"),
        "test_top1": {
            "keras": result["test_top1"]["binary_final"],
            "float_twin": result["test_top1"]["float_twin"],
            "exported_tflite": result["exported"]["tflite_top1"],
        },
        "test_images": result["exported"]["samples"],
        "benchmark_run_export": {
            key: result["exported"][key] for key in ("size_bytes", "binary_mac_fraction", "top1_agreement", "samples")
        },
        "machine": {key: result[key] for key in ("cpu", "cores")},
        "made_with": "benchmarks/ship_pretrained.py: bcnn_keras.pretrained.save_binary_weights on the run's "
        f"model.keras; the model rebuilt from it gives the same outputs (max |diff| 0 on {images_compared} "
        "test images)",
    }


if __name__ == "__main__":
    main()
