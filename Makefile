# Two commands matter: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp-install
JS     := tests/js
REF    := bench/reference
HOST   ?= 127.0.0.1
PORT   ?= 4000
DATA   ?= ./data

.PHONY: install run test test-deps lint format bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# requirements.lock pins every dependency (runtime and dev) to the versions
# the suite passed with, so CI installs exactly what was tested.
$(STAMP): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	@touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/newage serve --host $(HOST) --port $(PORT) --data-dir $(DATA)

# Everything the suite needs: Python deps, the official JS client (npm),
# Debian's Chromium for the browser tests (no browser download) and Debian's
# HAProxy for the load-balancer test (tests/test_haproxy.py).
test-deps: $(STAMP) $(JS)/node_modules/.stamp /usr/bin/chromium /usr/sbin/haproxy

$(JS)/node_modules/.stamp: $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund --silent
	@touch $@

/usr/bin/chromium:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	 $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null

/usr/sbin/haproxy:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	 $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq haproxy >/dev/null

test: test-deps lint
	$(BIN)/pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench examples
	$(BIN)/ruff format src tests bench examples

# bench.run itself runs `npm ci` in bench/reference when needed (so does a
# bare `python -m bench.run`); it needs neither Chromium nor tests/js.
bench: $(STAMP)
	$(BIN)/python -m bench.run

# Records what is installed now (see README, "Dependencies"): upgrade what
# you mean to in .venv, run `make test`, then `make lock`.
LOCK_HEAD := \# Exact versions of every runtime and dev dependency the test-suite passed with.
lock: $(STAMP)
	{ echo '$(LOCK_HEAD)'; \
	  echo '# The Makefile installs with these as constraints; refresh with `make lock` (README).'; \
	  $(BIN)/python -m pip freeze --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) $(JS)/node_modules $(REF)/node_modules .pytest_cache .mypy_cache .ruff_cache
