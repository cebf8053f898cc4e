# gt2seg + seg. `make demo` and `make test` set up everything they need on a bare Linux machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
#: PYTHON          interpreter .venv is built with [python3, else the newest python3.13..3.9 (pyenv too) that fits]
#: VENV            virtualenv the targets use; given, it is used as it is, never installed into [.venv]
#: EXTRAS          extras installed into .venv [demo: torch; test, bench: torch,test, plus cpu where Python <= 3.11]
#: TORCH_SPEC      pip requirement installed before the extras, e.g. torch==2.13.0 (a CPU build on disk) []
#: PYTEST_ARGS     more pytest arguments for test, test-fast, test-serve-onnx, e.g. '-k serve -x' []
#: BENCH_ARGS      more arguments for a bench-* script, e.g. '--sizes 1000,3000' []
#: DURATION        seconds per row of bench-hostile [60]
#: PY_SERVE        Python of test-serve-onnx [the newest pyenv CPython >= 3.12]
#: PY_DEMO         Python of test-demo-py312plus [the newest pyenv CPython >= 3.12]
#: DEMO_OUT        work folder of make demo [demo-out]
PYTHON ?=
VENV   ?= .venv
PY     := $(VENV)/bin/python
EXTRAS ?=
TORCH_SPEC ?=
# Bit-identical MXNet runs need one thread; speed wants all cores.
NPROC  := $(shell nproc 2>/dev/null || echo 2)
# A VENV given on the command line or in the environment is the caller's: checked, never installed into.
VENV_GIVEN := $(filter command line environment,$(origin VENV))
comma := ,
# $(call ensure-venv,required extras,optional extras): build or complete VENV (.ci/venv says how).
ensure-venv = @PYTHON='$(PYTHON)' TORCH_SPEC='$(TORCH_SPEC)' VENV_CHECK_ONLY=$(if $(VENV_GIVEN),1,0) \
              bash .ci/venv '$(VENV)' '$(or $(EXTRAS),$(1))' '$(if $(EXTRAS),,$(2))'

.PHONY: help venv venv-demo venv-test system-deps test test-fast test-serve-onnx test-demo-py312plus bench bench-convert bench-train bench-pipe bench-serve bench-onnx-serve bench-engines bench-install bench-reliability bench-hostile bench-builtin-serve bench-report bench-import bench-import-coco clean

help: ## list targets and variables
	@echo "targets:"
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | \
	    awk -F'\t' '{n[NR] = $$1; d[NR] = $$2; if (length($$1) > w) w = length($$1)} \
	         END {for (i = 1; i <= NR; i++) printf "  %-*s  %s\n", w, n[i], d[i]}'
	@echo "variables (make pipeline VAR=value ...) [default]:"
	@grep -h '^#: ' $(MAKEFILE_LIST) | cut -c4- | sed 's/^/  /'

venv: ## build .venv (or add EXTRAS to it) with what demo and test need
	$(call ensure-venv,torch$(comma)test,cpu)

venv-demo:
	$(call ensure-venv,torch,)

venv-test:
	$(call ensure-venv,torch$(comma)test,cpu)

system-deps: ## as root on Debian/Ubuntu: nginx, chromium, chromium-driver, python3-venv, OpenCV/MXNet libraries
	bash .ci/system-deps

test: venv-test ## run the whole test suite (installs missing system packages as root, else names them)
	@bash .ci/system-deps --or-tell
	OMP_NUM_THREADS=$(NPROC) $(PY) -m pytest -q -ra $(PYTEST_ARGS)

test-fast: venv-test ## tests that do not train
	$(PY) -m pytest -q -ra -m "not slow" $(PYTEST_ARGS)

# The newest pyenv CPython >= 3.12: a Python MXNet 1.9.1 has no wheels for.
PY_NEWEST := $(lastword $(sort $(wildcard $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)/versions/3.1[2-9]*/bin/python3.1[2-9])))
# The `serve` extra alone (no MXNet) on a Python MXNet has no wheels for.
PY_SERVE ?= $(PY_NEWEST)
SERVE_VENV := build/venv-serve

