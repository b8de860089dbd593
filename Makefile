# Two commands on a fresh machine with only Python and pip:
#   make train   - virtual environment, install, train SAC on Pendulum-v1 (about a minute), evaluate, plot
#   make test    - virtual environment, install with the test extras and the optional ones (ray, export, video, jax-envs, dmc, docs), run the test suite
#   make docs    - build the documentation site (MkDocs + Material + mkdocstrings) in strict mode into site/
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install train test bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -e ".[test,ray,export,video,jax-envs,dmc,docs]"
	touch $@

install: $(VENV)/.installed

train: install
	$(BIN)/softac train --preset pendulum

# Two pytest-xdist workers, one per core of the 2-core development machine (TEST_WORKERS=auto for one per core
# elsewhere, 0 for one process); --dist loadgroup keeps the Ray tests (xdist_group "ray") on one worker.
TEST_WORKERS ?= 2

test: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

bench: install
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache site
