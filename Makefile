# The project's commands. Each one creates the virtualenv and installs what it needs first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements.lock requirements-dev.txt | cksum | cut -d' ' -f1)
STAGE ?= prod
PACKAGE_DIR ?= build/$(STAGE)

.PHONY: run test console mutation package lock bench budget-check clean

# What ships comes from the lock, hash-checked, so the tests run the versions the zip holds.
$(STAMP): requirements.txt requirements.lock requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --require-hashes --no-deps -r requirements.lock
	$(PIP) -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

run: $(STAMP)
	$(PY) dev/stack.py

# Two pytest workers (pytest-xdist), one per core of the 2-core CI machine; TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: $(STAMP) console
	$(PY) -m pytest -n $(TEST_WORKERS)

# What the console's browser tests need: Debian's chromium and the npm packages pinned in console/package-lock.json.
console:
	console/install.sh

# Mutation testing of the modules that decide money, limits and identity (dev/mutation.py);
# MODULE=chalicelib/pricing.py runs one.
mutation: $(STAMP)
	$(PY) dev/mutation.py $(MODULE)

package: $(STAMP)
	$(PY) dev/package.py --stage $(STAGE) --out $(PACKAGE_DIR)

lock: $(STAMP)
	$(PY) dev/package.py --lock

bench: $(STAMP)
	$(PY) dev/bench.py

budget-check: $(STAMP)
	$(PY) dev/budget_check.py

clean:
	rm -rf $(VENV) build .pytest_cache .mutation
