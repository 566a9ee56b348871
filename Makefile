# ortserve: `make run` serves the bundled real models, `make test` runs the tests. Both set everything up first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CACHE_DIR   ?= $(HOME)/.cache/ortserve
VENV        ?= .venv
BUILD_VENV  ?= $(CACHE_DIR)/build-venv
# The one source of the model recipe version, which the services, tools and tests import too.
RECIPE      := $(shell sed -n 's/^RECIPE_VERSION = "\(.*\)"/\1/p' libs/common/ortserve_common/models_dir.py)
MODELS_DIR  ?= $(CACHE_DIR)/models/r$(RECIPE)
CHAT_MODEL  ?= $(MODELS_DIR)/qwen2.5-coder-0.5b-instruct
PY          := $(VENV)/bin/python
PACKAGES    := libs/common libs/testing services/chat services/embeddings services/models
MODEL_STAMPS := $(foreach m,smollm2-135m-instruct smollm2-135m-instruct-hidden phi3-tiny all-minilm-l6-v2 rerank-tiny-random multilingual-e5-small qwen2.5-coder-0.5b-instruct,$(MODELS_DIR)/$(m)/.complete)
PYTEST_ARGS ?=
LOADTEST_ARGS ?=
BENCH_ARGS ?=
REAL_SIZE_ARGS ?=
THREADS_ARGS ?=
QUALITY_ARGS ?=
TRAFFIC_ARGS ?=
MODEL ?= qwen2.5-coder-0.5b-instruct

# One clear line, naming the target that fixes it, where no Docker engine answers.
NEED_ENGINE := docker info >/dev/null 2>&1 || { echo "no Docker engine answers here: make docker-engine installs Debian's and starts it" >&2; exit 1; }

export ORTSERVE_MODELS_DIR := $(MODELS_DIR)
export ORTSERVE_BUILD_PYTHON := $(BUILD_VENV)/bin/python

.PHONY: help install build-venv model model-large convert nginx redis postgres certs run run-chat up down test test-unit lint typecheck docs clean loadtest loadtest-ui loadtest-priority bench bench-small bench-peers bench-real-size bench-threads quality quality-variants bench-traffic \
	fuzz overload soak docker-engine base-image images compose-up compose-down swarm-up swarm-down \
	cluster-up cluster-down test-cluster

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: ## Create .venv with the services and test tools
	@tools/ensure_venv.sh $(VENV) requirements/dev.txt $(PACKAGES)

build-venv: ## Create the model-build venv (torch, transformers; never used by a service)
	@tools/ensure_venv.sh $(BUILD_VENV) tools/model_build/requirements.txt

model: build-venv ## Build (or reuse from the cache) every model the services and tests use
	@$(BUILD_VENV)/bin/python tools/model_build/build.py --out $(MODELS_DIR) --downloads $(CACHE_DIR)/downloads

$(MODEL_STAMPS):
	@$(MAKE) --no-print-directory model

model-large: build-venv ## Build (or reuse) the on-demand Qwen2.5-Coder-1.5B-Instruct int4 (12–20 minutes cold, 0.9 GB)
	@$(BUILD_VENV)/bin/python tools/model_build/build.py --out $(MODELS_DIR) --downloads $(CACHE_DIR)/downloads \
	  --only qwen2.5-coder-1.5b-instruct

convert: build-venv ## Your own GGUF into a model folder: make convert GGUF=file.gguf ID=name [OUT=dir] [FORCE=1]
	@test -n "$(GGUF)" -a -n "$(ID)" || { echo "usage: make convert GGUF=path/to/model.gguf ID=model-id [OUT=dir] [FORCE=1]" >&2; exit 2; }
	@$(BUILD_VENV)/bin/python tools/model_build/convert.py --gguf "$(GGUF)" --id "$(ID)" --out "$${OUT:-$(MODELS_DIR)}" \
	  $(if $(FORCE),--force) $(if $(HIDDEN_STATES),--hidden-states)

nginx: ## Install nginx from Debian's packages when it is missing
	@command -v nginx >/dev/null || { echo ">> installing nginx"; apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx; }

redis: ## Install Debian's Redis server when it is missing (the per-key limits counters of make run and the tests)
	@command -v redis-server >/dev/null || { echo ">> installing redis-server"; apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; }

postgres: ## Install Debian's PostgreSQL server when it is missing, for the tests that run on a real one (best effort)
	@command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { echo ">> installing postgresql"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; } \
	  || echo ">> no PostgreSQL server: its tests will be skipped"

run: install nginx redis $(MODEL_STAMPS) ## The whole stack (registry, chat, embeddings, nginx) in the foreground; Ctrl-C stops it
	$(PY) tools/stack.py run

up: install nginx redis $(MODEL_STAMPS) ## The whole stack in the background
	$(PY) tools/stack.py up

certs: ## A local CA and server certificate in run/tls (make run does this too)
	@bash proxy/gen-certs.sh run/tls

down: ## Stop the background stack; returns once every process has exited and its ports are free
	@$(PY) tools/stack.py down

