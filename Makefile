# The two commands of the README: `make book` and `make test`. Both build .venv/ on demand.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu
TORCH_PIN := torch==2.13.0

.PHONY: venv test book bench lint clean-venv

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

book: $(VENV)/.installed
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going

bench: $(VENV)/.installed
	$(PY) benchmarks/run_all.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check sepnet_core tests benchmarks

clean-venv:
	rm -rf $(VENV)