test-serve-onnx: ## the ONNX server's tests in a fresh venv with only `.[serve]` + test tools, on PY_SERVE
	@test -x '$(PY_SERVE)' || { echo "make: test-serve-onnx needs PY_SERVE=/path/to/python3.12 or newer" >&2; exit 1; }
	rm -rf $(SERVE_VENV) && '$(PY_SERVE)' -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -m pip install -q --upgrade pip
	$(SERVE_VENV)/bin/python -m pip install -q ".[serve]" pytest requests onnx
	! $(SERVE_VENV)/bin/python -c 'import mxnet' 2>/dev/null
	cd tests && SEG_TESTS_WITHOUT_MXNET=1 ../$(SERVE_VENV)/bin/python -m pytest -q -ra -m serve_onnx -p no:cacheprovider \
	    --rootdir .. -c ../setup.cfg seg/serve/test_serve_onnx_http.py test_import_boundaries.py $(PYTEST_ARGS)

# `make demo` on a Python MXNet has no wheels for, with the `torch` extra alone: a fresh venv, then the demo with it.
PY_DEMO ?= $(PY_NEWEST)
DEMO_VENV := build/venv-demo

test-demo-py312plus: ## make demo on PY_DEMO in a fresh venv with only `.[torch]` (no MXNet), export ONNX, evaluate its model on .venv's MXNet
	@test -x '$(PY_DEMO)' || { echo "make: test-demo-py312plus needs PY_DEMO=/path/to/python3.12 or newer" >&2; exit 1; }
	rm -rf $(DEMO_VENV) build/demo-py312plus && '$(PY_DEMO)' -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install -q --upgrade pip
	$(if $(TORCH_SPEC),$(DEMO_VENV)/bin/python -m pip install -q $(TORCH_SPEC))
	$(DEMO_VENV)/bin/python -m pip install -q -e ".[torch]"
	! $(DEMO_VENV)/bin/python -c 'import mxnet' 2>/dev/null
	$(MAKE) --no-print-directory demo VENV=$(DEMO_VENV) DEMO_OUT=build/demo-py312plus
	! $(DEMO_VENV)/bin/python -c 'import mxnet' 2>/dev/null
	test -s build/demo-py312plus/metrics.json && ls build/demo-py312plus/invoke/*_overlay.png
	$(DEMO_VENV)/bin/seg export --format onnx build/demo-py312plus/model build/demo-py312plus/onnx
	test -s build/demo-py312plus/onnx/model.onnx
	@# The model trained without MXNet, through .venv's MXNet engine (GluonCV's strict load_parameters): same metrics.
	@if $(PY) -c 'import mxnet' 2>/dev/null; then \
	    $(VENV)/bin/seg evaluate --engine mxnet --json build/demo-py312plus/model build/demo-py312plus/data \
	        > build/demo-py312plus/metrics-mxnet.json && \
	    $(PY) -c 'import json, sys; t, m = (json.load(open(f)) for f in sys.argv[1:]); \
	        print("mIOU of the Python 3.12+ model: torch %.4f, MXNet/GluonCV %.4f" % (t["mIOU"], m["mIOU"])); \
	        sys.exit(abs(t["mIOU"] - m["mIOU"]) > 0.002)' \
	        build/demo-py312plus/metrics.json build/demo-py312plus/metrics-mxnet.json; \
	elif [ -n "$$CI" ]; then echo "make: under CI, $(VENV) must hold MXNet (make venv on Python <= 3.11)" >&2; exit 1; \
	else echo "make: $(VENV) has no MXNet: the GluonCV check of the Python 3.12+ model was not run" >&2; fi

bench: bench-convert bench-import bench-import-coco bench-pipe bench-serve bench-onnx-serve bench-engines bench-hostile bench-builtin-serve bench-train bench-install bench-report bench-reliability ## every benchmark (the figures of docs/performance.md)

# pyspng (the fast bound) and Datumaro are measured against, never installed in .venv.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: | venv
	test -x $(BENCH_VENV)/bin/python || $(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q pyspng datumaro
	touch $@

bench-convert: venv $(BENCH_VENV)/.installed ## gt2seg convert vs bare Pillow, 1 vs all workers, S3 latency, tree memory, vs pyspng bound and Datumaro
	$(PY) benchmarks/bench_convert.py --bench-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)

bench-import: venv $(BENCH_VENV)/.installed ## gt2seg import pets vs bare decode+encode; import voc vs Datumaro (.venv-bench)
	$(PY) benchmarks/bench_import.py --datumaro $(BENCH_VENV)/bin/python $(BENCH_ARGS)

bench-import-coco: venv $(BENCH_VENV)/.installed ## gt2seg import coco at 1024x768 vs pycocotools annToMask + PNG; vs Datumaro coco -> voc (.venv-bench)
	$(PY) benchmarks/bench_import_coco.py --datumaro $(BENCH_VENV)/bin/python $(BENCH_ARGS)

bench-reliability: venv ## gt2seg convert: bad inputs -> one-line errors, kill -9 points -> identical re-runs
	$(PY) benchmarks/reliability_gt2seg.py $(BENCH_ARGS)

bench-pipe: venv ## RecordIO parse throughput, Pipe vs File loader
	$(PY) benchmarks/bench_pipe.py $(BENCH_ARGS)

bench-serve: venv ## /invocations latency vs bare forward, throughput
	$(PY) benchmarks/bench_serve.py $(BENCH_ARGS)

bench-onnx-serve: venv ## MXNet FP32 vs ONNX FP32 vs ONNX INT8 at 512x512 (FCN, DeepLabV3 R50), INT8 mIOU cost
	$(PY) benchmarks/bench_onnx_serve.py $(BENCH_ARGS)

bench-engines: venv ## CPU ms/image, torch vs MXNet engine vs ONNX Runtime on one model file (FCN, DeepLabV3 R50, 512x512)
	$(PY) benchmarks/bench_engines.py --threads $(NPROC) $(BENCH_ARGS)

bench-install: ## pip install time and venv size of `[torch]` (TORCH_SPEC first) vs `[cpu]`, a fresh venv each
	python3 benchmarks/bench_install.py --torch-spec '$(TORCH_SPEC)' $(BENCH_ARGS)

bench-hostile: venv ## /ping, valid p95 and 5xx under 2 and 20 slow clients + 8 valid threads, DURATION s each [60]
	$(PY) benchmarks/bench_serve_hostile.py --seconds $(or $(DURATION),60) $(BENCH_ARGS)

bench-builtin-serve: venv ## serving a built-in model.tar.gz vs seg's artifact of the same weights
	$(PY) benchmarks/bench_builtin_serve.py $(BENCH_ARGS)

bench-train: venv ## CPU training img/s, torch vs MXNet engine (each in its own process, same net, batch, weights, threads)
	$(PY) benchmarks/bench_train.py --threads $(NPROC) $(BENCH_ARGS)

bench-report: venv ## gt2seg report time and page size on 1k and 20k synthetic items (near-flat)
	$(PY) benchmarks/bench_report.py $(BENCH_ARGS)

clean: ## remove build and demo outputs (keeps .venv)
	rm -rf demo-out bench-out build *.egg-info .pytest_cache

# ---------------------------------------------------------------- pipeline: labeling job -> served model
# Each stage leaves a stamp in $(OUT)/.stamps only after it succeeded; make re-runs a stage when its inputs
# (the job's manifest, the options it ran with, the stage before it) changed, and nothing else.
FIXTURE_JOB_DIR := fixtures/bucket/labeling/city-blocks
#: JOB             labeling job output prefix, or its output.manifest; local or s3:// [the fixture job]
#: LABEL_ATTRIBUTE label attribute(s), first present wins [auto; the fixture's two for the fixture job]
#: REF_ROOT        PREFIX=DIR rewrites of refs for gt2seg convert [the fixture bucket for the fixture job]
#: IMPORT          instead of JOB: `FORMAT SRC [options]` for gt2seg import, e.g. 'pets fixtures/pets --split official' []
#: OUT             work folder: stamps, /opt/ml stand-in, predictions [build/pipeline]
#: DATA            local layout folder [OUT/data]
#: S3_PREFIX       where the layout goes on S3; empty keeps everything local []
#: MODEL           model folder [OUT/model]
#: HP              hyperparameters JSON [fixtures/demo-hyperparameters.json]
#: MODE            File or Pipe [File]
#: PORT            port for serve and invoke [8080]
#: IMAGE           image invoke sends to the endpoint [the first validation image]
JOB ?= $(FIXTURE_JOB_DIR)
ifeq ($(JOB),$(FIXTURE_JOB_DIR))
LABEL_ATTRIBUTE ?= city-blocks-adjusted-ref city-blocks-ref
REF_ROOT ?= s3://gt2seg-fixtures/=fixtures/bucket/
endif
LABEL_ATTRIBUTE ?=
REF_ROOT ?=
IMPORT ?=
OUT ?= build/pipeline
DATA ?= $(OUT)/data
S3_PREFIX ?=
MODEL ?= $(OUT)/model
HP ?= fixtures/demo-hyperparameters.json
MODE ?= File
PORT ?= 8080
IMAGE ?=

SEG      := $(VENV)/bin/seg
GT2SEG   := $(VENV)/bin/gt2seg
STAMPS   := $(OUT)/.stamps
MANIFEST  = $(if $(filter %.manifest,$(JOB)),$(JOB),$(JOB:%/=%)/manifests/output/output.manifest)
CONVERT_ARGS = $(foreach a,$(LABEL_ATTRIBUTE),--label-attribute $(a)) $(foreach r,$(REF_ROOT),--ref-root $(r)) \
               $(if $(S3_PREFIX),--s3-prefix $(S3_PREFIX))
TRAIN_AFTER  = $(if $(S3_PREFIX),$(STAMPS)/upload,$(STAMPS)/convert)
# The first stage: convert the labeling job, or, with IMPORT, import the dataset it names.
CONVERT_FROM = $(if $(IMPORT),,$(STAMPS)/output.manifest)
CONVERT_CMD  = $(if $(IMPORT),$(GT2SEG) import $(IMPORT) $(DATA) $(if $(S3_PREFIX),--s3-prefix $(S3_PREFIX)),\
                 $(GT2SEG) convert '$(MANIFEST)' $(DATA) $(CONVERT_ARGS))
# `cmd $(call fail,stage,what to do)`: one clear line naming the stage when cmd fails.
fail = || { echo "make: pipeline stage '$(1)' failed (see above). $(2) Then re-run make: finished stages are kept." >&2; exit 1; }
# Rewrite $(1) only when the text $(2) changed, so a stage re-runs when its options change.
remember = @mkdir -p $(STAMPS); echo '$(2)' | cmp -s - $(1) || echo '$(2)' > $(1)

.PHONY: convert upload train evaluate predict serve invoke pipeline report demo FORCE

$(STAMPS)/output.manifest: FORCE | venv-demo
	@mkdir -p $(STAMPS)
	@$(SEG) job-manifest '$(JOB)' $@ $(call fail,convert,Set JOB to the labeling job's output prefix or manifest.)
$(STAMPS)/convert.args: FORCE
	$(call remember,$@,$(DATA) $(CONVERT_ARGS) $(IMPORT))
$(STAMPS)/upload.args: FORCE
	$(call remember,$@,$(S3_PREFIX))
$(STAMPS)/train.args: FORCE
	$(call remember,$@,$(MODE) $(S3_PREFIX) $(MODEL))

$(STAMPS)/convert: $(CONVERT_FROM) $(STAMPS)/convert.args
	$(CONVERT_CMD) --report \
	    $(call fail,convert,Fix the labeling job (or the IMPORT dataset) or the LABEL_ATTRIBUTE/REF_ROOT options.)
	@touch $@
convert: $(STAMPS)/convert ## labeling job (or IMPORT's dataset) -> SageMaker layout in DATA

$(STAMPS)/upload: $(STAMPS)/convert $(STAMPS)/upload.args
	@test -n '$(S3_PREFIX)' || { echo "make: stage 'upload' needs S3_PREFIX=s3://bucket/prefix" >&2; exit 1; }
	$(GT2SEG) upload $(DATA) $(S3_PREFIX) \
	    $(call fail,upload,Check the bucket and credentials (AWS_PROFILE / AWS_ACCESS_KEY_ID).)
	@touch $@
upload: $(STAMPS)/upload ## DATA -> S3_PREFIX (needs S3_PREFIX)

$(STAMPS)/train: $(TRAIN_AFTER) $(HP) $(STAMPS)/train.args
	$(SEG) local-job $(or $(S3_PREFIX),$(DATA)) $(MODEL) --hp-file $(HP) --mode $(MODE) --root $(OUT)/opt-ml \
	    $(call fail,train,Fix the data or HP; an interrupted File-mode run resumes from its checkpoint.)
	@touch $@
train: $(STAMPS)/train ## train MODEL from DATA, or from S3_PREFIX (File or Pipe MODE) when set

$(OUT)/metrics.json: $(STAMPS)/train
	$(SEG) evaluate $(MODEL) $(DATA) --json --report $(OUT)/evaluation-report > $@.tmp $(call fail,evaluate,Check MODEL and DATA.)
	@mv $@.tmp $@
evaluate: $(OUT)/metrics.json ## validation metrics of MODEL -> OUT/metrics.json

$(STAMPS)/predict: $(STAMPS)/train
	$(SEG) predict $(MODEL) $(DATA)/validation --out $(OUT)/predictions --json > $(OUT)/predictions.json \
	    $(call fail,predict,Check MODEL and DATA.)
	@touch $@
predict: $(STAMPS)/predict ## masks + overlays of the validation images -> OUT/predictions

# The pipeline serves on 127.0.0.1 only: where nginx is missing it serves without it, saying so (`seg serve` and
# the container keep nginx in front, against slow clients: docs/serving.md).
pick_proxy = proxy=--proxy; $(PY) -c 'from seg.serve.proxy import find_nginx; find_nginx()' 2>/dev/null || { \
    proxy=--no-proxy; echo "make: nginx is not installed: serving on 127.0.0.1 without it (seg serve --no-proxy;" \
    "apt-get install nginx puts it in front, as seg serve does in production)" >&2; }

serve: $(STAMPS)/train ## serve MODEL on 127.0.0.1:PORT until Ctrl-C (GET /ping, POST /invocations)
	@$(pick_proxy); echo "$(SEG) serve $(MODEL) --host 127.0.0.1 --port $(PORT) $$proxy"; \
	    exec $(SEG) serve $(MODEL) --host 127.0.0.1 --port $(PORT) $$proxy

invoke: $(STAMPS)/train ## serve MODEL in the background, send IMAGE over HTTP, write mask + overlay, stop
	@mkdir -p $(OUT)/invoke
	@image='$(IMAGE)'; image=$${image:-$$(ls $(DATA)/validation/*.jpg | head -n 1)}; \
	$(pick_proxy); \
	$(SEG) serve $(MODEL) --host 127.0.0.1 --port $(PORT) $$proxy 2> $(OUT)/serve.log & server=$$!; \
	trap 'kill $$server 2>/dev/null; wait $$server 2>/dev/null' EXIT; trap 'exit 130' INT TERM; \
	$(SEG) invoke http://127.0.0.1:$(PORT) "$$image" --out $(OUT)/invoke --wait 120 \
	    --server-pid $$server --server-log $(OUT)/serve.log > $(OUT)/invoke.json.tmp \
	    $(call fail,invoke,The server's log is $(OUT)/serve.log.) ; \
	kill -0 $$server || { echo "make: stage 'invoke': the server exited; see $(OUT)/serve.log" >&2; exit 1; }; \
	mv $(OUT)/invoke.json.tmp $(OUT)/invoke.json; echo "served mask written to $(OUT)/invoke"

pipeline: ## convert (or import), upload (with S3_PREFIX), train, evaluate, predict, invoke, report
	@$(MAKE) --no-print-directory convert $(if $(S3_PREFIX),upload) train evaluate predict invoke
	@$(MAKE) --no-print-directory report

report: ## where the pictures are, and the metrics
	@echo "pictures: $(OUT)/invoke/ (served over HTTP), $(OUT)/predictions/ (seg predict)"
	@echo "dataset report: $(DATA)/report/index.html, evaluation report: $(OUT)/evaluation-report/index.html"
	@ls $(OUT)/invoke/*_overlay.png 2>/dev/null | sed 's/^/  /'
	@$(PY) -c 'import json, sys; m = json.load(open(sys.argv[1])); \
	print("validation mIOU %.3f, pixel accuracy %.3f" % (m["mIOU"], m["pixel_accuracy"])); \
	[print("  IoU %-12s %s" % (k, "n/a" if v is None else "%.3f" % v)) for k, v in m["per_class_iou"].items()]' \
	    $(OUT)/metrics.json

DEMO_OUT ?= demo-out
demo: venv-demo ## the whole pipeline on the bundled fixture job, local disk only, into DEMO_OUT [demo-out]
	@$(MAKE) --no-print-directory pipeline OUT=$(DEMO_OUT) JOB=$(FIXTURE_JOB_DIR) S3_PREFIX= MODE=File \
	    HP=fixtures/demo-hyperparameters.json

FORCE:
