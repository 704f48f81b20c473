# The two commands of the README: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)

.PHONY: run test test-extended test-concurrency cluster test-cluster test-fast migrate seed check clean-db bench bench-http bench-instructions bench-audit bench-api bench-analytics bench-notifications bench-agents bench-webhooks receivers clean-bench load test-shard-ready check-budgets

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
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --ignore=tests/concurrency --ignore=tests/cluster -m "not extended" $(PYTEST_ARGS)

# The long tests (marked `extended`: the page sweeps of four roles, schemathesis over the whole API,
# the dev server's restarts, PostgreSQL restarts, thousand-request leak checks). `.ci/run` runs them.
test-extended: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --ignore=tests/concurrency --ignore=tests/cluster -m extended $(PYTEST_ARGS)

# Every write path against every other in many threads (tests/concurrency): 0 deadlocks, 0 5xx,
# the audit chain verifies. A few minutes; `.ci/run` runs it after `make test`.
test-concurrency: $(STAMP)
	$(BIN)/python -m pytest -n 0 -s tests/concurrency $(PYTEST_ARGS)

# What the sample integrations point at (webhook receiver, JSON source, inbound sender), beside `make run`.
receivers: $(STAMP)
	PORTAL_ENV=$${PORTAL_ENV:-development} $(BIN)/flask --app wsgi integrations sample-receivers

# Shard-ready queries (issue 27, docs/scaling.md): these test files with every portal statement on a
# tenant table parsed (pglast); a statement that does not pin tenant_id by equality fails its test.
# Not in `make test` (parsing costs time); `.ci/run` runs it.
SHARD_READY_TESTS ?= tests/test_authz_matrix.py tests/test_pages.py tests/test_list_pages.py \
	tests/test_api.py tests/test_agents.py tests/test_jobs.py tests/test_tasks.py tests/test_notifications.py \
	tests/test_analytics.py tests/test_export.py tests/test_deletion.py tests/test_console.py \
	tests/test_audit_retention.py tests/test_audit_viewer.py tests/test_device_csv.py tests/test_search.py \
	tests/test_members.py tests/test_invitations.py tests/test_settings.py tests/test_workspace.py \
	tests/test_roles.py tests/test_sso.py tests/test_security_events.py \
	tests/test_integrations.py tests/test_scim.py tests/test_sso_org.py tests/test_oauth_apps.py tests/test_keys.py \
	tests/test_passkeys.py tests/test_account_life.py
test-shard-ready: $(STAMP)
	SHARD_CHECK=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -q $(SHARD_READY_TESTS) $(PYTEST_ARGS)

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

# Webhook fan-out: deliveries per second through the job worker to a receiver on loopback (issue 23).
bench-webhooks: $(STAMP)
	$(BIN)/python -m bench.webhooks $(BENCH_ARGS)

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

# Instruction budgets (issue 27): the hot requests counted by callgrind on a small data set built in
# seconds, against bench/budgets.toml; more than 5% over a budget fails. `.ci/run` runs it.
check-budgets: $(STAMP)
	command -v valgrind >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q valgrind >/dev/null; } || true
	$(BIN)/python -m bench.budgets $(BENCH_ARGS)

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
# LOAD_SIGNINS_PER_SECOND=2 adds the sign-in storm mix (pages' p95 and sign-in latency reported apart).
# locust lives in a venv of its own: it pulls newer requests and a pytest plugin into whatever it joins.
load: $(STAMP)
	test -x .venv-load/bin/python || $(PYTHON) -m venv .venv-load
	.venv-load/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-load.txt
	LOCUST=.venv-load/bin/locust $(BIN)/python -m bench.load

clean-db:
	rm -rf instance/pgdata instance/pgtest instance/run instance/load instance/agents-bench instance/budgets instance/cluster

# The benchmark's data set (about 2 GB), kept between runs of `make bench`.
clean-bench:
	rm -rf instance/pgbench bench/out
