# The project's commands. Each one creates the virtualenv and installs what it needs first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
PACKAGE_DIR ?= build/package
STAGE ?= prod

.PHONY: run test mutation package bench budget-check clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

run: $(STAMP)
	$(PY) dev/stack.py

test: $(STAMP)
	$(PY) -m pytest

# Mutation testing of the modules that decide money, limits and identity (dev/mutation.py);
# MODULE=chalicelib/pricing.py runs one.
mutation: $(STAMP)
	$(PY) dev/mutation.py $(MODULE)

package: $(STAMP)
	$(PY) dev/package.py --stage $(STAGE) --out $(PACKAGE_DIR)

bench: $(STAMP)
	$(PY) dev/bench.py

budget-check: $(STAMP)
	$(PY) dev/budget_check.py

clean:
	rm -rf $(VENV) build .pytest_cache .mutation
