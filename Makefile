# Two commands for a new user: `make demo` and `make test`. Both build .venv
# from nothing (Python packages, and the Debian packages when run as root).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.genredream-installed

.PHONY: demo test bench soak setup system-deps pt2 plugin clean help

help:
	@echo "make demo   set up .venv and run the demo"
	@echo "make test   set up .venv and run the whole test suite"
	@echo "make bench  run the benchmarks and write BENCHMARKS.md"
	@echo "make pt2    generate the shipped models' torch.export (.pt2) twins"
	@echo "make plugin build the DAW plugin: build/plugin/genredream.vst3 and .lv2"
	@echo "make soak   10 minutes under JACK with the dream on, clients coming and going (tests/test_soak.py)"

setup: system-deps $(STAMP)

# The shipped models as torch.export programs (.pt2), generated from the shipped TorchScript
# files, the one source of truth: not kept in git (40 MB), made again only where a .pt is
# newer than its .pt2 (`make test` and `make bench` need them; `make demo` does not). Each conversion is checked against its original (max abs diff <= 1e-5).
PT2_DIR := models/pretrained/pt2
PT2_SRC := $(wildcard models/pretrained/*.pt models/pretrained/generators/*.pt)
PT2_OUT := $(patsubst models/pretrained/%.pt,$(PT2_DIR)/%.pt2,$(PT2_SRC))

pt2: $(PT2_OUT)

$(PT2_DIR)/%.pt2: models/pretrained/%.pt | $(STAMP)
	$(VENV)/bin/genredream models export $< $@

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

# The DAW plugin (plugin/, JUCE 7 with CMake; docs/plugin.md). The build
# directory is reused, so a rebuild compiles only what changed. PLUGIN_JOBS:
# parallel compile jobs (the JUCE modules are the slow part).
PLUGIN_BUILD := build/plugin
PLUGIN_JOBS  ?= 2
plugin: system-deps
	cmake -S plugin -B $(PLUGIN_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(PLUGIN_BUILD) -j$(PLUGIN_JOBS)
	rm -rf $(PLUGIN_BUILD)/genredream.vst3 $(PLUGIN_BUILD)/genredream.lv2
	cp -r $(PLUGIN_BUILD)/genredream_artefacts/Release/VST3/genredream.vst3 $(PLUGIN_BUILD)/
	cp -r $(PLUGIN_BUILD)/genredream_artefacts/Release/LV2/genredream.lv2 $(PLUGIN_BUILD)/

demo: setup
	$(VENV)/bin/genredream demo

# The benchmarks run once each with timing off, so a broken benchmark fails
# the tests instead of being found at the next `make bench`.
test: setup pt2 plugin
	$(PY) -m pytest tests benchmarks --benchmark-disable -m "not soak" $(PYTEST_ARGS)

bench: setup pt2 plugin
	$(PY) -m pytest benchmarks --benchmark-only -m "not soak" --benchmark-json=benchmarks/results.json $(PYTEST_ARGS)
	$(PY) benchmarks/report.py benchmarks/results.json

# Not in `make test`: 10 minutes of wall time. Its figures go to benchmarks/figures/soak_jack.json,
# which `make bench` puts in BENCHMARKS.md.
soak: setup
	$(PY) -m pytest tests/test_soak.py -m soak -s -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
