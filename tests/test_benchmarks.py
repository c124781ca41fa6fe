"""The inference benchmark runs end to end and its size targets hold for the default BCNN18."""

import json
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).parent.parent


def test_inference_benchmark_measures_bcnn18_against_float_resnet18(tmp_path):
    output = tmp_path / "inference.json"
    command = [
        sys.executable, "benchmarks/inference.py", "--models", "BCNN18", "float_ResNet18", "--runs", "10", "--rounds", "1",
        "--skip-bconv-profile", "--json", str(output), "--png", str(tmp_path / "inference.png"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    bcnn18, resnet18 = report["models"]["BCNN18"], report["models"]["float_ResNet18"]
    assert bcnn18["binary_mac_fraction"] == 1.0 and bcnn18["float_macs"] == 0
    assert resnet18["binary_macs"] == 0 and resnet18["float_macs"] > 1.7e9  # ResNet-18: 1.8 G MACs
    assert report["targets"]["size_bytes"]["met"] and report["targets"]["size_ratio_float_ResNet18_over_BCNN18"]["met"]
    assert bcnn18["latency"]["runs"] == 10 and bcnn18["latency"]["p10_ms"] <= bcnn18["latency"]["p90_ms"]
    assert (tmp_path / "inference.png").stat().st_size > 0
