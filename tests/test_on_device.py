"""Tests of export/benchmark_on_device.py with fake `adb`, `ssh` and `scp` executables on PATH.

The fakes log their arguments and answer like a device would: the benchmark command prints a
canned `lce_benchmark_model` output. No device is involved (none was available here).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "export" / "benchmark_on_device.py"

BENCHMARK_OUTPUT = """\
STARTING!
Log parameter values verbosely: [0]
Num runs: [50]
Num threads: [1]
Graph: [/data/local/tmp/model.tflite]
INFO: Initialized TensorFlow Lite runtime.
The input model file size (MB): 1.49616
Initialized session in 21.432ms.
Running benchmark for at least 5 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=9 first=91020 curr=55300 min=54900 max=91020 avg=60125.5 std=11800

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=31500 curr=30900 min=30718 max=36410 avg=31118.1 std=1323

Inference timings in us: Init: 21432, First inference: 91020, Warmup (avg): 60125.5, Inference (avg): 31118.1
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Memory footprint delta from the start of the tool (MB): init=3.4375 overall=9.875
Overall peak memory footprint (MB) via periodic monitoring: 12.1875
"""

FAKE_TOOL = """\
#!{python}
import json, os, sys
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
command = " ".join(sys.argv[1:])
if os.environ.get("FAKE_FAIL", "\\0") in command:
    sys.exit("error: device offline")
if "--graph=" in command:
    sys.stderr.write(open(os.environ["FAKE_OUTPUT"]).read())  # the tool logs to stderr
elif "getprop ro.product.model" in command:
    print("Pixel 7")
elif "device-tree/model" in command:
    sys.stdout.write("Raspberry Pi 4 Model B Rev 1.4\\0")
"""


def load_script():
    from bcnn_keras.export import on_device

    return on_device


@pytest.fixture
def device(tmp_path):
    """Fake tools on PATH; returns a runner of the script and the logged commands."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("adb", "ssh", "scp"):
        path = bin_dir / tool
        path.write_text(FAKE_TOOL.format(python=sys.executable))
        path.chmod(0o755)
    log, output = tmp_path / "commands.jsonl", tmp_path / "benchmark_output.txt"
    output.write_text(BENCHMARK_OUTPUT)
    model = tmp_path / "model.tflite"
    model.write_bytes(b"\0" * 1234)
    env = {**os.environ, "PATH": str(bin_dir), "FAKE_LOG": str(log), "FAKE_OUTPUT": str(output)}

    def run(*args, **extra_env):
        process = subprocess.run(
            [sys.executable, str(SCRIPT), str(model), *map(str, args)],
            capture_output=True,
            text=True,
            env={**env, **extra_env},
            timeout=60,
        )
        commands = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return process, commands

    run.model, run.output, run.tmp = model, output, tmp_path
    return run


def test_android_pushes_binary_and_model_runs_benchmark_and_updates_the_report(device):
    binary = device.tmp / "lce_benchmark_model_android_arm64"
    binary.write_bytes(b"\x7fELF")
    report = device.tmp / "report.json"
    report.write_text(json.dumps({"size_bytes": 1234, "binary_mac_fraction": 1.0, "latency_ms_x86": 68.3}))
    process, commands = device("--android", "--serial", "R5CT", "--benchmark-binary", binary, "--report", report)
    assert process.returncode == 0, process.stderr
    adb = ["adb", "-s", "R5CT"]
    assert commands == [
        [*adb, "push", str(binary), "/data/local/tmp/lce_benchmark_model"],
        [*adb, "shell", "chmod 755 /data/local/tmp/lce_benchmark_model"],
        [*adb, "push", str(device.model), "/data/local/tmp/model.tflite"],
        [
            *adb,
            "shell",
            "/data/local/tmp/lce_benchmark_model --graph=/data/local/tmp/model.tflite "
            "--num_threads=1 --num_runs=50 --warmup_runs=5",
        ],
        [*adb, "shell", "getprop ro.product.model"],
    ]
    result = json.loads(report.read_text())
    assert result["binary_mac_fraction"] == 1.0 and result["latency_ms_x86"] == 68.3  # kept
    assert result["latency_ms_arm"] == pytest.approx(31.1181)
    assert result["latency_arm"] == {
        "avg_ms": pytest.approx(31.1181),
        "first_ms": pytest.approx(91.02),
        "warmup_avg_ms": pytest.approx(60.1255),
        "init_ms": pytest.approx(21.432),
        "runs": 50,
        "min_ms": pytest.approx(30.718),
        "max_ms": pytest.approx(36.41),
        "std_ms": pytest.approx(1.323),
        "threads": 1,
        "device": "Pixel 7",
        "transport": "adb",
        "tool": "lce_benchmark_model",
    }
    assert result["memory_arm"] == {"init_mb": 3.4375, "overall_mb": 9.875, "peak_mb": 12.1875}
    assert "31.12 ms average of 50 runs" in process.stdout and "Pixel 7 via adb" in process.stdout


