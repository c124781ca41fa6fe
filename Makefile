# Two commands do all the set-up: `make demo` and `make test` (both create .venv first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv test test-all demo clean

venv: $(INSTALLED)

$(INSTALLED): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(INSTALLED)

test: venv
	$(PY) -m pytest

test-all: venv
	$(PY) -m pytest -m ""

demo: venv
	$(PY) -c "import bcnn_keras, larq; larq.models.summary(bcnn_keras.BCNN18())"

clean:
	rm -rf $(VENV) build *.egg-info
