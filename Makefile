# The two commands of the README: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)

.PHONY: run test test-concurrency cluster test-cluster test-fast migrate seed check clean-db bench bench-http bench-instructions bench-audit bench-api bench-analytics bench-notifications bench-agents clean-bench load

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)
	PORTAL_ENV=$${PORTAL_ENV:-development} exec $(BIN)/python -m portal.devserver

# Two workers (pytest-xdist), one test file each at a time: each worker has its own database.
# TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --ignore=tests/concurrency --ignore=tests/cluster $(PYTEST_ARGS)

# Every write path against every other in many threads (tests/concurrency): 0 deadlocks, 0 5xx,
# the audit chain verifies. A few minutes; `.ci/run` runs it after `make test`.
test-concurrency: $(STAMP)
	$(BIN)/python -m pytest -n 0 -s tests/concurrency $(PYTEST_ARGS)

# The production shape on one machine until Ctrl-C (not part of `make test`): HAProxy on CLUSTER_PORT
# (8000) in front of two gunicorn nodes, two job workers, PgBouncer, a primary and a streaming replica,
# Redis; Debian's packages installed when missing and root. See README and docs/operations.md.
cluster: $(STAMP)
	$(BIN)/python -m bench.cluster

# The cluster under load while a web node, a worker, PgBouncer and the replica are broken (tests/cluster):
# a few minutes; `.ci/run` runs it after test-concurrency. Figures in docs/performance.md.
test-cluster: $(STAMP)
	$(BIN)/python -m pytest -n 0 -s tests/cluster $(PYTEST_ARGS)

migrate: $(STAMP)
	PORTAL_ENV=$${PORTAL_ENV:-development} $(BIN)/flask --app wsgi db upgrade

seed: $(STAMP)
	PORTAL_ENV=$${PORTAL_ENV:-development} $(BIN)/flask --app wsgi seed

check: $(STAMP)
	PORTAL_ENV=$${PORTAL_ENV:-development} $(BIN)/flask --app wsgi db check

# Device-list benchmark (not part of `make test`): generates 1,000 tenants and 1,000,000 devices
# once under instance/pgbench (or on BENCH_DATABASE_URL), then measures; see docs/performance.md.
bench: $(STAMP)
	$(BIN)/python -m bench.devices $(BENCH_ARGS)

# API device list at page 1,000 of the 100,000-device tenant against the page's own fragment
# (issue 15); its own database beside `make bench`'s. BENCH_ARGS="--tenants 10" for a small data set.
bench-api: $(STAMP)
	$(BIN)/python -m bench.api $(BENCH_ARGS)

# Pages per second under gunicorn (2 sync workers), the portal against a bare Flask + psycopg_pool + Jinja
# app doing the same work, on the `make bench` data set, with wrk (installed from apt when missing and
# possible; otherwise a Python client whose figures are not comparable). See docs/performance.md.
bench-http: $(STAMP)
	command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q wrk >/dev/null; } || true
	$(BIN)/python -m bench.http $(BENCH_ARGS)

# The same requests counted in instructions (valgrind's callgrind, the app's process only):
# repeatable to the instruction on a shared machine. Runs after `make bench-http` (its page chrome).
bench-instructions: $(STAMP)
	command -v valgrind >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q valgrind >/dev/null; } || true
	$(BIN)/python -m bench.instructions $(BENCH_ARGS)

# Audit trail benchmark: write overhead of the hash chain, export memory at 1,000,000 rows.
bench-audit: $(STAMP)
	$(BIN)/python -m bench.audit $(BENCH_ARGS)

# Analytics events benchmark: the charts' queries at 500,000 events in a tenant, partition pruning.
bench-analytics: $(STAMP)
	$(BIN)/python -m bench.analytics $(BENCH_ARGS)

# Notifications benchmark: the bell's unread count at 1,000,000 notifications (EXPLAIN ANALYZE).
bench-notifications: $(STAMP)
	$(BIN)/python -m bench.notifications

# Heartbeat benchmark: gunicorn (2 workers) on an embedded database (instance/agents-bench) or on
# BENCH_DATABASE_URL; gateway batches of 1,000 devices and single heartbeats, BENCH_SECONDS each.
bench-agents: $(STAMP)
	$(BIN)/python -m bench.heartbeats $(BENCH_ARGS)

# Load test (not part of `make test`): gunicorn with 2 workers and a job worker on an embedded database
# with the sample data, 20 users for 60 s with locust (LOAD_USERS, LOAD_SECONDS); see docs/performance.md.
# locust lives in a venv of its own: it pulls newer requests and a pytest plugin into whatever it joins.
load: $(STAMP)
	test -x .venv-load/bin/python || $(PYTHON) -m venv .venv-load
	.venv-load/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-load.txt
	LOCUST=.venv-load/bin/locust $(BIN)/python -m bench.load

clean-db:
	rm -rf instance/pgdata instance/pgtest instance/run instance/load instance/agents-bench instance/cluster

# The benchmark's data set (about 2 GB), kept between runs of `make bench`.
clean-bench:
	rm -rf instance/pgbench bench/out
