# The two set-up commands of the README: `make run` and `make test`.
# Needs only Python 3.11 (or newer), pip and make; everything else is installed into .venv.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# uv installs exactly what uv.lock says (the versions CI last passed with) into .venv; pip only
# brings uv itself, into .tools/, outside the environment it keeps exact.
UV_VERSION := 0.13.9
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint lock clean node-deps system-deps bench bench-deps messages

$(UV):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(TOOLS) \
	    uv==$(UV_VERSION)

# One stamp per set of extras; reinstall when the lock or pyproject.toml changes. --locked
# refuses a lock that no longer matches pyproject.toml (refresh it with `make lock`); sync
# removes whatever the lock does not list.
$(VENV)/.installed-run: pyproject.toml uv.lock | $(UV)
	$(UV) sync --quiet --locked --python $(PYTHON)
	touch $@

$(VENV)/.installed-test: pyproject.toml uv.lock | $(UV)
	$(UV) sync --quiet --locked --python $(PYTHON) --extra test
	touch $@ $(VENV)/.installed-run

# Refresh the lock on purpose: every dependency to its newest release within pyproject.toml's
# bounds, then the whole suite. Commit uv.lock only if the tests pass.
lock: | $(UV)
	$(UV) lock --upgrade
	rm -f $(VENV)/.installed-run $(VENV)/.installed-test
	$(MAKE) test

run: $(VENV)/.installed-run
	$(BIN)/coalition init
	$(BIN)/coalition daemon

# ical.js (Thunderbird's parser) reads our feeds in the tests. Node comes from Debian's packages
# where it is missing and we may install it; without it those tests say why they skip.
node-deps:
	@if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
	    && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; fi
	@if command -v npm >/dev/null 2>&1; then \
	    npm install --prefix tests/js --no-audit --no-fund --silent; fi

# Debian packages some tests drive: Chromium for the members' page (through Playwright, which
# downloads no browser of its own), libfaketime for the clock-jump fault test, and systemd's
# systemd-analyze and nginx to check the deployment examples in deploy/. Installed where they
# are missing and we may (apt-get, as root); otherwise those tests say why they skip.
system-deps:
	@missing=""; [ -x /usr/bin/chromium ] || missing="chromium"; \
	[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || missing="$$missing faketime"; \
	[ -x /usr/bin/systemd-analyze ] || missing="$$missing systemd"; \
	[ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	[ -x /usr/sbin/smtp-sink ] || missing="$$missing postfix"; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing \
	    >/dev/null; fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy

# The suite on TEST_WORKERS processes (pytest-xdist; a file's tests stay together), then the
# fault tests (kills, a PostgreSQL restart, a clock jump) alone, with nothing running beside
# them. Exit status 5 is pytest's "no test selected" (PYTEST_ARGS chose none of one kind).
TEST_WORKERS ?= 2

test: lint node-deps system-deps
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not fault" $(PYTEST_ARGS); \
	    status=$$?; [ $$status = 0 ] || [ $$status = 5 ] || exit $$status
	$(BIN)/python -m pytest -m fault $(PYTEST_ARGS); \
	    status=$$?; [ $$status = 0 ] || [ $$status = 5 ] || exit $$status

# Benchmarks (not run by the tests): each prints a table and `ratio NAME VALUE` lines.
# `make bench BENCH_ARGS=--quick` runs each in under a minute.
bench-deps:
	@missing=""; for tool in /usr/sbin/smtp-sink:postfix /usr/sbin/nginx:nginx /usr/bin/wrk:wrk; do \
	    [ -x "$${tool%%:*}" ] || missing="$$missing $${tool##*:}"; done; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing \
	    >/dev/null; fi

# The fan-out also runs from one and two daemons on this PostgreSQL server (empty: not at all).
BENCH_POSTGRES ?= postgresql://postgres@127.0.0.1:5432/test

bench: $(VENV)/.installed-test bench-deps
	$(BIN)/python bench/fanout.py $(BENCH_ARGS) $(if $(BENCH_POSTGRES),--postgres $(BENCH_POSTGRES))
	$(BIN)/python bench/feeds.py $(BENCH_ARGS)
	$(BIN)/python bench/planning.py $(BENCH_ARGS)
	$(BIN)/python bench/imports.py $(BENCH_ARGS)

# Translations (README, "Languages"): templates/locale/messages.pot from the templates and the
# Python that names strings, then every shipped .po brought up to date with it (new strings
# empty, changed ones marked fuzzy); `coalition check` then lists what is left to translate.
messages: $(VENV)/.installed-run
	$(BIN)/python -c 'from pathlib import Path; from scheduler.delivery.catalogs import \
	    write_messages; print(*write_messages(Path(".")), sep="\n")'

clean:
	rm -rf $(VENV) $(TOOLS) var .pytest_cache .mypy_cache .ruff_cache .hypothesis tests/js/node_modules \
	    tests/artifacts
