# PinLanding: `make setup`, `make run`, `make test`. Everything runs from .venv/ in this directory.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin

export PATH := $(BIN):$(PATH)
export PINLANDING_DATA_DIR ?= $(CURDIR)/data
export PINLANDING_CATALOG_DIR ?= $(abspath $(CURDIR)/../shared/data/fashion-catalog)
# Spark's Python workers must run the venv's interpreter (pandas UDFs, mapInPandas).
export PYSPARK_PYTHON := $(BIN)/python
export PYSPARK_DRIVER_PYTHON := $(BIN)/python

.PHONY: setup run train test test-unit warehouse warehouse-stop warehouse-status cluster-tools bench bench-llm bench-collections docs mlflow-ui dashboard publish preview lighthouse bench-publish bench-scale browser-tools lock clean help

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# Debian's Chromium and chromedriver drive the browser tests and Lighthouse (no browser downloads);
# Node runs Lighthouse. Installed only when missing; sudo only when not root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
LIGHTHOUSE := tools/lighthouse/node_modules/.bin/lighthouse

setup: $(VENV)/.installed browser-tools cluster-tools $(LIGHTHOUSE)  ## .venv/ from requirements.lock; Debian chromium + chromedriver, PostgreSQL + JDBC; npm Lighthouse


browser-tools:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends$$missing >/dev/null; \
	fi

# PostgreSQL (server + JDBC driver) for the `cluster` target's shared metastore and its test.
cluster-tools:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	test -f /usr/share/java/postgresql.jar || missing="$$missing libpostgresql-jdbc-java"; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends$$missing >/dev/null; \
	fi

$(LIGHTHOUSE): tools/lighthouse/package.json tools/lighthouse/package-lock.json
	npm ci --prefix tools/lighthouse --no-audit --no-fund --loglevel=error >/dev/null
	touch $@

# llama-cpp-python compiles llama.cpp for this CPU (-march=native). On a CPU with AMX its AMX
# kernels crash the server (SIGSEGV on the first completion with our Gemma-3 Q4_K_M GGUF, seen on
# an AMX Xeon, 2026-11-23), so it is built without them (AVX-512 etc. stay). --no-cache-dir: pip's
# wheel cache is keyed on the sdist, not on CMAKE_ARGS, and would hand back an earlier AMX build.
LLAMA_NO_AMX := $(if $(filter x86_64,$(shell uname -m)),-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
$(VENV)/.llama-built: requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	CMAKE_ARGS="-DCMAKE_C_FLAGS='$(LLAMA_NO_AMX)' -DCMAKE_CXX_FLAGS='$(LLAMA_NO_AMX)'" \
	  $(BIN)/python -m pip install --quiet --no-input --no-deps --no-cache-dir --force-reinstall \
	  "$$(grep -m1 '^llama-cpp-python==' requirements.lock)"
	touch $@

$(VENV)/.installed: $(VENV)/.llama-built requirements.lock pyproject.toml adapters/dbt-spark-session/pyproject.toml $(shell find adapters/dbt-spark-session/dbt -type f -not -path '*/__pycache__/*')
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet --no-input -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall ./adapters/dbt-spark-session
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

run: setup  ## the whole pipeline on the default catalog (ingest -> dbt build -> checks -> MLflow); VARS='{min_products: 30}' overrides dbt vars
	$(BIN)/pinlanding run $(if $(VARS),--vars "$(VARS)")

warehouse: setup  ## start the shared warehouse: a Spark Connect server on 127.0.0.1:$$PINLANDING_CONNECT_PORT (15002); then PINLANDING_TARGET=connect
	$(BIN)/python -m pinlanding.connect_server start

warehouse-stop:  ## stop the shared warehouse server (by the pid file under $$PINLANDING_DATA_DIR)
	$(BIN)/python -m pinlanding.connect_server stop

warehouse-status:  ## is the shared warehouse server running and accepting?
	$(BIN)/python -m pinlanding.connect_server status

train: setup  ## train the dual encoder on the warehouse, register it, move `champion` if better (CONFIG=...)
	$(BIN)/pinlanding train --train-config $(or $(CONFIG),ml/configs/default.yaml)

test: setup  ## all tests (unit, integration on real Spark/dbt/GX/MLflow, browser tests in headless Chromium)
	$(BIN)/python -m pytest tests

test-unit: setup  ## tests/unit only, without the integration-marked ones (minutes: a local Spark and the llama.cpp server still start)
	$(BIN)/python -m pytest tests/unit -m "not integration"

bench: setup  ## ingest + stage the full catalog in a scratch data dir; prints wall time, rows/s, peak RSS
	$(BIN)/python benchmarks/bench_ingest_stage.py

bench-llm: setup  ## local LLM extraction vs merchant attributes: precision/recall per type, calls/s, cache hits
	$(BIN)/python benchmarks/bench_llm_extraction.py --products $(or $(PRODUCTS),100)

docs: setup  ## dbt docs generate (target/index.html); serve with `dbt docs serve`
	$(BIN)/pinlanding dbt docs generate

mlflow-ui: setup  ## MLflow UI on http://127.0.0.1:5000 over the local store
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(PINLANDING_DATA_DIR)/mlflow.db --host 127.0.0.1 --port 5000

dashboard: setup  ## collections dashboard on http://127.0.0.1:8501 over the warehouse and MLflow (after `make run`)
	$(BIN)/python -m pinlanding.dashboard

publish: setup  ## render the collection marts into the static site ($$PINLANDING_SITE_DIR, default data/site)
	$(BIN)/pinlanding publish

preview: setup  ## serve the published site on http://127.0.0.1:8000 (PORT=...)
	$(BIN)/pinlanding preview --port $(or $(PORT),8000)

lighthouse: setup  ## Lighthouse SEO/accessibility of sample pages (FIXTURE=1: marts built from catalog products)
	$(BIN)/python benchmarks/bench_lighthouse.py $(if $(FIXTURE),--fixture)

bench-collections: setup  ## precision@10 vs BM25, coverage vs facets, titles/s, feed SQL vs naive cross join (after `make run`)
	$(BIN)/python benchmarks/bench_collections.py

bench-publish: setup  ## pages/s and sitemap time for the warehouse's collections, plus a 1M-URL sitemap
	$(BIN)/python benchmarks/bench_publish.py $(if $(FIXTURE),--fixture)

bench-scale: setup  ## whole pipeline at growing synthetic catalog sizes (N=43441,250000,1000000): per-stage s, rows/s, peak RSS, growth, 1%-changed day
	$(BIN)/python benchmarks/bench_scale.py $(if $(N),--sizes $(N))

# uv resolves requirements.in for Linux x86-64 / Python 3.11 (CI and the dev machine), keeping the
# current pins where they still satisfy it (pass UPGRADE=--upgrade to move everything).
lock:  ## re-resolve requirements.in into requirements.lock with uv (a real resolver, not pip freeze)
	$(BIN)/uv pip compile requirements.in --python-version 3.11 --python-platform x86_64-unknown-linux-gnu -o requirements.lock $(UPGRADE)

clean:  ## remove the data directory and dbt output (the warehouse, metastore, MLflow store)
	rm -rf "$(PINLANDING_DATA_DIR)" target logs
