# Every target sets itself up: a fresh machine needs only python3 (and apt for the browser tests).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BENCH_ORDERS ?= 1000000
PYTEST_ARGS ?=

.PHONY: install test demo lint bench browser clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# Chromium for the real-browser tests (Debian's package; Playwright's own download cannot work here).
# apt-get waits up to 10 minutes for another package install to release its lock instead of failing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: install Debian's 'chromium' package for the browser tests" >&2; fi; }

test: install browser
	@$(BIN)/python -m pytest -q -n 2 $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

demo: install
	$(BIN)/tracker demo

lint: install
	$(BIN)/ruff check tracker detectors tests bench

bench: install
	$(BIN)/python -m bench --orders $(BENCH_ORDERS)

clean:
	rm -rf $(VENV) .pytest_cache bench/out
