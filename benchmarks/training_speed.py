"""Training speed benchmark: the step time of BCNN18 against its float twin on this CPU.

Same batch, input size and number of steps for both; every model is warmed up first, then the
timed rounds alternate between the models, so that a slow spell of a noisy machine hits both.
Target: binary / float <= 1.3. It also times the Fashion-MNIST configuration with TensorFlow's
oneDNN kernels off and on (which `import bcnn_keras` turns on): the switch is read when
TensorFlow is imported, so each round runs one fresh process per setting, alternating.
Prints tables and writes JSON.

    python benchmarks/training_speed.py        # or: make bench
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import bcnn_keras
import numpy as np
import tensorflow as tf
from common import RESULTS_DIR, write_json

TARGET_RATIO = 1.3
# (name, input shape, model arguments, batch size): the configuration of the earlier accuracy
# benchmark (widths rounded to multiples of 8, a 2x2 stride-2 stem) and the full-size model on
# ImageNet-shaped input.
CONFIGURATIONS = [
    ("fashion_mnist", (28, 28, 1), dict(classes=10, width_multiplier=0.375, stem_strides=2), 256),
    ("imagenet_224", (224, 224, 3), dict(classes=1000), 8),
]
VARIANTS = {
    "float twin": dict(binary=False, phase=None),
    "BCNN18 phase 1": dict(binary=True, phase=1),
    "BCNN18 phase 2": dict(binary=True, phase=2),
}


def _model(input_shape, arguments, binary, phase):
    model = bcnn_keras.BCNN18(input_shape=input_shape, binary=binary, **arguments)
    if phase is not None:
        bcnn_keras.set_phase(model, phase)
    model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    return model


def step_times(input_shape, arguments, batch_size, steps, rounds, seed=0):
    """Median seconds per training step of each variant, timed in alternating rounds."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch_size * steps, *input_shape)).astype("float32")
    labels = rng.integers(0, arguments["classes"], batch_size * steps)
    models = {name: _model(input_shape, arguments, **variant) for name, variant in VARIANTS.items()}
    for model in models.values():  # warm-up: tracing and the first steps
        model.fit(images[: 2 * batch_size], labels[: 2 * batch_size], batch_size=batch_size, verbose=0)
    timings = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model.fit(images, labels, batch_size=batch_size, epochs=1, verbose=0)
            timings[name].append((time.perf_counter() - start) / steps)
    tf.keras.backend.clear_session()
    return {name: float(np.median(values)) for name, values in timings.items()}


def onednn_enabled():
    """Whether TensorFlow runs its oneDNN kernels in this process."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def onednn_step_times(steps, rounds):
    """Median seconds per step of the Fashion-MNIST configuration with oneDNN "off" and "on",
    each round one fresh process of this script per setting."""
    timings = {"off": [], "on": []}
    for _ in range(rounds):
        for setting, flag in (("off", "0"), ("on", "1")):
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "round.json")
                command = [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--configurations",
                    "fashion_mnist",
                    "--steps",
                    str(steps),
                    "--rounds",
                    "1",
                    "--no-onednn-comparison",
                    "--json",
                    path,
                ]
                subprocess.run(
                    command, env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": flag}, check=True, stdout=subprocess.DEVNULL
                )
                with open(path) as stream:
                    report = json.load(stream)
            if report["onednn"] != (flag == "1"):
                raise RuntimeError(f"TF_ENABLE_ONEDNN_OPTS={flag} did not set oneDNN {setting}")
            timings[setting].append(report["configurations"]["fashion_mnist"]["seconds_per_step"])
    return {
        setting: {variant: float(np.median([r[variant] for r in per_round])) for variant in VARIANTS}
        for setting, per_round in timings.items()
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per model (the median is kept)")
    parser.add_argument(
        "--configurations", nargs="+", choices=[c[0] for c in CONFIGURATIONS], default=[c[0] for c in CONFIGURATIONS]
    )
    parser.add_argument(
        "--no-onednn-comparison", dest="onednn_comparison", action="store_false", help="skip the oneDNN off/on rounds"
    )
    parser.add_argument("--json", default=os.path.join(RESULTS_DIR, "training_speed.json"))
    args = parser.parse_args()

    results = {}
    for name, input_shape, arguments, batch_size in CONFIGURATIONS:
        if name not in args.configurations:
            continue
        print(
            f"timing {name}: input {input_shape}, batch {batch_size}, {args.steps} steps x {args.rounds} rounds ...",
            flush=True,
        )
        seconds = step_times(input_shape, arguments, batch_size, args.steps, args.rounds)
        float_seconds = seconds["float twin"]
        results[name] = {
            "input_shape": list(input_shape),
            "model_arguments": arguments,
            "batch_size": batch_size,
            "seconds_per_step": seconds,
            "ratio_to_float_twin": {variant: value / float_seconds for variant, value in seconds.items()},
        }

    print(f"\n{'configuration':15s} {'variant':16s} {'s/step':>8s} {'x float':>8s}")
    worst = 0.0
    for name, result in results.items():
        for variant, value in result["seconds_per_step"].items():
            ratio = result["ratio_to_float_twin"][variant]
            if variant != "float twin":
                worst = max(worst, ratio)
            print(f"{name:15s} {variant:16s} {value:8.3f} {ratio:8.2f}")
    met = worst <= TARGET_RATIO
    print(f"worst binary/float ratio {worst:.2f}, target <= {TARGET_RATIO}: {'met' if met else 'MISSED'}")
    report = {
        "cpu_threads": os.cpu_count(),
        "tensorflow": tf.__version__,
        "onednn": onednn_enabled(),
        "steps": args.steps,
        "rounds": args.rounds,
        "configurations": results,
        "worst_ratio": worst,
        "target_ratio": TARGET_RATIO,
        "target_met": met,
    }
    if args.onednn_comparison:
        print(
            f"\ntiming fashion_mnist with oneDNN off and on: {args.rounds} rounds of one process each ...", flush=True
        )
        seconds = onednn_step_times(args.steps, args.rounds)
        speedup = {variant: seconds["off"][variant] / seconds["on"][variant] for variant in VARIANTS}
        print(f"{'variant':16s} {'off s/step':>10s} {'on s/step':>10s} {'off / on':>9s}")
        for variant in VARIANTS:
            print(
                f"{variant:16s} {seconds['off'][variant]:10.3f} {seconds['on'][variant]:10.3f} {speedup[variant]:9.2f}"
            )
        report["onednn_fashion_mnist"] = {"seconds_per_step": seconds, "off_over_on": speedup}
    write_json(report, args.json)


if __name__ == "__main__":
    main()
