# Two commands for a new user: `make demo` and `make test`. Both build .venv
# from nothing (Python packages, and the Debian packages when run as root).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.genredream-installed

.PHONY: demo test bench soak setup system-deps clean help

help:
	@echo "make demo   set up .venv and run the demo"
	@echo "make test   set up .venv and run the whole test suite"
	@echo "make bench  run the benchmarks and write BENCHMARKS.md"
	@echo "make soak   10 minutes under JACK with the dream on, clients coming and going (tests/test_soak.py)"

setup: system-deps $(STAMP)

system-deps:
	@bash scripts/system-deps.sh

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "genredream needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The pinned CPU wheel first: an unpinned torch would pull GBs of CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/genredream demo

# The benchmarks run once each with timing off, so a broken benchmark fails
# the tests instead of being found at the next `make bench`.
test: setup
	$(PY) -m pytest tests benchmarks --benchmark-disable -m "not soak" $(PYTEST_ARGS)

bench: setup
	$(PY) -m pytest benchmarks --benchmark-only -m "not soak" --benchmark-json=benchmarks/results.json $(PYTEST_ARGS)
	$(PY) benchmarks/report.py benchmarks/results.json

# Not in `make test`: 10 minutes of wall time. Its figures go to benchmarks/figures/soak_jack.json,
# which `make bench` puts in BENCHMARKS.md.
soak: setup
	$(PY) -m pytest tests/test_soak.py -m soak -s -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
