# The two commands that matter: `make run` (the whole system locally) and `make test` (every test).
# Each does its own set-up on a fresh machine: system packages (as root), the venv, Postgres and
# RabbitMQ (started if down), schemas, roles and migrations.

SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
CONSTRAINTS := constraints.txt
REQUIREMENT_FILES := requirements-dev.txt $(wildcard services/*/requirements.txt gateway/dashboard/requirements.txt)
REQS := $(CONSTRAINTS) shared/pyproject.toml $(REQUIREMENT_FILES)
# What the venv installs: the shared package (editable) and every requirements file; the releases come from
# $(CONSTRAINTS).
REQUIREMENT_ARGS := -e shared $(foreach r,$(REQUIREMENT_FILES),-r $(r))
SYSTEM_PACKAGES := nginx-light poppler-utils libharfbuzz-subset0 libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core chromium \
	jq uuid-runtime

.PHONY: help run test admin-key bench bench-smoke fuzz system-deps infra venv constraints clean

help:
	@echo "make run        start the whole system on http://localhost:8080"
	@echo "make test       run every test (unit, integration, e2e, fault, quick fuzz)"
	@echo "make admin-key  print a fresh admin API key"
	@echo "make bench      the benchmark (make bench-smoke for a quick pass)"
	@echo "make fuzz       the long API fuzzing profile"
	@echo "make constraints  re-pin constraints.txt to the newest releases the requirements allow"

$(VENV)/.installed: $(REQS)
	@test -x $(PY) || python3 -m venv $(VENV) >&2
	@$(PY) -m pip install -q --disable-pip-version-check -U pip wheel >&2
	@$(PY) -m pip install -q --disable-pip-version-check -c $(CONSTRAINTS) $(REQUIREMENT_ARGS) >&2
	@touch $@

venv: $(VENV)/.installed

# The requirements installed without the pins into a throwaway venv; its freeze replaces the pins below the
# file's header comment. Then `make test` (the venv reinstalls to the new pins) and commit constraints.txt.
constraints:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && python3 -m venv "$$tmp/venv" >&2 \
		&& "$$tmp/venv/bin/pip" install -q --disable-pip-version-check -U pip wheel >&2 \
		&& "$$tmp/venv/bin/pip" install -q --disable-pip-version-check $(REQUIREMENT_ARGS) >&2 \
		&& { sed -n '/^#/!q;p' $(CONSTRAINTS); "$$tmp/venv/bin/pip" freeze --exclude-editable; } > $(CONSTRAINTS).new \
		&& mv $(CONSTRAINTS).new $(CONSTRAINTS) && echo "constraints.txt re-pinned; now run make test" >&2

# Debian packages: nginx (the gateway), WeasyPrint's libraries, pdftotext, Chromium (browser tests), and jq and
# uuidgen for the README's walkthrough.
system-deps:
	@missing=""; \
	for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing:$$missing" >&2; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >&2; \
		else echo "missing Debian packages:$$missing (run as root or install them)" >&2; exit 1; fi; \
	fi

# Postgres and RabbitMQ: use what runs; start the local ones if they are down. A RabbitMQ node that runs with its
# app stopped (`rabbitmqctl stop_app`, as make test's broker-restart test does for a moment) gets its app started:
# a second node under the same name would not start.
infra:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { echo "starting PostgreSQL" >&2; \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main start >&2; }
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
	@rabbitmqctl -q await_startup --timeout 2 >/dev/null 2>&1 \
		|| { rabbitmqctl -q start_app >/dev/null 2>&1 && echo "started the RabbitMQ app (its node was running)" >&2 \
			&& rabbitmqctl -q await_startup --timeout 60 >&2; } \
		|| { echo "starting RabbitMQ" >&2; rabbitmq-server -detached >&2; rabbitmqctl -q await_startup --timeout 120 >&2; }

run: system-deps venv infra
	@$(PY) -m billing_shared.devstack run

admin-key: system-deps venv infra
	@$(PY) -m billing_shared.devstack admin-key 2>/dev/null

test: system-deps venv infra
	@$(PY) tests/run_all.py

bench: system-deps venv infra
	@$(PY) -m bench.run --profile full

bench-smoke: system-deps venv infra
	@$(PY) -m bench.run --profile smoke

fuzz: system-deps venv infra
	@$(PY) -m pytest -q tests/e2e/test_fuzz.py --fuzz-profile=long

clean:
	rm -rf .run tests/artifacts
