"""Benchmark a .tflite file on an Android phone (adb) or a Raspberry Pi (ssh) with LCE's
`lce_benchmark_model`, and record the result in the exporter's report schema: the logic of
`export/benchmark_on_device.py`.

    python export/benchmark_on_device.py MODEL.tflite --android [--serial SERIAL]
        [--benchmark-binary lce_benchmark_model_android_arm64] [--report REPORT.json]
    python export/benchmark_on_device.py MODEL.tflite --ssh pi@raspberrypi.local
        [--benchmark-binary lce_benchmark_model_aarch64] [--report REPORT.json]

The model (and, with --benchmark-binary, the benchmark binary) is copied to the device and run
there; the timings are parsed from the TFLite benchmark tool's output into `latency_ms_arm`,
`latency_arm` and `memory_arm`. With --report, an existing report (from export/to_tflite.py) is
updated in place, otherwise a new one is written. These are the on-device fields of
`bcnn_keras.export.report.Report`; the file is handled as plain JSON here, and nothing here
imports TensorFlow: this runs anywhere adb or ssh does. Every failure prints one line "error: ..."
on stderr and exits with 2.
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys

from bcnn_keras import files

BINARY_NAME = "lce_benchmark_model"
EXIT_FAILED = 2
_NUMBER = r"[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"


class BenchmarkError(Exception):
    """A failed step, as one line."""


class Android:
    """Commands for a phone reached with adb (USB debugging on)."""

    transport = "adb"
    default_directory = "/data/local/tmp"

    def __init__(self, serial=None):
        self.base = ["adb", *(["-s", serial] if serial else [])]

    def push(self, local, remote):
        return [*self.base, "push", local, remote]

    def shell(self, command):
        return [*self.base, "shell", command]

    def model_name_command(self):
        return self.shell("getprop ro.product.model")


class Ssh:
    """Commands for a Raspberry Pi (or any aarch64 Linux board) reached with ssh and scp.

    BatchMode makes a missing key fail at once instead of waiting for a password.
    """

    transport = "ssh"
    default_directory = "/tmp"

    def __init__(self, host, port=None):
        self.host = host
        self.port = port

    def push(self, local, remote):
        port = ["-P", str(self.port)] if self.port else []
        return ["scp", "-q", "-o", "BatchMode=yes", *port, local, f"{self.host}:{remote}"]

    def shell(self, command):
        port = ["-p", str(self.port)] if self.port else []
        return ["ssh", "-o", "BatchMode=yes", *port, self.host, command]

    def model_name_command(self):
        return self.shell("cat /proc/device-tree/model")


def benchmark_commands(device, model, args):
    """The commands that copy the files and run the benchmark, in order, and the benchmark's index.

    Example:
        >>> commands, _ = benchmark_commands(Android(), "m.tflite", parse_args(["m.tflite", "--android"]))
        >>> commands[-1][:2]
        ['adb', 'shell']
    """
    directory = args.remote_dir or device.default_directory
    remote_model = f"{directory}/{os.path.basename(model)}"
    binary = args.remote_binary or f"{directory}/{BINARY_NAME}"
    commands = []
    if args.benchmark_binary:
        commands += [device.push(args.benchmark_binary, binary), device.shell(shlex.join(["chmod", "755", binary]))]
    commands.append(device.push(model, remote_model))
    flags = [
        f"--graph={remote_model}",
        f"--num_threads={args.threads}",
        f"--num_runs={args.runs}",
        f"--warmup_runs={args.warmup_runs}",
    ]
    commands.append(device.shell(shlex.join([binary, *flags])))
    return commands, len(commands) - 1


def _key_values(text):
    return {key.strip(): float(value) for key, value in re.findall(rf"([A-Za-z][A-Za-z ()]*?):\s*({_NUMBER})", text)}


def parse_benchmark_output(text):
    """Timings (ms) and memory (MB) from the output of TFLite's / LCE's benchmark tool.

    Reads "Inference timings in us: Init: ..., First inference: ..., Warmup (avg): ...,
    Inference (avg): ...", the statistics line of the timed runs ("count=50 first=... min=...
    max=... avg=... std=...") and the memory footprint lines.

    Example:
        >>> parse_benchmark_output("Inference timings in us: Init: 900, First inference: 30000, "
        ...                        "Warmup (avg): 25000, Inference (avg): 21000")["avg_ms"]
        21.0
    """
    timings = re.search(r"Inference timings in us:(.*)", text)
    values = _key_values(timings.group(1)) if timings else {}
    if "Inference (avg)" not in values:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        failures = [line for line in lines if "ERROR" in line or "fail" in line.lower()]
        last = (failures or lines or ["no output"])[-1]
        raise BenchmarkError(f"no 'Inference timings' in the output of {BINARY_NAME} (last message: {last})")
    result = {
        "avg_ms": values["Inference (avg)"] / 1000,
        "first_ms": values.get("First inference", 0) / 1000,
        "warmup_avg_ms": values.get("Warmup (avg)", 0) / 1000,
        "init_ms": values.get("Init", 0) / 1000,
    }
    statistics = re.findall(r"count=\d+[^\n]*", text)
    if statistics:  # the last one belongs to the timed runs (the first to the warm-up)
        fields = dict(re.findall(rf"(\w+)=({_NUMBER})", statistics[-1]))
        result["runs"] = int(float(fields["count"]))
        result.update({f"{key}_ms": float(fields[key]) / 1000 for key in ("min", "max", "std") if key in fields})
    return result


def parse_memory(text):
    """Memory footprint lines of the benchmark tool, in MB (empty if there are none).

    Example:
        >>> parse_memory("Memory footprint delta from the start of the tool (MB): init=2.5 overall=9.75")
        {'init_mb': 2.5, 'overall_mb': 9.75}
    """
    memory = {}
    delta = re.search(
        rf"Memory footprint delta from the start of the tool \(MB\): init=({_NUMBER}) overall=({_NUMBER})", text
    )
    if delta:
        memory.update(init_mb=float(delta.group(1)), overall_mb=float(delta.group(2)))
    peak = re.search(rf"peak memory footprint \(MB\) via periodic monitoring: ({_NUMBER})", text)
    if peak:
        memory["peak_mb"] = float(peak.group(1))
    return memory


def _run(command, dry_run):
    if dry_run:
        print(shlex.join(command))
        return ""
    try:
        process = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except OSError as error:
        raise BenchmarkError(f"cannot run {command[0]}: {error.strerror}") from error
    except subprocess.TimeoutExpired as error:
        raise BenchmarkError(f"`{shlex.join(command)}` did not finish within 30 minutes") from error
    output = process.stdout + process.stderr
    if process.returncode != 0:
        last = ([line.strip() for line in output.splitlines() if line.strip()] or ["no output"])[-1]
        raise BenchmarkError(f"`{shlex.join(command)}` failed with exit code {process.returncode}: {last}")
    return output


def _device_model(device):
    try:
        name = subprocess.run(device.model_name_command(), capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return name.replace("\x00", "").strip() or "unknown"


def _updated_report(path, model, measurement):
    report = {"output": model, "size_bytes": os.path.getsize(model)}
    if path and os.path.exists(path):
        try:
            report = files.read_json(path)
        except (OSError, ValueError) as error:
            raise BenchmarkError(f"{path}: cannot read the report ({error})") from error
    report.update(measurement)
    return report


def benchmark(args):
    """Runs the benchmark on the device; returns the measurement in the report schema."""
    if not os.path.isfile(args.model):
        raise BenchmarkError(f"{args.model}: no such file")
    if args.benchmark_binary and not os.path.isfile(args.benchmark_binary):
        raise BenchmarkError(f"{args.benchmark_binary}: no such file")
    if args.report and not os.path.isdir(os.path.dirname(os.path.abspath(args.report))):
        raise BenchmarkError(f"report directory {os.path.dirname(os.path.abspath(args.report))} does not exist")
    device = Ssh(args.ssh, args.port) if args.ssh else Android(args.serial)
    commands, benchmark_index = benchmark_commands(device, args.model, args)
    for tool in sorted({command[0] for command in commands}):
        if not args.dry_run and shutil.which(tool) is None:
            raise BenchmarkError(f"{tool} not found on PATH")
    outputs = [_run(command, args.dry_run) for command in commands]
    if args.dry_run:
        return None
    text = outputs[benchmark_index]
    timings = parse_benchmark_output(text)
    details = {
        **timings,
        "threads": args.threads,
        "device": _device_model(device),
        "transport": device.transport,
        "tool": BINARY_NAME,
    }
    return {"latency_ms_arm": timings["avg_ms"], "latency_arm": details, "memory_arm": parse_memory(text)}


def parse_args(argv=None):
    """The command line as an `argparse.Namespace`.

    Example:
        >>> parse_args(["m.tflite", "--ssh", "pi@raspberrypi.local"]).threads
        1
    """
    parser = argparse.ArgumentParser(
        prog="benchmark_on_device.py",
        description="Run LCE's lce_benchmark_model on an Android phone (adb) or a Raspberry Pi (ssh).",
    )
    parser.add_argument("model", help="the .tflite file to benchmark")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--android", action="store_true", help="the phone connected with adb")
    where.add_argument("--ssh", metavar="USER@HOST", help="a Raspberry Pi or other aarch64 board reachable by ssh")
    parser.add_argument("--serial", help="adb serial number, when several devices are connected")
    parser.add_argument("--port", type=int, help="ssh port")
    parser.add_argument(
        "--benchmark-binary", metavar="PATH", help="a local lce_benchmark_model to copy to the device first"
    )
    parser.add_argument("--remote-binary", metavar="PATH", help="lce_benchmark_model's path on the device")
    parser.add_argument("--remote-dir", help="where files go on the device (default: /data/local/tmp or /tmp)")
    parser.add_argument("--threads", type=int, default=1, help="inference threads (default: 1)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs (default: 50)")
    parser.add_argument("--warmup-runs", type=int, default=5, help="warm-up runs (default: 5)")
    parser.add_argument("--report", metavar="REPORT.json", help="report to update (or create)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    return parser.parse_args(argv)


def main(argv=None):
    """The CLI entry point; returns the exit status.

    Example:
        >>> _ = open("model.tflite", "wb").write(b"TFL3")  # stands in for an exported model
        >>> main(["model.tflite", "--android", "--dry-run"])
        adb push model.tflite /data/local/tmp/model.tflite
        adb shell '/data/local/tmp/lce_benchmark_model --graph=/data/local/tmp/model.tflite --num_threads=1 ...'
        0
    """
    args = parse_args(argv)
    try:
        measurement = benchmark(args)
        if measurement is None:  # dry run
            return 0
        report = _updated_report(args.report, args.model, measurement)
        if args.report:
            try:
                files.write_json(args.report, report)
            except OSError as error:
                raise BenchmarkError(f"{args.report}: cannot write the report ({error.strerror or error})") from error
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    latency = measurement["latency_arm"]
    print(
        f"latency (arm)  {measurement['latency_ms_arm']:.2f} ms average of {latency.get('runs', args.runs)} runs "
        f"({latency['threads']} thread(s), {latency['device']} via {latency['transport']})"
    )
    if measurement["memory_arm"]:
        print("memory (arm)   " + ", ".join(f"{key} {value:g}" for key, value in measurement["memory_arm"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
