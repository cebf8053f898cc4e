# gt2seg + seg. `make demo` and `make test` bootstrap .venv from nothing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
EXTRAS ?= cpu,test
# Bit-identical MXNet runs need one thread; speed wants all cores.
NPROC  := $(shell nproc 2>/dev/null || echo 2)
FIXTURE_JOB   := fixtures/bucket/labeling/city-blocks/manifests/output/output.manifest
FIXTURE_ATTRS := --label-attribute city-blocks-adjusted-ref --label-attribute city-blocks-ref

.PHONY: help venv test test-fast demo bench clean

help: ## list targets and variables
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

venv: $(VENV)/.installed ## create .venv with the cpu and test extras

test: venv ## run the whole test suite
	OMP_NUM_THREADS=$(NPROC) $(PY) -m pytest -q -ra $(PYTEST_ARGS)

test-fast: venv ## tests that do not train
	$(PY) -m pytest -q -ra -m "not slow" $(PYTEST_ARGS)

demo: venv ## convert the bundled fixture job and print the report
	rm -rf demo-out
	$(VENV)/bin/gt2seg inspect $(FIXTURE_JOB) $(FIXTURE_ATTRS)
	$(VENV)/bin/gt2seg convert $(FIXTURE_JOB) demo-out/data --ref-root s3://gt2seg-fixtures/=fixtures/bucket/ \
	    $(FIXTURE_ATTRS)

bench: venv ## conversion benchmark (figures go in README)
	$(PY) benchmarks/bench_convert.py

clean: ## remove build and demo outputs (keeps .venv)
	rm -rf demo-out bench-out build *.egg-info .pytest_cache