def test_raspberry_pi_over_ssh_with_port_threads_and_installed_binary(device):
    report = device.tmp / "new_report.json"
    process, commands = device(
        "--ssh",
        "pi@raspberrypi.local",
        "--port",
        2222,
        "--remote-binary",
        "/home/pi/bin/lce_benchmark_model",
        "--threads",
        4,
        "--runs",
        20,
        "--report",
        report,
    )
    assert process.returncode == 0, process.stderr
    assert commands == [
        ["scp", "-q", "-o", "BatchMode=yes", "-P", "2222", str(device.model), "pi@raspberrypi.local:/tmp/model.tflite"],
        [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-p",
            "2222",
            "pi@raspberrypi.local",
            "/home/pi/bin/lce_benchmark_model --graph=/tmp/model.tflite --num_threads=4 --num_runs=20 --warmup_runs=5",
        ],
        ["ssh", "-o", "BatchMode=yes", "-p", "2222", "pi@raspberrypi.local", "cat /proc/device-tree/model"],
    ]
    result = json.loads(report.read_text())
    assert result["size_bytes"] == 1234 and result["output"] == str(device.model)
    assert result["latency_arm"]["device"] == "Raspberry Pi 4 Model B Rev 1.4"
    assert result["latency_arm"]["threads"] == 4 and result["latency_arm"]["transport"] == "ssh"


def test_paths_with_spaces_are_quoted_for_the_remote_shell(device):
    process, commands = device("--ssh", "pi@rpi", "--remote-dir", "/tmp/my models")
    assert process.returncode == 0, process.stderr
    assert commands[0][-1] == "pi@rpi:/tmp/my models/model.tflite"
    assert "'--graph=/tmp/my models/model.tflite'" in commands[1][-1]


def test_failed_command_gives_one_line_and_writes_no_report(device):
    report = device.tmp / "report.json"
    process, commands = device("--android", "--report", report, FAKE_FAIL="push")
    assert process.returncode == 2
    assert process.stderr.splitlines() == [
        f"error: `adb push {device.model} /data/local/tmp/model.tflite` failed with exit code 1: error: device offline"
    ]
    assert len(commands) == 1 and not report.exists()


def test_benchmark_output_without_timings_is_an_error(device):
    device.output.write_text(
        "INFO: Initialized TensorFlow Lite runtime.\n"
        "ERROR: Encountered unresolved custom op: LceBconv2d.\n"
        "Benchmarking failed.\n"
    )
    process, _ = device("--android")
    assert process.returncode == 2
    lines = process.stderr.splitlines()
    assert len(lines) == 1 and "no 'Inference timings'" in lines[0] and "Benchmarking failed" in lines[0]


def test_missing_tool_on_path(device, tmp_path):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    process, commands = device("--android", PATH=str(empty))
    assert process.returncode == 2 and process.stderr == "error: adb not found on PATH\n"
    assert commands == []


def test_dry_run_prints_the_commands(device):
    process, commands = device("--android", "--dry-run")
    assert process.returncode == 0 and commands == []
    assert process.stdout.splitlines() == [
        f"adb push {device.model} /data/local/tmp/model.tflite",
        "adb shell '/data/local/tmp/lce_benchmark_model --graph=/data/local/tmp/model.tflite "
        "--num_threads=1 --num_runs=50 --warmup_runs=5'",
    ]


def test_parse_benchmark_output_reads_prefixed_lines_and_memory():
    script = load_script()
    prefixed = "".join(f"INFO: {line}\n" for line in BENCHMARK_OUTPUT.splitlines())
    assert script.parse_benchmark_output(prefixed) == script.parse_benchmark_output(BENCHMARK_OUTPUT)
    assert script.parse_benchmark_output(prefixed)["avg_ms"] == pytest.approx(31.1181)
    assert script.parse_memory("Memory footprint delta from the start of the tool (MB): init=2 overall=7.5") == {
        "init_mb": 2.0,
        "overall_mb": 7.5,
    }
    only_timings = (
        "Inference timings in us: Init: 900, First inference: 30000, Warmup (avg): 2.5e4, Inference (avg): 21000"
    )
    assert script.parse_benchmark_output(only_timings) == {
        "avg_ms": 21.0,
        "first_ms": 30.0,
        "warmup_avg_ms": 25.0,
        "init_ms": 0.9,
    }


def test_the_tool_runs_from_a_clone_and_loads_no_tensorflow(tmp_path):
    """The script runs with Python alone: the package's on-device module imports no TensorFlow."""
    check = (
        "import runpy, sys\n"
        f"sys.argv = ['benchmark_on_device.py', {str(tmp_path / 'm.tflite')!r}, '--android', '--dry-run']\n"
        f"(open({str(tmp_path / 'm.tflite')!r}, 'wb').write(b'TFL3'))\n"
        "try:\n"
        f"    runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    print('exit', done.code, 'tensorflow' in sys.modules)\n"
    )
    process = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert process.stdout.splitlines()[-1] == "exit 0 False", process.stderr
    assert "adb push" in process.stdout
