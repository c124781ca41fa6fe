"""Fine-tuning benchmark: the shipped Fashion-MNIST BCNN18 fine-tuned on images nobody here drew,
against the same network trained from scratch for the same epochs.

The images are scikit-learn's bundled handwritten digits (1,797 8x8 images, 0..16; no
download): each is scaled to 0..255 and resized to 28x28 with PIL's bilinear filter. A fixed,
seeded split takes 500 images to train on and holds the other 1,297 out. The recipe of each side
is chosen on a validation split of the 500 (400 to train, 100 to validate): for fine-tuning,
with or without training the new classifier alone first (`--head-epochs`) and in phase 2 only or
both phases; from scratch, the split of the epochs between the phases. The chosen recipes then
train on all 500 images with two seeds each, and the held-out 1,297 are evaluated once per run.

Every run is the training CLI (`--dataset folder:...`, and `--weights fashion_mnist` for
fine-tuning). Prints a table and writes JSON with the commands, the CPU and the results.

    python benchmarks/fine_tune_digits.py            # or: make bench-fine-tune
    python benchmarks/fine_tune_digits.py --smoke    # a few steps of every run (tests)
"""

import argparse
import os
import shlex
import sys
import time

import numpy as np

from bcnn_keras.run_dir import load_history
from common import REPO, RESULTS_DIR, fresh_run_dir, machine, run_training, write_json

TRAIN_IMAGES = 500
VALIDATION_IMAGES = 100
SPLIT_SEED = 0
SEEDS = (0, 1)
# name -> training flags on top of the common ones; every recipe trains EPOCHS epochs in all
# (500 images are 16 steps an epoch at batch 32).
EPOCHS = 30
FINE_TUNE_RECIPES = {
    "head_then_phase2": [
        "--weights",
        "fashion_mnist",
        "--head-epochs",
        "4",
        "--phase1-epochs",
        "0",
        "--phase2-epochs",
        "26",
    ],
    "head_then_both": [
        "--weights",
        "fashion_mnist",
        "--head-epochs",
        "4",
        "--phase1-epochs",
        "8",
        "--phase2-epochs",
        "18",
    ],
    "phase2_only": ["--weights", "fashion_mnist", "--phase1-epochs", "0", "--phase2-epochs", "30"],
    "both_phases": ["--weights", "fashion_mnist", "--phase1-epochs", "10", "--phase2-epochs", "20"],
}
SCRATCH_RECIPES = {
    "scratch_10_20": ["--phase1-epochs", "10", "--phase2-epochs", "20"],
    "scratch_15_15": ["--phase1-epochs", "15", "--phase2-epochs", "15"],
}
# The shipped model's architecture, which the scratch runs share (fine-tuning takes it from the weights).
ARCHITECTURE = [
    "--width-multiplier",
    "0.25",
    "--channel-multiple",
    "8",
    "--stem-strides",
    "1",
    "--stem-kernel-size",
    "3",
]


