# amalib — the two commands of the README are `make demo` and `make test`.
# Both create the project-local virtual environment on first use and reuse it afterwards
# (the stamp file is rebuilt only when the lock file or pyproject.toml change).

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.amalib-installed
OUT    ?= runs/demo
# Free disk space (GB, decimal) an install from scratch needs: the pinned stack is about 6.8 GB,
# and pip keeps its downloads meanwhile (requirements/check_disk.py).
VENV_NEED_GB ?= 10

.PHONY: demo test test-fast lint notebooks bench venv lock clean wheel

venv: $(STAMP)

$(STAMP): requirements/lock-cpu.txt pyproject.toml
	@test -f $(STAMP) || $(PYTHON) requirements/check_disk.py $(VENV) --need-gb $(VENV_NEED_GB)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/lock-cpu.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

## The main job: embedded benchmark → shipped starting backbone (pool-class hybrid ViT) → AMA → zero-shot evaluation.
demo: $(STAMP)
	$(BIN)/amalib demo --out $(OUT)

# A lower CPU: torch's and MKL's plainest kernels, MKL's conditional-reproducibility code path
# (the one setting that changes float32 matrix products on an AVX-512 machine) and one thread.
LOW_CPU := ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 MKL_CBWR=COMPATIBLE \
           OMP_NUM_THREADS=1
RANKING_TESTS := tests/test_metrics.py tests/test_chance_levels.py tests/test_protocols.py \
                 tests/retrieval/test_index.py tests/retrieval/test_sketch_query.py tests/retrieval/test_gallery.py

# The notebooks' committed outputs are the cpu-mini profile's with the shipped model ama_mini:
# nbval compares with those on a GPU machine too, and after `make demo` left runs/demo behind
# (notebook 06 would evaluate that run instead). The unit tests clear these (tests/conftest.py).
NOTEBOOK_ENV := AMALIB_PROFILE=cpu-mini AMALIB_DEVICE=cpu AMALIB_MODEL=ama_mini

## The whole test suite: lint; the ranking, metric and index tests on a lower CPU (a score or tie
## order that depends on the CPU fails there, on any machine); then unit tests and DDP tests with
## the machine's defaults, and the notebook series (nbval) under NOTEBOOK_ENV.
test: $(STAMP)
	$(BIN)/ruff check amalib tests benchmarks requirements
	$(BIN)/lint-imports
	$(LOW_CPU) $(BIN)/python -m pytest -q -p no:cacheprovider $(RANKING_TESTS)
	$(NOTEBOOK_ENV) $(BIN)/python -m pytest tests notebooks --nbval \
	    --nbval-sanitize-with notebooks/sanitize.cfg

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow and not ddp"

lint: $(STAMP)
	$(BIN)/ruff check amalib tests benchmarks requirements
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_metrics.py
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_augment.py
	$(BIN)/python benchmarks/bench_losses.py
	$(BIN)/python benchmarks/bench_clustering.py
	$(BIN)/python benchmarks/bench_backbone.py

## A wheel of amalib (the shipped backbone, the trained ama_mini model and the configs inside):
## dist/amalib-<version>-py3-none-any.whl, e.g. to upload to a Colab session and install from
## there (README, "Colab"). pip builds it; no network is needed beyond the build backend.
wheel: $(STAMP)
	rm -rf build dist/amalib-*.whl
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist .
	@ls -l dist/amalib-*.whl

lock:
	$(BIN)/python -m pip freeze --exclude-editable | sed '1i # Exact versions for the Makefile/CI path (Python 3.11, Linux x86-64). Regenerate with: make lock' > requirements/lock-cpu.txt

clean:
	rm -rf $(VENV) runs .pytest_cache
