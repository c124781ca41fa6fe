"""The exporter's targets and defaults, declared once for `export()`, its steps and its command line.

Standard library only: the command line reads them before it imports TensorFlow.

Example:
    >>> PARITY_THRESHOLD, SAMPLES, LATENCY_RUNS
    (0.995, 1000, 20)
"""

TARGETS = ("arm", "xcore")
TARGET = "arm"
# Minimum top-1 agreement between Keras and the LCE interpreter.
PARITY_THRESHOLD = 0.995
# Test inputs of the parity check.
SAMPLES = 1000
# Timed x86 runs (0 skips the latency measurement).
LATENCY_RUNS = 20
