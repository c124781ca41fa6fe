"""What every benchmark script shares: where results go, how they are written, which machine
ran them."""

import contextlib
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np

from bcnn_keras import files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO, "benchmarks", "results")
RUNS_DIR = os.path.join(REPO, "runs")
# The record of every finished row of the long benchmarks (rivals, design space) is also kept
# here, in the repo: `runs/` does not travel, and a re-run in a fresh clone skips what is recorded.
RECORDS_DIR = os.path.join(RESULTS_DIR, "rows")
RECORDED_RUNS = ("design_space", "presets", "rivals")
# A rebuilt file (same architecture, random weights) may differ from the trained one by a few
# bytes of constants; more than this means the architecture changed since the row was recorded.
REBUILT_SIZE_TOLERANCE = 0.03
# The CPU flags that change how fast LCE's x86 kernels and TensorFlow's oneDNN kernels run.
RELEVANT_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_vpopcntdq", "popcnt")


def write_json(data, path):
    """Writes `data` as indented JSON to `path` (creating its directory) and says so."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files.write_json(path, data)
    print("wrote", path)


def machine():
    """The CPU model, its relevant flags and the core count, for a result's JSON."""
    from bcnn_keras.export.latency import cpu_info  # imports TensorFlow: only when a result is written

    cpu = cpu_info()
    return {
        "cpu": cpu["model"],
        "cpu_flags": {flag: flag in cpu["flags"] for flag in RELEVANT_FLAGS},
        "cores": os.cpu_count(),
    }


def committed_record_path(run_dir):
    """Where the record of the run in `run_dir` (relative to the repo) is kept in the repo:
    `results/rows/<its path inside runs/>.json`; None for a run outside the benchmarks' own
    folders (a smoke run's, a folder of the user's)."""
    relative = os.path.relpath(os.path.join(REPO, run_dir), RUNS_DIR)
    if relative.split(os.sep)[0] not in RECORDED_RUNS:
        return None
    return os.path.join(RECORDS_DIR, relative + ".json")


def read_record(run_dir, file_name, key, expected):
    """`(path, record)` of a finished run: `run_dir/file_name` (copied to the repo if it is not
    there yet), else its copy in the repo; `(None, None)` when there is neither, or when the
    record's `key` is not `expected` (it was made by another command or recipe: the row is
    stale and trains again)."""
    in_repo = committed_record_path(run_dir)
    for path in (os.path.join(REPO, run_dir, file_name), in_repo):
        if path and os.path.exists(path):
            record = files.read_json(path)
            if _portable(record.get(key)) == _portable(expected):
                if in_repo and not os.path.exists(in_repo):  # finished before runs were recorded in the repo
                    save_record(run_dir, file_name, record)
                return path, record
            print(f"{path} was made by another {key} ({record.get(key)!r}): trained again")
    return None, None


def save_record(run_dir, file_name, record):
    """Saves a finished run's record in `run_dir/file_name` and, for the benchmarks' own runs, in the repo."""
    for path in (os.path.join(REPO, run_dir, file_name), committed_record_path(run_dir)):
        if path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            files.write_json(path, record, indent=1)


def _portable(value):
    """`value` with absolute paths into any clone's `runs/` made relative: a command names the
    teacher's file by one, and the same command run in another clone names another."""
    return re.sub(r"(?<!\S)/\S*?/runs/", "runs/", value) if isinstance(value, str) else value


