# Every target sets itself up: a fresh machine needs only python3 (and apt for the browser tests).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The locked versions every install uses (Python 3.11, linux x86_64); `make lock` refreshes it.
LOCK := requirements/constraints.txt
LOCK_ARGS ?=
BENCH_ORDERS ?= 1000000
PYTEST_ARGS ?=

.PHONY: install lock test demo lint bench browser clean

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip -c $(LOCK)
	@$(BIN)/python -m pip install -q -c $(LOCK) -e '.[dev,dask]'
	@# the project's own bytecode, as pip writes it for every other package (an editable install writes none)
	@$(BIN)/python -m compileall -q tracker detectors >/dev/null
	@touch $(STAMP)

# Re-resolve the lock after pyproject.toml's dependencies change (pins already there are kept;
# `make lock LOCK_ARGS=--upgrade` moves everything to the newest allowed). Then `make install`.
lock:
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q 'uv>=0.5'
	@$(BIN)/uv pip compile pyproject.toml --extra dev --extra dask --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu --custom-compile-command 'make lock' --quiet $(LOCK_ARGS) -o $(LOCK)

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
