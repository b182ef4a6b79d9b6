# The two commands of the README: `make book` and `make test`. Both build .venv/ on demand.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu
TORCH_PIN := torch==2.13.0

.PHONY: venv test book book-html lab bench lint clean-venv

# The venv is (re)built when pyproject.toml changes. torch is installed first, pinned, so that
# the CPU wheel is used and no open requirement drags in a CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e ".[book,dev]" "$(TORCH_PIN)"
	touch $@

venv: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q

# Runs the papermill stages of PROFILE (skipping those whose inputs are unchanged), then builds the
# book. JOBS=N runs independent stages concurrently; DATA_ROOT=DIR points at real StructSeg data.
JOBS ?=
DATA_ROOT ?=
PIPELINE_ARGS ?=
book: $(VENV)/.installed
	$(PY) -m sepnet_core.pipeline --profile $(PROFILE) $(if $(JOBS),--jobs $(JOBS)) $(if $(DATA_ROOT),--data-root $(DATA_ROOT)) $(PIPELINE_ARGS)

# Compiles the committed executed notebooks only (no stage runs).
book-html: $(VENV)/.installed
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going

lab: $(VENV)/.installed
	$(VENV)/bin/python -m pip install --quiet jupyterlab
	$(VENV)/bin/jupyter lab notebooks/

bench: $(VENV)/.installed
	$(PY) benchmarks/run_all.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check sepnet_core tests benchmarks

clean-venv:
	rm -rf $(VENV)
