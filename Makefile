# The two commands of the README: `make book` and `make test`. Both build .venv/ on demand.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu
TORCH_PIN := torch==2.13.0

.PHONY: venv system-deps test book book-html lab bench lint clean-venv

# The venv is (re)built when pyproject.toml changes. torch is installed first, pinned, so that
# the CPU wheel is used and no open requirement drags in a CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e ".[book,dev]" "$(TORCH_PIN)"
	touch $@

venv: $(VENV)/.installed

# System programs the tests use: Chromium (headless check of the built book) and dciodvfy
# (dicom3tools: validates the RTSTRUCT we write). Installed with apt-get when missing and we are root
# (or have sudo); otherwise a warning, and the tests that need them skip (they fail under CI=true).
SYSTEM_PROGRAMS := chromium:chromium dciodvfy:dicom3tools
system-deps:
	@missing=""; for pair in $(SYSTEM_PROGRAMS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; \
	  else echo "warning: cannot install$$missing (not root, no sudo); tests needing them skip"; exit 0; fi; \
	  echo "installing$$missing with apt-get"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null; \
	fi

test: $(VENV)/.installed system-deps
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
	$(PY) -m pip install --quiet -e ".[lab]" "$(TORCH_PIN)"
	$(VENV)/bin/jupyter lab notebooks/

# MONAI (the comparisons of bench_inference.py and bench_metrics.py) is the 'bench' extra.
bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[bench]" "$(TORCH_PIN)"
	$(PY) benchmarks/run_all.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check sepnet_core tests benchmarks

clean-venv:
	rm -rf $(VENV)
