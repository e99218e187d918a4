# Photogram: the routine tasks. `make run` and `make test` need only Python >= 3.11 and make.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
UV := $(VENV)/bin/uv
RUN := $(UV) run --frozen
BACKENDS_ENV = eval "$$(bash scripts/backends.sh env)"
BENCH_USERS ?= 100000
# pytest-xdist processes for make test and make test-real (0: one process). Each test has
# backends of its own (tests/backends.py); most of a test's time is spent waiting on them.
TEST_WORKERS ?= 2

.PHONY: help install run admin test test-web test-real test-redis-cluster test-faults test-all up down lint format bench bench-feed bench-redis-loss schemathesis validate-deploy clean

help:
	@echo "make run        the whole system in one process (embedded mode), gateway on PHOTOGRAM_PORT (8000)"
	@echo "make test       the test suite in the embedded mode (SQLite, in-process bus, fakeredis, disk)"
	@echo "make test-web   the web client in Chromium (PHOTOGRAM_CHROMIUM), screenshots to docs/screenshots"
	@echo "make test-real  the same suites on PostgreSQL, Kafka, Redis and S3 (started by scripts/backends.sh)"
	@echo "make test-redis-cluster  the Redis suites and a few end-to-end ones on a local 3-node Redis Cluster"
	@echo "make test-faults  kills, stops and impairs a stack of its own; delivery checked from the API (root)"
	@echo "make up / down  the distributed mode: real backends and one process per service"
	@echo "make lint       ruff and mypy"
	@echo "make admin ARGS=...  photogram-admin (rebuild-feeds, reconcile-counts, dead-letters, sweep-media, status)"
	@echo "make bench-feed feed reads: Photogram vs the pull monolith vs the floor (BENCH_USERS=$(BENCH_USERS))"
	@echo "make bench-redis-loss  feed reads through a flush of the timelines' Redis database"

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet "uv>=0.5"

$(VENV)/.synced: $(UV) uv.lock pyproject.toml */pyproject.toml
	$(UV) sync --frozen
	@touch $@

install: $(VENV)/.synced

run: install
	$(RUN) python -m photogram_runner

# Operator commands on the stores the PHOTOGRAM_* settings name (docs/operations.md), e.g.
# make admin ARGS="status"; against `make up`, with the backends' environment first.
admin: install
	$(RUN) photogram-admin $(ARGS)

test: install
	PHOTOGRAM_TEST_BACKENDS=embedded $(RUN) pytest -n $(TEST_WORKERS)

# The browser tests start `python -m photogram_runner` themselves, on a free port; they drive
# Debian's Chromium (`apt-get install chromium`) and save screenshots of the main screens.
PHOTOGRAM_SCREENSHOTS ?= docs/screenshots
test-web: install
	PHOTOGRAM_SCREENSHOTS=$(PHOTOGRAM_SCREENSHOTS) $(RUN) pytest tests/web

test-real: install
	bash scripts/backends.sh start
	$(BACKENDS_ENV) && PHOTOGRAM_TEST_BACKENDS=real $(RUN) pytest -n $(TEST_WORKERS)

# The Redis Cluster client path (PHOTOGRAM_REDIS_CLUSTER=true): a 3-node cluster on
# 127.0.0.1:27001-27003 (scripts/backends.sh redis-cluster), the other backends as in
# test-real. A cluster that does not come up fails the target.
REDIS_CLUSTER_TESTS := tests/cluster tests/contract/test_timeline_store.py \
	tests/contract/test_page_read.py tests/unit/test_ratelimit.py tests/e2e/test_feed.py \
	tests/e2e/test_sessions.py tests/e2e/test_feed_degraded.py \
	tests/e2e/test_degraded_dependencies.py \
	tests/e2e/test_gateway_edge.py::test_the_sixth_request_in_a_window_is_429
# Not tests/e2e/test_account_deletion.py: on the cluster, one of its systems did not stop
# within the test timeout (docs/operations.md, "Open"); not yet understood.
test-redis-cluster: install
	bash scripts/backends.sh start
	bash scripts/backends.sh redis-cluster start
	$(BACKENDS_ENV) && eval "$$(bash scripts/backends.sh redis-cluster env)" && \
		PHOTOGRAM_TEST_BACKENDS=real $(RUN) pytest $(REDIS_CLUSTER_TESTS)

# The fault suite starts its own PostgreSQL, Redis and Kafka (tests/faults/stack.py); the
# shared backends give it the object store and the Kafka jars. `timeout` is a backstop: the
# suite bounds each case and itself, and stops its stack on SIGTERM.
test-faults: install
	bash scripts/backends.sh start
	$(BACKENDS_ENV) && timeout --kill-after=30 1000 $(RUN) python tests/faults/run.py $(if $(CASES),--cases $(CASES))

up: install
	bash scripts/backends.sh start
	$(BACKENDS_ENV) && $(RUN) python -m photogram_runner up

down: install
	-$(RUN) python -m photogram_runner down
	bash scripts/backends.sh stop

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy contracts common gateway user-service post-service media-service feed-service fanout-worker notification-service runner admin

format: install
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

# Generates the bench data first unless .backends/bench/graph.json has BENCH_USERS users.
bench-feed: install
	bash scripts/backends.sh start
	$(BACKENDS_ENV) && $(RUN) python bench/bench_feed.py --users $(BENCH_USERS)

bench-redis-loss: install
	bash scripts/backends.sh start
	$(BACKENDS_ENV) && $(RUN) python bench/redis_loss.py --users $(BENCH_USERS)

schemathesis: install
	bash scripts/schemathesis.sh

validate-deploy: install
	bash scripts/validate-deploy.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
