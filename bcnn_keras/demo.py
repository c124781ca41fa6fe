"""The last lines of `make demo`: what its run shows, in five lines.

    python -m bcnn_keras.demo RUN_DIR

RUN_DIR holds a Fashion-MNIST run of the training CLI, exported next to it (`model.tflite`,
`report.json`, as `make demo` does). This prints the accuracy (with the shipped trained model's
for comparison), the file's size against its float twin's, the binary share of its MACs, the
Keras/LCE agreement, and one test image classified from the file by `bcnn_keras.predict`.
"""

import os
import sys

from bcnn_keras.console import EXIT_BAD_INPUT, OneLineParser, fail, quiet_libraries

# Test image 0 of Fashion-MNIST (an ankle boot), written as a PNG for the prediction.
TEST_IMAGE_INDEX = 0


def float_twin_size(config):
    """Bytes of the float twin's `.tflite`: the same network with real weights, converted alike.

    Example:
        >>> from bcnn_keras.training import TrainConfig
        >>> float_twin_size(TrainConfig(output_dir="run", width_multiplier=0.125)) > 100_000
        True
    """
    from bcnn_keras import data, export, training

    twin = training.build_model(config, data.dataset_spec(config.dataset), binary=False)
    return len(export.convert(twin))


def write_test_image(path, index=TEST_IMAGE_INDEX):
    """Writes Fashion-MNIST test image `index` to `path` (PNG); returns its label's name.

    Example:
        >>> write_test_image("boot.png")
        'Ankle boot'
    """
    from PIL import Image

    from bcnn_keras import data

    images, labels = data.load_fashion_mnist_arrays("test")
    Image.fromarray(images[index, ..., 0]).save(path)
    return data.dataset_spec("fashion_mnist").class_names[labels[index]]


def summary_lines(run_dir):
    """The five lines, for a run dir with `config.json`, `model.tflite` and `report.json`."""
    from bcnn_keras import predict, pretrained
    from bcnn_keras.export.report import Report
    from bcnn_keras.files import read_json
    from bcnn_keras.run_dir import read_config
    from bcnn_keras.training import TrainConfig

    settings = read_config(run_dir)
    if settings is None or settings.get("dataset") != "fashion_mnist":
        raise ValueError(f"{run_dir} holds no Fashion-MNIST run of the training CLI (config.json)")
    config = TrainConfig.from_record(settings, run_dir)
    report = Report.from_dict(read_json(os.path.join(run_dir, "report.json")))
    parity = report.parity
    if not parity or parity.keras_accuracy is None:
        raise ValueError(
            f"{run_dir}/report.json has no parity check on labelled data: export with --verify fashion_mnist"
        )
    twin_bytes = float_twin_size(config)
    image = os.path.join(run_dir, f"test_image_{TEST_IMAGE_INDEX}.png")
    label = write_test_image(image)
    result = predict.classify(os.path.join(run_dir, "model.tflite"), [image], top_k=1)[0]
    best = result["top"][0]
    shipped = pretrained.SHIPPED[("BCNN18", "fashion_mnist")]
    return [
        f"accuracy     {parity.keras_accuracy:.2%} (Keras), {parity.tflite_accuracy:.2%} (the .tflite) on "
        f"{parity.samples:,} test images after {config.phase1_epochs}+{config.phase2_epochs} epochs; "
        f'the shipped trained BCNN18 (weights="fashion_mnist"): {shipped.top1:.2%}',
        f"file size    {report.size_bytes:,} bytes, {twin_bytes / report.size_bytes:.1f}x smaller than "
        f"the float twin's {twin_bytes:,}",
        f"binary MACs  {report.binary_mac_fraction:.1%} of the file's MACs are 1-bit x 1-bit",
        f"agreement    Keras and LCE agree on top-1 for {parity.top1_agreement:.2%} of {parity.samples:,} test images",
        f"one image    {image}: {best['name']} ({best['score']:.2f}) in {result['time_ms']:.2f} ms "
        f"(its label: {label})",
    ]


def main(argv=None):
    """The command line; returns the exit status."""
    parser = OneLineParser(prog="python -m bcnn_keras.demo", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="the demo's output dir (trained and exported)")
    args = parser.parse_args(argv)
    quiet_libraries()
    from bcnn_keras.training import TrainingError

    try:
        lines = summary_lines(args.run_dir)
    except (OSError, ValueError, TrainingError) as error:
        return fail(error, EXIT_BAD_INPUT)
    print("\nwhat the demo shows")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