# The folder's name is the model id clients send, unless CHAT_MODEL_ID says otherwise.
run-chat: install $(MODEL_STAMPS) ## Only the chat service (Qwen2.5-Coder-0.5B; CHAT_MODEL_PATH another), on port 8000, no proxy
	path=$${CHAT_MODEL_PATH:-$(CHAT_MODEL)}; \
	CHAT_MODEL_PATH=$$path CHAT_MODEL_ID=$${CHAT_MODEL_ID:-$$(basename $$path)} $(PY) -m chat_service

test: install nginx redis postgres docker-engine $(MODEL_STAMPS) ## Run every test on the real models (compose included)
	@tools/docker/images.sh
	$(PY) -m pytest $(PYTEST_ARGS)

loadtest: install nginx redis postgres $(MODEL_STAMPS) ## Locust, headless, 60 s on a stack of its own; CSV + HTML in results/loadtest/
	$(PY) -m loadtest.run $(LOADTEST_ARGS)

loadtest-ui: install nginx redis $(MODEL_STAMPS) ## Locust's web UI on 127.0.0.1:8089 against the local stack (started and stopped with it if not up)
	$(PY) -m loadtest.run --ui $(LOADTEST_ARGS)

loadtest-priority: install $(MODEL_STAMPS) ## A batch flood beside an interactive user, with and without reserved slots (~6 min)
	$(PY) -m loadtest.priority $(LOADTEST_ARGS)

bench: bench-peers bench-real-size bench-traffic ## Every benchmark: SmolLM2 vs llama-server (docs/BENCHMARKS.md), Qwen 0.5B and 1.5B at real size, the traffic phases

bench-small: install nginx build-venv $(MODEL_STAMPS) ## SmolLM2 only, no llama.cpp: engine limit, chat direct, proxy, embeddings
	ORTSERVE_CACHE_DIR=$(CACHE_DIR) $(PY) -m bench.run $(BENCH_ARGS)

bench-peers: install nginx build-venv $(MODEL_STAMPS) ## make bench-small plus llama.cpp's llama-server on the same GGUF
	ORTSERVE_CACHE_DIR=$(CACHE_DIR) $(PY) -m bench.run --peers $(BENCH_ARGS)

# The 1.5B runs a reduced plan (1 and 8 streams, short prompts) to keep make bench to a sitting on 2 cores.
# REAL_SIZE_ARGS reaches both runs (e.g. --repeats 3); BENCH_ARGS reaches the SmolLM2 run.
bench-real-size: install nginx build-venv $(MODEL_STAMPS) model-large ## Qwen2.5-Coder 0.5B and 1.5B vs llama-server: docs/benchmarks/<model>.md
	ORTSERVE_CACHE_DIR=$(CACHE_DIR) $(PY) -m bench.run --model qwen2.5-coder-0.5b-instruct --peers --no-before --no-shared \
	  --prompts short long --max-tokens 64 --repeats 2 $(REAL_SIZE_ARGS)
	ORTSERVE_CACHE_DIR=$(CACHE_DIR) $(PY) -m bench.run --model qwen2.5-coder-1.5b-instruct --peers --no-before --no-shared \
	  --prompts short --concurrency 1 8 --max-tokens 64 --repeats 2 $(REAL_SIZE_ARGS)

# TRAFFIC_ARGS reaches bench/traffic.py (e.g. --phases long, --concurrency 1, --repeats 3).
bench-traffic: install nginx build-venv $(MODEL_STAMPS) ## Traffic-like phases (default samplers vs greedy, long output, code edit) vs llama-server: make bench-traffic MODEL=…
	ORTSERVE_CACHE_DIR=$(CACHE_DIR) $(PY) -m bench.traffic --model $(MODEL) $(TRAFFIC_ARGS)

# SPIN_ARGS reaches bench/thread_spin.py (e.g. --policies default stop, --repeats 5, --concurrency 8).
.PHONY: bench-spin
bench-spin: install nginx $(MODEL_STAMPS) ## ONNX Runtime thread spinning policies (CHAT_ENGINE_SPIN…) A/B'd through nginx at 1 and 8 streams: make bench-spin MODEL=…
	ORTSERVE_CACHE_DIR=$(CACHE_DIR) $(PY) -m bench.thread_spin --model $(MODEL) $(SPIN_ARGS)

# QUALITY_ARGS reaches bench/quality/run.py (e.g. --models smollm2-135m-instruct, --no-llama, --reuse results.json).
quality: install build-venv $(MODEL_STAMPS) ## Perplexity of the served int4 models vs fp32 and llama.cpp on the same GGUF: docs/QUALITY.md
	ORTSERVE_CACHE_DIR=$(CACHE_DIR) $(PY) -m bench.quality.run $(QUALITY_ARGS)

# VARIANTS_ARGS reaches bench/quality/variants.py (e.g. --model qwen2.5-coder-1.5b-instruct, --variants served block128).
quality-variants: install build-venv $(MODEL_STAMPS) ## int4 build variants (block size, symmetry, int8 layers, accuracy level) by perplexity, speed and RSS
	ORTSERVE_CACHE_DIR=$(CACHE_DIR) $(PY) -m bench.quality.variants $(VARIANTS_ARGS)

