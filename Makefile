# homelink: everything a developer or CI runs. Needs only GNU make and Python >= 3.11.
#
#   make demo       the whole system on SQLite with a worker, at http://127.0.0.1:8000/admin/
#   make test       the test suite (SQLite unless DATABASE_URL says otherwise)
#   make test-pg    the test suite on the local PostgreSQL
#   make lint       ruff and mypy, as CI runs them

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The stamp is newer than pyproject.toml once its dependencies are installed: `make install`
# is then a no-op, and editing the dependencies reinstalls them.
STAMP := $(VENV)/.installed
# pytest-django creates (and with xdist, suffixes) its own test databases on this server.
PG_URL ?= postgres://postgres@127.0.0.1:5432/homelink
TESTS ?= homelink
PYTEST_ARGS ?=
DEMO_ARGS ?=
# The worker serves every queue: one process is enough for development and the demo.
WORKER_ARGS ?= --queue-name '*'
# SQLite creates its file but not the folder, and var/ is not in a fresh clone.
VAR_DIR := $(or $(HOMELINK_VAR_DIR),var)

.DEFAULT_GOAL := help
.PHONY: help install test test-pg pg-up lint format demo bench migrate worker clean

help:
	@echo "make install   create $(VENV) and install homelink with its dev tools"
	@echo "make demo      migrate, load a synthetic school, run a worker and the server"
	@echo "make test      run the tests (DATABASE_URL, or SQLite when unset)"
	@echo "make test-pg   run the tests on PostgreSQL ($(PG_URL))"
	@echo "make lint      ruff check, ruff format --check, mypy"
	@echo "make format    ruff format and ruff check --fix"
	@echo "make migrate   apply database migrations"
	@echo "make worker    run a background task worker"
	@echo "make bench     run the benchmarks (the load figures need wrk: apt-get install wrk)"
	@echo "make clean     remove $(VENV) and caches (keeps var/, the local database)"

$(STAMP): pyproject.toml
	@py="$(PYTHON)"; [ -x "$(BIN)/python" ] && py="$(BIN)/python"; \
	if ! "$$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
		echo "error: homelink needs Python >= 3.11, and '$$py' is $$("$$py" -V 2>/dev/null || echo "not found")." >&2; \
		echo "       Use another interpreter: make install PYTHON=python3.12" >&2; \
		exit 1; \
	fi
	@[ -x "$(BIN)/python" ] || $(PYTHON) -m venv "$(VENV)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch "$(STAMP)"

install: $(STAMP)

# pytest exits 5 when it collected nothing: say so, and fail, rather than pass an empty run.
test: install
	@rc=0; $(BIN)/pytest -n auto $(PYTEST_ARGS) $(TESTS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; fi; \
	exit $$rc

test-pg: install pg-up
	DATABASE_URL='$(PG_URL)' $(MAKE) --no-print-directory test

# Starts the local cluster only where this machine has Debian's pg_ctlcluster; elsewhere it
# just checks that a server answers.
pg-up:
	@if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then exit 0; fi; \
	if ! command -v pg_ctlcluster >/dev/null 2>&1; then \
		echo "error: PostgreSQL is not answering on 127.0.0.1:5432; start it first" >&2; exit 1; \
	fi; \
	for version in $$(ls /etc/postgresql); do \
		echo "starting PostgreSQL $$version"; \
		pg_ctlcluster --skip-systemctl-redirect "$$version" main start || true; \
	done; \
	for _ in $$(seq 30); do \
		pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; \
	done; \
	echo "error: PostgreSQL did not come up on 127.0.0.1:5432 within 30 s" >&2; exit 1

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	HOMELINK_DEV=1 $(BIN)/mypy homelink

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: install
	$(BIN)/homelink demo $(DEMO_ARGS)

bench: install
	$(BIN)/python -m homelink.bench

migrate: install
	@mkdir -p "$(VAR_DIR)"
	$(BIN)/homelink migrate

worker: install
	@mkdir -p "$(VAR_DIR)"
	$(BIN)/homelink worker $(WORKER_ARGS)

clean:
	rm -rf "$(VENV)" build .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
	find homelink -name __pycache__ -type d -prune -exec rm -rf {} +
