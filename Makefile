# Two commands for a newcomer: `make run` and `make test`. Every install step lives here.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU build of torch that lies on this machine's disk; an unpinned torch pulls a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) $(wildcard web/package.json web/package-lock.json web/next.config.* web/tsconfig.json web/openapi.json)

.PHONY: run test install lint typecheck pytest web web-test chromium clean openapi wheel deploy-check

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_PIN)"
	$(BIN)/pip install -q -e '.[inference,dev]'
	touch $@

web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

# The UI is rebuilt only when its sources changed; the gateway serves web/out.
web/out/index.html: web/node_modules/.installed $(WEB_SOURCES)
	cd web && npm run build
	touch $@

web: web/out/index.html

chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# The wheel carries the built UI (hatch_build.py copies web/out into ablerefusal/gateway/web_ui).
wheel: install web
	$(BIN)/python -m hatchling build -t wheel -d dist

openapi: install
	$(BIN)/python -m ablerefusal.gateway.openapi_dump > web/openapi.json

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

web-test: web/node_modules/.installed install
	$(BIN)/python -m ablerefusal.gateway.openapi_dump | diff -q - web/openapi.json >/dev/null || \
	  { echo "web/openapi.json drifted from the gateway's schema: run 'make openapi' and regenerate web types"; exit 1; }
	cd web && npm run check

# deploy/ without Docker or a cluster: hadolint on the Dockerfiles, compose.yaml against the Compose spec's
# schema, kustomize render + Kubernetes schemas (tests/deploy; `make test` runs them too).
deploy-check: install
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/deploy

pytest: install web chromium
	$(BIN)/python -m pytest -q -p no:cacheprovider

test: lint web-test pytest

run: install web
	$(BIN)/ablerefusal serve --demo-if-empty

clean:
	rm -rf $(VENV) web/node_modules web/out web/.next dist
