# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= $(shell scripts/find-python)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo admin test venv lint check-migrations clean chaos bench bench-flow bench-workflow

$(BIN)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "no Python >= 3.12 found"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,redis]'
	touch $@

venv: $(BIN)/.installed

## Run the demo on SQLite: migrate, enqueue sample jobs, run a worker until they finish.
demo: venv
	$(BIN)/python testproject/manage.py migrate --verbosity 0
	$(BIN)/python testproject/manage.py demo

## The admin on the demo's database: create the superuser admin/admin if missing, then runserver.
ADMIN_USER ?= admin
ADMIN_PASSWORD ?= admin
ADMIN_ADDR ?= 127.0.0.1:8000
admin: venv
	$(BIN)/python testproject/manage.py migrate --verbosity 0
	$(BIN)/python testproject/manage.py shell --verbosity 0 -c "from django.contrib.auth import get_user_model; \
	  raise SystemExit(0 if get_user_model().objects.filter(username='$(ADMIN_USER)').exists() else 1)" \
	  || DJANGO_SUPERUSER_PASSWORD='$(ADMIN_PASSWORD)' $(BIN)/python testproject/manage.py \
	     createsuperuser --noinput --username '$(ADMIN_USER)' --email '$(ADMIN_USER)@example.com'
	@echo "the admin: http://$(ADMIN_ADDR)/admin/ (user $(ADMIN_USER), password $(ADMIN_PASSWORD))"
	$(BIN)/python testproject/manage.py runserver $(ADMIN_ADDR)

## Run the whole test suite (SQLite by default; DATABASE_URL=postgres://... for PostgreSQL).
## Installs Chromium and PgBouncer with apt-get when missing (their tests skip where it cannot).
test: venv
	scripts/ensure-browser || echo "the admin's browser tests will be skipped"
	scripts/ensure-pgbouncer || echo "the fault suite's PgBouncer rows will be skipped"
	$(BIN)/python testproject/manage.py makemigrations --check --dry-run
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The fault suite at full scale on PostgreSQL (restarts the local PostgreSQL: the cluster
## EDGEJOBS_PG_CLUSTER, default "main", which DATABASE_URL must name), then
## rewrite docs/reliability.md from its figures. The default suite runs it at a small scale.
chaos: venv
	command -v faketime >/dev/null || apt-get install -y -qq faketime || true
	scripts/ensure-pgbouncer || echo "the PgBouncer rows will be skipped"
	rm -f .chaos.jsonl
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres} \
	EDGEJOBS_TEST_DB=test_edgejobs_chaos EDGEJOBS_FAULTS=full \
	EDGEJOBS_FAULTS_REPORT=$(CURDIR)/.chaos.jsonl \
		$(BIN)/python -m pytest tests/acceptance/faults -p no:warnings $(PYTEST_ARGS)
	EDGEJOBS_TEST_DB=test_edgejobs_chaos EDGEJOBS_FAULTS=full \
	EDGEJOBS_FAULTS_REPORT=$(CURDIR)/.chaos.jsonl \
		$(BIN)/python -m pytest tests/acceptance/faults -p no:warnings -k "12 or 11 or 14 or 15 or test_21 or test_22 or test_23"
	$(BIN)/python tests/acceptance/faults/report.py .chaos.jsonl docs/reliability.md

## The peer benchmark of issue #8: edgejobs against pgqueuer, procrastinate, django-tasks-db,
## Celery and huey, plus a pgbench ceiling; rewrites docs/benchmarks.md and its chart. Builds the
## peers' own venv (benchmarks/.peers-venv) if missing. Not part of `make test`. Options:
## BENCH_ARGS=--quick (a smoke run), BENCH_ARGS='--only pgqueuer,celery-redis', --reps N,
## BENCH_ARGS='--only none --baseline REF --scale 4' (edgejobs now against edgejobs at commit REF;
## drains timed by the jobs' own times, cases long enough to compare within a few percent).
## Then flow control's drains (benchmarks/flow_bench.py; FLOW_ARGS='--reps 1', '--sqlite').
## Then workflows (benchmarks/workflow_bench.py): a 10,000-job fan-out/fan-in (a chord) against
## the same 10,000 jobs without dependencies, and a 3-level DAG; it rewrites its own section of
## docs/benchmarks.md, which peer_bench.py's page rewrite drops (WORKFLOW_ARGS='--reps 1',
## '--sqlite' for SQLite too, '--workers 2 --concurrency 4', '--jobs N', '--dag 100x10').
BENCH_ARGS ?=
FLOW_ARGS ?=
WORKFLOW_ARGS ?=
bench:
	test -x $(BIN)/python || $(MAKE) venv
	DJANGO_DEBUG=0 $(BIN)/python benchmarks/peer_bench.py $(BENCH_ARGS)
	DJANGO_DEBUG=0 $(BIN)/python benchmarks/flow_bench.py $(FLOW_ARGS)
	DJANGO_DEBUG=0 $(BIN)/python benchmarks/workflow_bench.py --write $(WORKFLOW_ARGS)

## Flow control's cost: drains without limits, with one shared concurrency key, under a rate.
bench-flow:
	test -x $(BIN)/python || $(MAKE) venv
	DJANGO_DEBUG=0 $(BIN)/python benchmarks/flow_bench.py $(FLOW_ARGS)

## Workflows' cost: a fan-out/fan-in and a DAG against plain jobs; updates docs/benchmarks.md.
bench-workflow:
	test -x $(BIN)/python || $(MAKE) venv
	DJANGO_DEBUG=0 $(BIN)/python benchmarks/workflow_bench.py --write $(WORKFLOW_ARGS)

lint: venv
	$(BIN)/ruff check django_edgejobs tests testproject

clean:
	rm -rf $(VENV) testproject/db.sqlite3* testproject/.test-db*
