# EcoLink: `make run` serves the whole platform on its embedded default; `make test` runs
# the whole suite on real PostgreSQL and Redis. Both start from nothing but Python.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test lint fmt check-deploy install bench-trainer bench-datasets bench-meter bench-web

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-run: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[train]"
	touch $@

$(VENV)/.stamp-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[train,dev]"
	touch $@

node_modules/.stamp: package.json
	scripts/npm_install.sh

install: $(VENV)/.stamp-test node_modules/.stamp

run: $(VENV)/.stamp-run node_modules/.stamp
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap_demo
	$(PY) scripts/run.py

lint: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# `check --deploy` under production-like settings, with a throwaway secret.
check-deploy: $(VENV)/.stamp-test
	ECOLINK_ENV=production ALLOWED_HOSTS=ecolink.example.com \
	SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')" \
	$(PY) manage.py check --deploy --fail-level WARNING

test: install lint check-deploy
	scripts/ensure_chromium.sh
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) scripts/with_services.py -- $(PY) -m pytest $(PYTEST_ARGS)

bench-trainer: $(VENV)/.stamp-test
	$(PY) tests/bench/bench_trainer.py

bench-datasets: $(VENV)/.stamp-test
	$(PY) scripts/with_services.py -- $(PY) tests/bench/bench_datasets.py

bench-meter: $(VENV)/.stamp-test
	$(PY) scripts/with_services.py -- $(PY) tests/bench/bench_meter.py

bench-web: $(VENV)/.stamp-test
	$(PY) scripts/with_services.py -- $(PY) tests/bench/bench_web.py
