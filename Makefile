# The two commands that matter: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The model pages' build tools (esbuild, Preact) from frontend/package-lock.json: the tests
# rebuild the bundle and compare it with the committed one (tests/unit/ui/test_bundle.py).
FRONTEND_STAMP := frontend/node_modules/.installed

.PHONY: install install-production frontend demo demo-keep test lint unit integration clean

install: $(STAMP)

# Pinned install: constraints.txt fixes every transitive version (see docs/development.md).
# The production extra (Celery provider, celery/kombu/redis, psycopg2, asyncpg) is in it: the
# tests run the production shape natively (tests/integration/test_production.py).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==26.*"
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,production]'
	# setuptools leaves plugins/airflow_mlops.egg-info beside the package; on sys.path it is a second
	# copy of the metadata, and Airflow then registers the plugin twice (devstack/install_check.py).
	rm -rf plugins/airflow_mlops.egg-info
	touch $(STAMP)

frontend: $(FRONTEND_STAMP)

$(FRONTEND_STAMP): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --ignore-scripts
	touch $(FRONTEND_STAMP)

# Kept for the docs' commands: the default install already has the production extra.
install-production: install

demo: install
	$(BIN)/airflow-mlops demo

demo-keep: install
	$(BIN)/airflow-mlops demo --keep-running

# lint-imports: the layers and the Airflow-free / light serving contracts ([tool.importlinter] in
# pyproject.toml). It finds airflow_mlops on sys.path: PYTHONPATH makes it this checkout's plugins/.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check plugins dags
	$(BIN)/mypy
	PYTHONPATH=$(CURDIR)/plugins $(BIN)/lint-imports --no-cache --no-logo

test: lint frontend
	$(BIN)/pytest -p no:cacheprovider

unit: install frontend
	$(BIN)/pytest -p no:cacheprovider tests/unit tests/component tests/dags

integration: install
	$(BIN)/pytest -p no:cacheprovider tests/integration

clean:
	rm -rf .runtime $(VENV) frontend/node_modules
