# Two commands do all the set-up: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= serve_app/configs/tiny.yaml
REDIS_PORT ?= 6399
export REDIS_URL ?= redis://127.0.0.1:$(REDIS_PORT)/0
REDIS_DIR := var/redis

.PHONY: install models system-deps system-deps-test redis-start redis-stop demo serve test lint typecheck check format bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps "facenet-pytorch==2.6.0"  # see pyproject.toml
	touch $@

# Tiny offline weights, built once (only if missing).
models: models/tiny/generator/.complete models/tiny/classifier/.complete

models/tiny/%/.complete: | install
	$(PY) scripts/build_tiny_models.py models/tiny

# Servers come from Debian's packages when missing (prometheus brings promtool).
system-deps:
	@scripts/system_deps.sh

system-deps-test:
	@scripts/system_deps.sh --test

redis-start: system-deps
	@mkdir -p $(REDIS_DIR)
	@if redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1; then echo "redis already up on $(REDIS_PORT)"; else \
	  redis-server --port $(REDIS_PORT) --bind 127.0.0.1 --dir $(abspath $(REDIS_DIR)) \
	    --appendonly yes --save "" --daemonize yes --pidfile $(abspath $(REDIS_DIR))/redis.pid \
	    --logfile $(abspath $(REDIS_DIR))/redis.log && \
	  for i in $$(seq 50); do redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1 && break; sleep 0.1; done; \
	  echo "redis started on 127.0.0.1:$(REDIS_PORT) (data in $(REDIS_DIR))"; fi

redis-stop:
	@redis-cli -p $(REDIS_PORT) shutdown nosave >/dev/null 2>&1 || true

demo: install models redis-start
	@status=0; $(PY) scripts/demo.py --config $(CONFIG) || status=$$?; \
	  $(MAKE) --no-print-directory redis-stop; exit $$status

serve: install models redis-start
	@trap '$(MAKE) --no-print-directory redis-stop' EXIT; $(PY) scripts/serve.py --config $(CONFIG)

# The fault tests (a multi-node Ray cluster of their own: kills, restarts, autoscaling) run in a
# second pytest process: one Ray driver per process.
test: install models system-deps-test check
	$(PY) -m pytest -q -p no:cacheprovider --durations=15 tests/unit tests/integration tests/e2e
	$(PY) -m pytest -q -p no:cacheprovider --durations=10 tests/fault

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

# What `make test` runs first (and the pre-commit hooks run on each commit).
check: lint typecheck

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Serving overhead, throughput at capacity, then time to ready (last: each of its runs starts and
# stops `make serve`, Redis included). bench/RESULTS.md records what each printed.
bench: install models redis-start
	@status=0; $(PY) bench/serving_overhead.py --config $(CONFIG) || status=$$?; \
	  $(PY) bench/throughput_at_capacity.py --config $(CONFIG) || status=$$?; \
	  $(MAKE) --no-print-directory redis-stop; \
	  $(PY) bench/time_to_ready.py --command "$(MAKE) --no-print-directory serve CONFIG=$(CONFIG)" || status=$$?; \
	  exit $$status

clean:
	rm -rf var out