def digit_images():
    """scikit-learn's digits as uint8 28x28 images (0..16 scaled to 0..255, bilinear resize) and labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    scaled = np.clip(np.rint(digits.images * 255 / 16), 0, 255).astype(np.uint8)
    images = [np.asarray(Image.fromarray(image).resize((28, 28), Image.Resampling.BILINEAR)) for image in scaled]
    return np.stack(images), digits.target


def write_folders(root):
    """Writes `root/heldout/{train,test}` (500 / 1,297 images) and `root/select/{train,test}`
    (400 / 100 of the 500) as one PNG folder per class; returns both folder paths."""
    from PIL import Image

    images, labels = digit_images()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    train, held_out = order[:TRAIN_IMAGES], order[TRAIN_IMAGES:]
    splits = {
        "heldout": {"train": train, "test": held_out},
        "select": {"train": train[VALIDATION_IMAGES:], "test": train[:VALIDATION_IMAGES]},
    }
    for name, parts in splits.items():
        for split, indices in parts.items():
            for index in indices:
                folder = os.path.join(root, name, split, str(labels[index]))
                os.makedirs(folder, exist_ok=True)
                Image.fromarray(images[index]).save(os.path.join(folder, f"{index:04d}.png"))
    return {name: os.path.join(root, name) for name in splits}


def train(folder, flags, seed, output_dir, args):
    """One training run; returns `(command, final top-1 on the folder's test split, minutes)`."""
    arguments = [
        "--dataset",
        "folder:" + os.path.relpath(folder, REPO),
        *flags,
        "--batch-size",
        str(args.batch_size),
        "--learning-rate",
        str(args.learning_rate),
        "--seed",
        str(seed),
        "--no-augment",
        "--verbose",
        "2",
        "--output-dir",
        os.path.relpath(output_dir, REPO),
        *(["--train-limit", str(args.train_limit)] if args.train_limit else []),
    ]
    if "--weights" not in flags:
        arguments += ARCHITECTURE
    command, minutes = run_training(arguments, label=f"[{os.path.basename(output_dir)}]")
    return command, load_history(os.path.join(output_dir, "history.json"))[-1]["val_accuracy"], minutes


def smoke_flags(flags):
    """The same recipe with every epoch count at 1 (a 1-epoch head stays)."""
    counts = {"--head-epochs", "--phase1-epochs", "--phase2-epochs"}
    return [("1" if previous in counts and value != "0" else value) for previous, value in zip([None, *flags], flags)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--smoke", action="store_true", help="1 epoch per stage and 64 training images")
    parser.add_argument("--output-dir", default=os.path.join("runs", "fine_tune_digits"), help="inside runs/")
    parser.add_argument("--json", default=os.path.join(RESULTS_DIR, "fine_tune_digits.json"))
    args = parser.parse_args()
    args.train_limit = 64 if args.smoke else None
    recipes = {**FINE_TUNE_RECIPES, **SCRATCH_RECIPES}
    if args.smoke:
        recipes = {name: smoke_flags(flags) for name, flags in recipes.items()}

    started = time.time()
    output_dir = fresh_run_dir(args.output_dir)
    folders = write_folders(os.path.join(output_dir, "data"))
    validation = {}
    for name, flags in recipes.items():
        command, top1, minutes = train(
            folders["select"], flags, SEEDS[0], os.path.join(output_dir, "select", name), args
        )
        validation[name] = {"command": command, "validation_top1": top1, "minutes": round(minutes, 1)}
    chosen = {
        side: max(names, key=lambda name: validation[name]["validation_top1"])
        for side, names in (("fine_tuned", FINE_TUNE_RECIPES), ("scratch", SCRATCH_RECIPES))
    }
    final = {}
    for side, name in chosen.items():
        runs = [
            train(folders["heldout"], recipes[name], seed, os.path.join(output_dir, f"{side}_seed{seed}"), args)
            for seed in SEEDS
        ]
        top1 = [run[1] for run in runs]
        final[side] = {
            "recipe": name,
            "commands": [run[0] for run in runs],
            "held_out_top1": dict(zip(map(str, SEEDS), top1)),
            "mean": float(np.mean(top1)),
            "min": float(min(top1)),
            "max": float(max(top1)),
        }
    minutes = (time.time() - started) / 60

    print(f"\nrecipe choice (validation: 100 of the 500 training images, seed {SEEDS[0]}):")
    for name, entry in validation.items():
        mark = " <- chosen" if name in chosen.values() else ""
        print(f"  {name:18s} {entry['validation_top1']:7.2%}{mark}")
    print(f"\nheld-out top-1 (1,297 digits), {EPOCHS} epochs in all, seeds {SEEDS}:")
    for side, entry in final.items():
        seeds = ", ".join(f"{value:.2%}" for value in entry["held_out_top1"].values())
        print(f"  {side:10s} {entry['recipe']:18s} mean {entry['mean']:.2%} ({seeds})")
    results = {
        "benchmark_command": shlex.join(["python", "benchmarks/fine_tune_digits.py", *sys.argv[1:]]),
        "data": "scikit-learn digits: 0..16 scaled to 0..255, 8x8 -> 28x28 bilinear (PIL); "
        f"seeded split (seed {SPLIT_SEED}): {TRAIN_IMAGES} to train, the other {1797 - TRAIN_IMAGES} held out; "
        f"recipes chosen on {VALIDATION_IMAGES} of the {TRAIN_IMAGES}",
        "smoke": args.smoke,
        "selected_on": "validation",
        "recipe_choice": validation,
        "chosen": chosen,
        "results": final,
        "fine_tuned_beats_scratch": final["fine_tuned"]["mean"] > final["scratch"]["mean"],
        "wall_minutes": round(minutes, 1),
        **machine(),
    }
    write_json(results, args.json)


if __name__ == "__main__":
    main()
