# Two commands on a fresh machine with only Python and pip:
#   make train   - virtual environment, install, train SAC on Pendulum-v1 (about a minute), evaluate, plot
#   make test    - virtual environment, install with the test extras and the optional ones (ray, export, video, jax-envs, dmc), run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install train test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -e ".[test,ray,export,video,jax-envs,dmc]"
	touch $@

install: $(VENV)/.installed

train: install
	$(BIN)/softac train --preset pendulum

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
