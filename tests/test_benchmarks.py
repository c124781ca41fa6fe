"""Smoke runs of the benchmark scripts with tiny settings: they run end to end and write what
the README quotes. No timing is asserted. The training benchmarks' runs are slow (several
processes each) and run in `make test-slow`, which CI runs after `make test`."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).parent.parent


def test_inference_benchmark_measures_bcnn18_against_float_resnet18(tmp_path):
    output = tmp_path / "inference.json"
    command = [
        sys.executable,
        "benchmarks/inference.py",
        "--models",
        "BCNN18",
        "float_ResNet18",
        "--runs",
        "10",
        "--rounds",
        "1",
        "--json",
        str(output),
        "--png",
        str(tmp_path / "inference.png"),
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


@pytest.mark.slow
def test_inference_profile_attributes_every_op_to_a_category(tmp_path):
    report, stdout = _run_benchmark(
        "inference.py",
        tmp_path,
        "--models",
        "BCNN18",
        "--runs",
        "10",
        "--rounds",
        "1",
        "--profile",
        "--png",
        str(tmp_path / "inference.png"),
    )
    bcnn18 = report["models"]["BCNN18"]
    profile = bcnn18["profile"]
    assert report["profile_method"].startswith("Each op of the converted flatbuffer")
    assert len(profile["ops"]) == sum(bcnn18["ops"].values())
    assert {
        "input path",
        "binary conv",
        "LceQuantize between layers",
        "element-wise float",
        "pooling",
        "channel duplication",
        "classifier (global pool to softmax)",
    } <= set(profile["categories"])
    assert "bconv 3x3 s1 64->64" in profile["categories"]["binary conv"]["rows"]
    assert "bconv 3x3 s2 64->128" in profile["categories"]["binary conv"]["rows"]
    assert abs(sum(c["share"] for c in profile["categories"].values()) - 1) < 1e-6
    assert profile["parts_ms"] == sum(op["ms"] for op in profile["ops"])
    assert profile["whole_ms"] > 0 and profile["coverage"] == profile["parts_ms"] / profile["whole_ms"]
    assert bcnn18["bconv_binary_gops"] > 0
    assert report["cpu"] and all(isinstance(value, bool) for value in report["cpu_flags"].values())
    assert "avx512_vpopcntdq" in report["cpu_flags"]
    assert "coverage (parts / whole)" in stdout and "method:" in stdout


@pytest.fixture
def runs(tmp_path):
    """A run folder inside the repo (where the benchmarks write their runs), removed after the
    test, pass or fail."""
    folder = f"runs/test_{tmp_path.name}"
    yield folder
    shutil.rmtree(REPO / folder, ignore_errors=True)


def _run_benchmark(script, tmp_path, *arguments):
    output = tmp_path / "result.json"
    command = [sys.executable, f"benchmarks/{script}", *arguments, "--json", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=1800)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(output.read_text()), result.stdout


@pytest.mark.slow
def test_accuracy_benchmark_smoke_run_records_command_and_exported_model(tmp_path, runs):
    report, stdout = _run_benchmark(
        "fashion_mnist.py",
        tmp_path,
        "--set",
        "teacher_epochs=1",
        "phase1_epochs=1",
        "phase2_epochs=1",
        "--train-limit",
        "512",
        "--test-limit",
        "256",
        "--verify-samples",
        "200",
        "--output-dir",
        runs,
    )
    assert (
        report["command"].startswith("python -m bcnn_keras.train") and "--validation-images 5000" in report["command"]
    )
    assert report["selected_on"] == "validation" and report["recipe"] == "fast"
    assert report["exported"]["binary_mac_fraction"] == 1.0 and report["exported"]["samples"] == 200
    assert set(report["validation_top1"]) == {"float_twin", "binary_after_phase1", "binary_final"}
    assert set(report["test_top1"]) == {"float_twin", "binary_final"}
    assert report["cpu"] and report["cores"] >= 1
    assert report["cpu_flags"] and all(isinstance(value, bool) for value in report["cpu_flags"].values())
    assert "fully binary (final)" in stdout
    assert (tmp_path / "result.png").stat().st_size > 0  # beside the JSON by default


@pytest.mark.slow
def test_design_space_smoke_run_tables_every_row_and_resumes(tmp_path, runs):
    arguments = ["--smoke", "--seeds", "0", "--output-dir", runs, "--png", str(tmp_path / "design.png")]
    report, stdout = _run_benchmark("design_space.py", tmp_path, *arguments)
    rows = report["rows"]
    assert list(rows) == [
        "float_twin",
        "larq_zoo_style",
        "float_input",
        "float_classifier",
        "float_shortcuts",
        "binary_x8",
    ]
    assert rows["float_twin"]["binary_mac_fraction"] == 0.0 and rows["float_twin"]["latency_vs_float_twin"] == 1.0
    assert rows["binary_x8"]["binary_mac_fraction"] == 1.0 and rows["binary_x8"]["float_layers"] == []
    assert set(rows["larq_zoo_style"]["float_layers"]) == {"stem_conv", "classifier_dense"}
    assert rows["binary_x8"]["size_bytes"] < rows["larq_zoo_style"]["size_bytes"] < rows["float_twin"]["size_bytes"]
    assert all(row["test_top1_min"] <= row["test_top1_mean"] <= row["test_top1_max"] for row in rows.values())
    assert (tmp_path / "design.png").stat().st_size > 0
    again, stdout = _run_benchmark("design_space.py", tmp_path, *arguments)
    assert stdout.count("done earlier") == 6 and again["rows"]["binary_x8"]["seeds"] == rows["binary_x8"]["seeds"]


@pytest.mark.slow
def test_ship_pretrained_rebuilds_the_shipped_folder_from_a_run(tmp_path):
    import bcnn_keras
    from bcnn_keras import pretrained

    shipped = pretrained.SHIPPED[("BCNN18", "fashion_mnist")]
    record = shipped.record
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    bcnn_keras.BCNN18(weights="fashion_mnist").save(run_dir / "model.keras")
    # The training settings a run's config.json records (the builder's shape arguments are not among them).
    settings = {key: value for key, value in shipped.architecture.items() if key not in ("input_shape", "classes")}
    (run_dir / "config.json").write_text(json.dumps(settings))
    shutil.copy(shipped.path.parent / "classes.json", run_dir / "classes.json")
    result = {
        "benchmark_command": record["benchmark_command"],
        "command": record["training_command"],
        "test_top1": {"binary_final": record["test_top1"]["keras"], "float_twin": record["test_top1"]["float_twin"]},
        "exported": {**record["benchmark_run_export"], "tflite_top1": record["test_top1"]["exported_tflite"]},
        **record["machine"],
    }
    (tmp_path / "result.json").write_text(json.dumps(result))
    into = tmp_path / "shipped"
    into.mkdir()
    command = [
        sys.executable,
        "benchmarks/ship_pretrained.py",
        str(tmp_path / "result.json"),
        str(run_dir),
        "--into",
        str(into),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert completed.returncode == 0, completed.stderr[-2000:]
    written = json.loads((into / "record.json").read_text())
    assert written["exported_tflite"]["parity_10k"]["samples"] == 10_000
    assert written["exported_tflite"]["parity_10k"]["keras_accuracy"] == pytest.approx(shipped.top1, abs=1e-4)
    assert f"sha256={written['sha256']}" in completed.stdout
    model = bcnn_keras.BCNN18(**shipped.architecture)
    pretrained.load_binary_weights(model, str(into / "weights.npz"), sha256=written["sha256"])
    assert json.loads((into / "classes.json").read_text())[9] == "Ankle boot"

    missing = subprocess.run([*command[:-1], str(tmp_path / "no_such_dir")], capture_output=True, text=True, cwd=REPO)
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
    (run_dir / "config.json").write_text(json.dumps({"width_multiplier": 0.5}))
    refused = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "architecture differs" in refused.stderr


@pytest.mark.slow
def test_fine_tune_benchmark_smoke_run_chooses_on_validation_and_compares_two_seeds(tmp_path, runs):
    report, stdout = _run_benchmark("fine_tune_digits.py", tmp_path, "--smoke", "--output-dir", runs)
    assert report["selected_on"] == "validation" and report["smoke"]
    assert set(report["recipe_choice"]) == {
        "head_then_phase2",
        "head_then_both",
        "phase2_only",
        "both_phases",
        "scratch_10_20",
        "scratch_15_15",
    }
    for side in ("fine_tuned", "scratch"):
        result = report["results"][side]
        assert len(result["held_out_top1"]) == 2 and result["min"] <= result["mean"] <= result["max"]
    assert "--weights fashion_mnist" in report["results"]["fine_tuned"]["commands"][0]
    assert "held-out top-1 (1,297 digits)" in stdout


@pytest.mark.slow
def test_uint8_input_benchmark_compares_both_files_of_the_shipped_model(tmp_path):
    report, stdout = _run_benchmark("uint8_input.py", tmp_path, "--samples", "300", "--runs", "10", "--rounds", "1")
    rows = report["rows"]
    assert rows["uint8"]["ops"]["CAST"] == 1 and "CAST" not in rows["float32"]["ops"]
    assert all(row["top1_agreement"] >= 0.998 for row in rows.values())
    assert report["latency_uint8_over_float32"] > 0 and "uint8 / float32" in stdout


def test_rivals_trains_the_kept_presets_unless_told_and_names_every_row_on_a_typo():
    def rivals(*args):
        return subprocess.run(
            [sys.executable, "benchmarks/rivals.py", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=300,
            env={**os.environ, "COLUMNS": "1000"},  # no line breaks in the usage
        )

    usage = rivals("--help").stdout
    assert "(default: binary_x8,larq_zoo_style,BCNN18_s2,BCNN6,BCNN8,BCNN9_long,BCNN10_long)" in usage
    typo = rivals("--binary-rows", "BCNN9_long,BCNN9_wide")
    assert typo.returncode == 2 and "no binary row BCNN9_wide; the rows:" in typo.stderr
    assert "BCNN9_long_phase1" in typo.stderr and "Traceback" not in typo.stderr


@pytest.mark.slow
def test_rivals_smoke_run_has_every_kind_of_row_timed_in_one_run(tmp_path, runs):
    report, stdout = _run_benchmark(
        "rivals.py", tmp_path, "--smoke", "--output-dir", runs, "--png", str(tmp_path / "r.png")
    )
    rows = report["rows_28x28"]
    kinds = {row["kind"] for row in rows.values()}
    assert kinds == {"int8 PTQ", "int8 QAT", "partially binary", "fully binary"}
    assert sum(row["kind"] == "int8 PTQ" for row in rows.values()) == 4
    labelled = [row["id"] for row in rows.values() if row["kind"] != "int8 QAT"]  # the plot's point labels
    assert len(set(labelled)) == len(labelled) and "shipped" in labelled
    shipped = rows.pop(report["reference"])
    assert shipped["selected_on"].startswith("test") and shipped["latency_vs_reference"] == 1.0
    assert all(row["selected_on"] == "validation" and row["latency_ms"] > 0 for row in rows.values())
    assert all(row["arm_latency"].startswith("n/a") for row in rows.values())
    assert set(report["targets"]["presets"]) == {
        "BCNN18 width 0.25, 3x3 stride-2 input block",
        "BCNN8 (stride-2 input block, 6 blocks)",
        "BCNN9 (BCNN8 + a 256-channel block), twin 12 epochs, student 4 + 24",
        "BCNN10 (BCNN9 + a third 128-channel block), twin 12 epochs, student 4 + 24",
        "BCNN6 (stride-2 input block, 4 blocks)",
    }
    assert report["rows_224x224"]["BCNN18"]["arm_latency"].endswith("(estimated, docs/deploy.md)")
    assert (tmp_path / "r.png").stat().st_size > 0 and "28x28 model" in stdout
    assert all(row["timed_file"] == "the trained file" for row in rows.values())

    # A row recorded without its file (trained in another clone) is timed on its architecture rebuilt.
    gone = [label for label, row in rows.items() if row["id"] in ("BCNN6", "cnn_3conv_gap")]
    for label in gone:
        (REPO / rows[label]["tflite"]).unlink()
    again, stdout = _run_benchmark(
        "rivals.py", tmp_path, "--smoke", "--skip-224", "--output-dir", runs, "--png", str(tmp_path / "r.png")
    )
    assert "[BCNN6 (stride-2 input block, 4 blocks) seed 0] done earlier" in stdout
    for label in gone:
        row = again["rows_28x28"][label]
        assert row["timed_file"].startswith("rebuilt with random weights") and row["latency_ms"] > 0
        assert row["size_bytes"] == rows[label]["size_bytes"] and row["test_top1"] == rows[label]["test_top1"]


@pytest.fixture
def benchmark_modules(monkeypatch):
    """The benchmarks' own modules (`common`, `recipes`, `rivals`), importable as the scripts import them."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import common
    import recipes
    import rivals

    return common, recipes, rivals


