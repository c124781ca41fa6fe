"""What every benchmark script shares: where results go, how they are written, which machine
ran them."""

import contextlib
import dataclasses
import os
import shlex
import shutil
import subprocess
import sys
import time

from bcnn_keras import files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO, "benchmarks", "results")
RUNS_DIR = os.path.join(REPO, "runs")
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


def run_training(arguments, label="running"):
    """Runs `python -m bcnn_keras.train ARGUMENTS` in a fresh process from the repo root (it
    must succeed); returns `(the command as a user would type it, wall minutes)`."""
    command = shlex.join(["python", "-m", "bcnn_keras.train", *arguments])
    print(f"{label}: {command}", flush=True)
    started = time.time()
    subprocess.run([sys.executable, "-m", "bcnn_keras.train", *arguments], check=True, cwd=REPO)
    return command, (time.time() - started) / 60
