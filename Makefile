# Two commands: `make quickstart` (the main job) and `make test`. Both set up .venv themselves.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Data directory: ../shared/data when present (this workspace), else the user cache (harmscan data fetch).
ifneq ($(wildcard ../shared/data),)
export HARMSCAN_DATA_DIR ?= $(abspath ../shared/data)
endif
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export BENTOML_DO_NOT_TRACK ?= true
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install quickstart test lint typecheck clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and alone: a CPU build (a bare `torch` requirement would pull a multi-GB CUDA build)
	$(BIN)/pip install -q torch==2.13.0
	# the CPU ONNX Runtime build, at the exact versions of constraints.txt (pyproject.toml holds ranges)
	$(BIN)/pip install -q -c constraints.txt -e '.[cpu,train,serve,ray,dev]'
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/harmscan quickstart $(ARGS)

test: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy harmscan classifiers training serving eval

clean:
	rm -rf build dist *.egg-info artifacts