def test_a_finished_row_is_recorded_in_the_repo_and_found_there_unless_its_command_changed(
    benchmark_modules, tmp_path, monkeypatch
):
    common = benchmark_modules[0]
    monkeypatch.setattr(common, "REPO", str(tmp_path))
    monkeypatch.setattr(common, "RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(common, "RECORDS_DIR", str(tmp_path / "results" / "rows"))
    run_dir = os.path.join("runs", "presets", "BCNN6", "seed0")
    assert common.committed_record_path(run_dir) == str(tmp_path / "results/rows/presets/BCNN6/seed0.json")
    assert common.committed_record_path(os.path.join("runs", "test_smoke", "presets", "BCNN6", "seed0")) is None

    command = f"python -m bcnn_keras.train --teacher {tmp_path}/runs/twin/model.keras"
    common.save_record(run_dir, "row.json", {"command": command, "test_top1": 0.9})
    shutil.rmtree(tmp_path / "runs")  # a fresh clone: the run folder is gone, the record is in the repo
    path, record = common.read_record(run_dir, "row.json", "command", command)
    assert path.endswith("results/rows/presets/BCNN6/seed0.json") and record["test_top1"] == 0.9
    # Another clone names the teacher by its own absolute path: the same command.
    moved = command.replace(str(tmp_path), "/elsewhere/repo")
    assert common.read_record(run_dir, "row.json", "command", moved)[1] == record
    assert common._portable(moved) == "python -m bcnn_keras.train --teacher runs/twin/model.keras"
    assert common.read_record(run_dir, "row.json", "command", command + " --seed 1") == (None, None)


def test_the_rows_recorded_in_the_repo_were_made_by_todays_recipes(benchmark_modules):
    common, recipes, rivals = benchmark_modules
    records = sorted(pathlib.Path(common.RECORDS_DIR).rglob("*.json"))
    assert records, "no recorded rows"
    for path in records:
        parts = path.relative_to(common.RECORDS_DIR).with_suffix("").parts
        record = json.loads(path.read_text())
        if parts[:2] == ("rivals", "int8"):
            assert record["recipe"] == rivals.INT8_RECIPE and parts[2] in rivals.zoo.SMALL_CNNS
            assert all(0.5 < row["test_top1"]["0"] < 1 and row["size_bytes"] > 0 for row in record["rows"].values())
            continue
        kind, name, seed = parts
        make_config = recipes.design_row_config if kind == "design_space" else recipes.preset_row_config
        config = make_config(name, int(seed.removeprefix("seed")))
        assert common._portable(record["command"]) == common._portable(common.training_command(config.to_argv())), path
        assert 0.5 < record["test_top1"] < 1 and record["size_bytes"] > 0 and record["macs"]["binary"] > 0
