"""Single-image latency of a flatbuffer on this (x86) host, with LCE's interpreter."""

import platform
import time

import larq_compute_engine as lce
import numpy as np

from bcnn_keras.export.defaults import LATENCY_RUNS
from bcnn_keras.export.report import Latency


def lce_interpreter(flatbuffer, threads=1, *, indirect_bgemm=True, xnnpack=False):
    """LCE's interpreter on a flatbuffer, by default with 1 thread and the indirect BGEMM kernel
    (the default x86 kernel is a slow reference path).

    Example:
        >>> from bcnn_keras.export import convert
        >>> lce_interpreter(convert(bcnn_keras.BCNN18())).input_shapes
        [(1, 224, 224, 3)]
    """
    return lce.testing.Interpreter(
        flatbuffer, num_threads=threads, use_indirect_bgemm=indirect_bgemm, use_xnnpack=xnnpack
    )


def latency_x86(
    flatbuffer, runs=LATENCY_RUNS, warmup=3, *, threads=1, indirect_bgemm=True, xnnpack=False, keep_timings=False
):
    """Single-image latency of the flatbuffer on this (x86) host, in milliseconds.

    LCE interpreter, by default 1 thread with the indirect BGEMM kernel (the default x86 kernel
    is a slow reference path); `xnnpack=True` delegates the float ops to XNNPACK. The report
    holds the summary; `keep_timings=True` adds every run's time as `timings_ms`. On-device
    numbers come from `export/benchmark_on_device.py`.

    Example:
        >>> from bcnn_keras.export import convert
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)], name="tiny")
        >>> latency = latency_x86(convert(model))
        >>> latency.runs, latency.median_ms > 0
        (20, True)
    """
    runs = max(10, int(runs))
    interpreter = lce_interpreter(flatbuffer, threads, indirect_bgemm=indirect_bgemm, xnnpack=xnnpack)
    inputs = [np.zeros(shape, dtype) for shape, dtype in zip(interpreter.input_shapes, interpreter.input_types)]
    sample = inputs[0] if len(inputs) == 1 else inputs
    for _ in range(warmup):
        interpreter.predict(sample)
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.predict(sample)
        timings.append((time.perf_counter() - start) * 1000)
    kernel = "LCE indirect BGEMM" if indirect_bgemm else "LCE default BGEMM"
    return Latency(
        **latency_summary(timings),
        runs=runs,
        warmup_runs=warmup,
        timings_ms=[float(t) for t in timings] if keep_timings else None,
        threads=threads,
        kernel=kernel + (" + XNNPACK" if xnnpack else ""),
        machine=platform.machine(),
        cpu=cpu_info()["model"],
    )


def latency_summary(timings_ms):
    """Median, mean, min and p10/p90 of latency timings (ms), as a report's `*_ms` fields.

    Example:
        >>> latency_summary([3.0, 1.0, 2.0])["median_ms"]
        2.0
    """
    return {
        "median_ms": float(np.median(timings_ms)),
        "mean_ms": float(np.mean(timings_ms)),
        "min_ms": float(np.min(timings_ms)),
        "p10_ms": float(np.percentile(timings_ms, 10)),
        "p90_ms": float(np.percentile(timings_ms, 90)),
    }


def cpu_info():
    """This host's CPU as `/proc/cpuinfo` describes its first core: `model` (name), `mhz` (the
    clock it reports, or None) and `flags` (a frozenset, empty where the file is missing).

    Example:
        >>> isinstance(cpu_info()["flags"], frozenset)  # "avx512_vpopcntdq" in it: machines differ
        True
    """
    first = {}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                first.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return {
        "model": first.get("model name") or platform.processor() or platform.machine() or "unknown",
        "mhz": float(first["cpu MHz"]) if "cpu MHz" in first else None,
        "flags": frozenset(first.get("flags", "").split()),
    }
