"""The exporter's targets and defaults, declared once for `export()`, its steps and its command line.

Standard library only: the command line reads them before it imports TensorFlow.

Example:
    >>> PARITY_THRESHOLD, SAMPLES, LATENCY_RUNS
    (0.995, 1000, 20)
"""

TARGETS = ("arm", "xcore")
TARGET = "arm"
# The dtype of the file's image input: float32 pixels, or uint8 (raw camera bytes, cast inside).
INPUT_TYPES = ("float32", "uint8")
INPUT_TYPE = "float32"
# Minimum top-1 agreement between Keras and the LCE interpreter: the exporter's default, and
# the stricter one that the benchmarks and the shipped models are held to.
PARITY_THRESHOLD = 0.995
BENCHMARK_PARITY_THRESHOLD = 0.998
# Test inputs of the parity check.
SAMPLES = 1000
# Timed x86 runs (0 skips the latency measurement).
LATENCY_RUNS = 20
