# devenv — two commands do all set-up: `make up` and `make test`. `make help` lists every target.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.devenv-installed
IMAGES_ENV := .devenv-images.env
EXAMPLE := examples/monorepo
# DEVENV_USE_REGISTRY=1 skips the offline stand-in images (a laptop that can pull postgres/redis/node).
DEVENV_USE_REGISTRY ?= 0

help: ## list the targets
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo "venv: installing devenv and its dev tools into $(VENV) ..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING' || true
	@$(BIN)/python -m pip install -q -e '.[dev]' 2>&1 | grep -v '^WARNING' || true
	@$(BIN)/python -c 'import devenv, dotenv, tenacity, yaml, pytest, psycopg, redis, python_on_whales'
	@touch $(STAMP)

venv: $(STAMP) ## create .venv with devenv installed in editable mode (skipped when up to date)
	@echo "venv: $(VENV) is ready."

engine: ## make sure a Docker Engine with compose v2 answers (installs one only on a Debian root machine without any)
	@bash scripts/ensure-docker.sh

images: engine ## build the offline stand-in images (cached) and print the variables that select them
	@if [ "$(DEVENV_USE_REGISTRY)" = 1 ]; then echo "images: DEVENV_USE_REGISTRY=1, using registry images"; : > $(IMAGES_ENV); \
	else bash scripts/build-images.sh > $(IMAGES_ENV).tmp && mv $(IMAGES_ENV).tmp $(IMAGES_ENV) && \
	  echo "images: stand-ins ready; to use them in your shell:" && grep '^export' $(IMAGES_ENV); fi

prepare: venv engine images ## everything `up` and `test` need

up: prepare ## prepare what is missing, then `devenv up` on the bundled example project
	@set -a; . ./$(IMAGES_ENV); set +a; $(BIN)/devenv -C $(EXAMPLE) up

down: venv ## stop the example stack (data volumes stay)
	@set -a; . ./$(IMAGES_ENV) 2>/dev/null || true; set +a; $(BIN)/devenv -C $(EXAMPLE) down

remote-up: engine images ## start the second Docker Engine test bed (netns, dockerd, sshd; see scripts/remote-engine.sh)
	@bash scripts/remote-engine.sh up
	@bash scripts/remote-engine.sh env

remote-down: ## stop the second Docker Engine test bed (its image cache stays; REMOTE_ARGS=--purge removes it)
	@bash scripts/remote-engine.sh down $(REMOTE_ARGS)

lint: venv ## ruff lint + format check
	@$(BIN)/ruff check devenv tests
	@$(BIN)/ruff format --check devenv tests

typecheck: venv ## mypy --strict on devenv/
	@$(BIN)/mypy

unit: venv ## unit tests only (no Docker)
	@$(BIN)/pytest tests/unit -q

# The suite runs in TEST_WORKERS processes (pytest-xdist), a test file each at a time: a file's tests share its
# module stack. Most of a test's time is spent waiting for containers, so two workers on two cores pay off;
# TEST_WORKERS=0 runs it in this one process.
TEST_WORKERS ?= 2

test: prepare lint typecheck ## lint, type check and the whole test suite (unit + docker integration)
	@set -a; . ./$(IMAGES_ENV); set +a; $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

soak: prepare ## the soak test (20 up/reset/down cycles; not part of `make test`)
	@set -a; . ./$(IMAGES_ENV); set +a; $(BIN)/pytest -m slow tests/integration $(PYTEST_ARGS)

bench: prepare ## benchmarks: devenv against its baselines in the same run (prints ratio tables)
	@$(BIN)/python -m compileall -q devenv  # byte-compiled, as `pip install` leaves an installed tool
	@set -a; . ./$(IMAGES_ENV); set +a; $(BIN)/python scripts/bench.py $(BENCH_ARGS)

clean: ## remove the virtualenv and caches (never touches Docker volumes)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(IMAGES_ENV)

.PHONY: help venv engine images prepare up down remote-up remote-down lint typecheck unit test soak bench clean
