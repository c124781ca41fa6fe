# Two commands do all the set-up: `make demo` and `make test` (both create .venv first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
DEMO_DIR := runs/demo
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv lint test test-slow test-all demo bench bench-accuracy bench-accuracy-93 bench-design bench-fine-tune bench-rivals notebooks fashion-mnist clean

venv: $(INSTALLED)

$(INSTALLED): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,bench,lint]'
	touch $(INSTALLED)

# The Debian package with the real Fashion-MNIST IDX files (installed when running as root).
fashion-mnist:
	@if [ ! -e $(FASHION_MNIST) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	  else \
	    echo "error: Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist'" >&2; exit 1; \
	  fi; \
	fi

# ruff (pyproject.toml: line length 120) and pylint's duplicate-code check (six or more equal lines).
lint: venv
	$(PY) -m ruff check bcnn_keras export benchmarks tests conftest.py
	$(PY) -m ruff format --check bcnn_keras export benchmarks tests conftest.py
	$(PY) -m pylint --disable=all --enable=duplicate-code --min-similarity-lines=6 --ignore-imports=yes \
	    --ignore-docstrings=yes --score=no bcnn_keras export benchmarks

test: venv fashion-mnist
	$(PY) -m pytest

# The slow tests, which CI runs after `make test`: the fault tests that train in a subprocess
# (kills, NaN loss, full disk, changed settings), the image-folder end-to-end run, the callback
# and distiller tests that trace a full fit, and the accuracy and design-space benchmarks' smoke runs.
test-slow: venv fashion-mnist
	$(PY) -m pytest -m slow

test-all: venv fashion-mnist
	$(PY) -m pytest -m ""

# The main job: two-step training of a small fully binary BCNN18, export and verification, then
# what it shows (accuracy, size against the float twin, binary MACs, agreement, one image).
demo: venv fashion-mnist
	$(PY) -m bcnn_keras.train --dataset fashion_mnist --model BCNN18 --width-multiplier 0.25 \
	    --phase1-epochs 1 --phase2-epochs 1 --train-limit 24000 --output-dir $(DEMO_DIR) --verbose 2
	$(PY) export/to_tflite.py $(DEMO_DIR)/model.keras -o $(DEMO_DIR)/model.tflite \
	    --verify fashion_mnist --samples 10000 --report $(DEMO_DIR)/report.json
	$(PY) -m bcnn_keras.demo $(DEMO_DIR)

# Inference (224x224, against float ResNet-18 and larq-zoo, with the per-op profile) and training-speed benchmarks.
bench: venv fashion-mnist
	$(PY) benchmarks/inference.py --extras --profile
	$(PY) benchmarks/training_speed.py
	$(PY) benchmarks/uint8_input.py

# Re-runs the notebooks in place with their full settings (the committed outputs).
notebooks: venv fashion-mnist
	$(VENV)/bin/jupyter-execute --inplace --timeout=3600 notebooks/*.ipynb

# The headline accuracy run (fully binary BCNN18 against its float twin, exported and verified).
bench-accuracy: venv fashion-mnist
	$(PY) benchmarks/fashion_mnist.py

# Fine-tuning the shipped model on scikit-learn's digits against training from scratch (about 30 minutes).
bench-fine-tune: venv fashion-mnist
	$(PY) benchmarks/fine_tune_digits.py

# Fully binary files against int8 TFLite models and larq-zoo-style ones: accuracy, bytes, latency
# (hours on 2 cores; resumable: rows recorded in benchmarks/results/rows/, here or by bench-design, are kept).
bench-rivals: venv fashion-mnist
	$(PY) benchmarks/rivals.py

# The recipe toward 93 % (under 90 minutes on 2 cores).
bench-accuracy-93: venv fashion-mnist
	$(PY) benchmarks/fashion_mnist.py --recipe accurate

# The design-space table: float input layer / shortcuts / classifier against fully binary.
bench-design: venv fashion-mnist
	$(PY) benchmarks/design_space.py

clean:
	rm -rf $(VENV) build *.egg-info