def randomize_weights(model, seed=0):
    """Fills every float weight of `model` with distinct random values (variances positive), so
    that its converted file has the constants of a trained model, none repeated and merged."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        if not weight.dtype.is_floating or "phase" in weight.name:  # a binary layer's training phase
            continue
        values = rng.uniform(0.5, 1.5, weight.shape)
        if "variance" not in weight.name:
            values *= rng.choice([-1.0, 1.0], weight.shape)
        weight.assign(values.astype(weight.dtype.as_numpy_dtype))


def file_to_time(row, rebuild):
    """The flatbuffer to time for a row: its trained file, or when that is gone (the row's record
    came from the repo) `rebuild()`, the same architecture with random weights: latency does not
    depend on the weights' values. Notes in `row["timed_file"]` which it was."""
    path = os.path.join(REPO, row["tflite"])
    if os.path.exists(path):
        row["timed_file"] = "the trained file"
        with open(path, "rb") as stream:
            return stream.read()
    flatbuffer = rebuild()
    off = abs(len(flatbuffer) - row["size_bytes"]) / row["size_bytes"]
    if off > REBUILT_SIZE_TOLERANCE:
        sys.exit(
            f"error: {row['tflite']} is gone, and its architecture rebuilt is {len(flatbuffer):,} B against the "
            f"recorded {row['size_bytes']:,} B: the row's settings changed since it was recorded; delete its record"
        )
    row["timed_file"] = f"rebuilt with random weights ({len(flatbuffer):,} B; the trained file was not at hand)"
    return flatbuffer


def interleaved_latencies(flatbuffers, settings, runs, rounds):
    """Latency of every flatbuffer (a dict name -> bytes), timed in `rounds` that each visit every
    model once, so that a slow spell of a noisy machine is spread over all of them. `settings`
    go to `bcnn_keras.export.latency_x86`. Median and p10/p90 of all runs, as JSON data."""
    from bcnn_keras import export

    timings = {name: [] for name in flatbuffers}
    last = {}
    for _ in range(rounds):
        for name, flatbuffer in flatbuffers.items():
            last[name] = export.latency_x86(flatbuffer, runs=runs, keep_timings=True, **settings)
            timings[name] += last[name].timings_ms
    return {
        name: {
            **dataclasses.replace(
                last[name], timings_ms=None, runs=len(values), **export.latency_summary(values)
            ).to_dict(),
            "rounds": rounds,
        }
        for name, values in timings.items()
    }


@contextlib.contextmanager
def png_plot(path, title, xlabel, ylabel, size=(6, 4), panels=1):
    """Yields the axes of a new figure (a list of `panels` axes side by side when `panels` > 1,
    with a label per panel in `xlabel` and `ylabel`); on exit labels them and writes the figure
    to `path` as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, panels, figsize=size)
    yield axes
    labelled = zip([axes], [xlabel], [ylabel]) if panels == 1 else zip(axes, xlabel, ylabel)
    for panel, x, y in labelled:
        panel.set_xlabel(x)
        panel.set_ylabel(y)
        panel.grid(alpha=0.3)
    if panels > 1:
        figure.suptitle(title)
    else:
        axes.set_title(title)
    figure.tight_layout()
    with files.atomic_write(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)


def fresh_run_dir(relative_path, keep=False):
    """The absolute path of `relative_path`, a directory strictly inside `runs/`, emptied first
    unless `keep` (a benchmark must time a fresh run; the training CLI would resume)."""
    path = os.path.abspath(os.path.join(REPO, relative_path))
    if os.path.commonpath([path, RUNS_DIR]) != RUNS_DIR or path == RUNS_DIR:
        sys.exit(
            "error: --output-dir must be a directory inside runs/ (the benchmark deletes it first), "
            f"got {relative_path}"
        )
    if not keep:
        shutil.rmtree(path, ignore_errors=True)
    return path


def training_command(arguments):
    """`python -m bcnn_keras.train ARGUMENTS` as a user would type it."""
    return shlex.join(["python", "-m", "bcnn_keras.train", *arguments])


def run_training(arguments, label="running"):
    """Runs `python -m bcnn_keras.train ARGUMENTS` in a fresh process from the repo root (it
    must succeed); returns `(the command as a user would type it, wall minutes)`."""
    command = training_command(arguments)
    print(f"{label}: {command}", flush=True)
    started = time.time()
    subprocess.run([sys.executable, "-m", "bcnn_keras.train", *arguments], check=True, cwd=REPO)
    return command, (time.time() - started) / 60