# Needs Docker and the images (built here from the engine's cache); THREADS_ARGS reaches bench/threads_cgroup.py.
bench-threads: install $(MODEL_STAMPS) ## The chat image under --cpus 1: decode tok/s, default threads vs CHAT_ENGINE_THREADS=4
	@$(NEED_ENGINE)
	@tools/docker/images.sh
	$(PY) -m bench.threads_cgroup $(THREADS_ARGS)

fuzz: install nginx $(MODEL_STAMPS) ## Schemathesis, long: every schema and the proxy, stateful phase, random seed
	FUZZ_MAX_EXAMPLES=$${FUZZ_MAX_EXAMPLES:-100} FUZZ_MAX_TIME=$${FUZZ_MAX_TIME:-120} FUZZ_SEED= FUZZ_KEEP_REPORTS=1 \
	FUZZ_PHASES=examples,coverage,fuzzing,stateful \
	FUZZ_TARGETS=$${FUZZ_TARGETS:-chat,embeddings,models,proxy-chat,proxy-embeddings,proxy-models} \
	$(PY) -m pytest tests/test_fuzz_schemathesis.py -s -o timeout=$$(( $${FUZZ_MAX_TIME:-120} + 600 )) $(PYTEST_ARGS)

overload: install nginx $(MODEL_STAMPS) ## Twice the chat capacity for 60 s; refusal p99 < 100 ms, nothing lost
	OVERLOAD_SECONDS=$${OVERLOAD_SECONDS:-60} OVERLOAD_REFUSAL_P99_MS=100 \
	$(PY) -m pytest tests/test_overload.py -s -o timeout=$$(( $${OVERLOAD_SECONDS:-60} + 300 )) $(PYTEST_ARGS)

soak: install nginx $(MODEL_STAMPS) ## 10 min of the mixed Locust scenario, RSS sampled: results/reliability/soak-*
	SOAK_SECONDS=$${SOAK_SECONDS:-600} \
	$(PY) -m pytest tests/test_soak.py -s -o timeout=$$(( $${SOAK_SECONDS:-600} + 600 )) $(PYTEST_ARGS)

docker-engine: install ## Install Debian's Docker engine and start it, plus the compose v2 plugin (no-op where they answer)
	@tools/docker/engine.sh $(VENV)/bin/docker-compose

base-image: ## Debian bookworm base image (Python, nginx, this host's CA certificates) from Debian's packages
	@tools/docker/base-image.sh

images: ## Build every image (public bases where a registry answers, the local base otherwise; ORTSERVE_BASE=...)
	@$(NEED_ENGINE)
	@tools/docker/images.sh

compose-up: install $(MODEL_STAMPS) ## The stack under docker compose (chat x2), real models mounted read-only; prints the URL
	@$(NEED_ENGINE)
	@tools/docker/images.sh
	@$(PY) tools/compose.py up

compose-down: install ## Stop the compose stack; returns once every container has stopped (volumes stay)
	@$(PY) tools/compose.py down

swarm-up: install $(MODEL_STAMPS) ## The same stack with docker stack deploy (a single-node swarm where none is active)
	@$(NEED_ENGINE)
	@tools/docker/images.sh
	@$(PY) tools/swarm.py up

swarm-down: install ## Remove the swarm stack; returns once its containers and network are gone (volumes stay)
	@$(PY) tools/swarm.py down

lint: install ## ruff over the code (lint rules and formatting)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install ## mypy over every deployable's code
	$(VENV)/bin/mypy

docs: install ## Regenerate each service's configuration table (README) from its settings
	$(PY) tools/settings_docs.py

test-unit: install ## Only the tests that need no model and no server (well under a minute)
	$(PY) -m pytest -m unit -q $(PYTEST_ARGS)

clean: ## Remove the venv (the model cache in ~/.cache/ortserve stays)
	rm -rf $(VENV) .pytest_cache

# Images tagged `cluster` (ORTSERVE_TAG), so rebuilding them for the cluster never changes another stack's `latest`.
cluster-up: install $(MODEL_STAMPS) ## The stack on a NODES=3 Docker Swarm of node containers (chat x3, embeddings x2); prints the URL
	@$(NEED_ENGINE)
	@ORTSERVE_TAG=$${ORTSERVE_TAG:-cluster} tools/docker/images.sh
	@NODES=$${NODES:-3} ORTSERVE_TAG=$${ORTSERVE_TAG:-cluster} $(PY) tools/cluster.py up

cluster-down: install ## Remove every node container, network and volume that cluster-up made
	@$(PY) tools/cluster.py down

test-cluster: install $(MODEL_STAMPS) ## The multi-node tests (tests/test_cluster.py): cross-host requests, node loss, rolling update, drain
	@$(NEED_ENGINE)
	$(PY) -m pytest tests/test_cluster.py -o timeout=1800 $(PYTEST_ARGS)
