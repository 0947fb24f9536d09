# The project's commands. Each one creates the virtualenv and installs what it needs first.
# Python 3.13, the Lambda runtime's version (dev/deploy/package.py PYTHON_VERSION: chalice names the runtime after
# the interpreter that packages): pyenv's 3.13 where the machine has it, else python3.13 on the PATH.
PYTHON_WANTED := 3.13
PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/$(PYTHON_WANTED).*/bin/python$(PYTHON_WANTED)) \
	$(shell command -v python$(PYTHON_WANTED)))
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
UV := $(VENV)/bin/uv pip install --quiet --system-certs --python $(PY)
REQUIREMENTS := requirements.txt requirements.lock requirements-dev.txt requirements-uv.txt
STAMP := $(VENV)/.installed-$(shell cat $(REQUIREMENTS) | cksum | cut -d' ' -f1)
comma := ,
STAGE ?= prod
PACKAGE_DIR ?= build/$(STAGE)

.PHONY: run test test-fast console mutation package deploy-dev lock bench budget-check clients clean

# What ships comes from the lock, hash-checked, so the tests run the versions the zip holds. uv installs the
# packages pip would, 20 s sooner (docs/testing.md has the figures); the interpreter's own pip installs uv
# itself (pinned, hash-checked) into a virtualenv made without pip (ensurepip's copy took 4 s; the pip that
# packaging runs is pinned in requirements-dev.txt); an interpreter without pip gets ensurepip's. The lock's
# packages (what ships, the bulk of what the app's processes import) are compiled to bytecode at install on
# every core; the rest (the AWS SDK the runtime provides, moto, cfn-lint, Schemathesis...) compile as a
# process first imports them, since a run imports fewer than half of their files. uv reads no pip
# configuration: it trusts the system's certificates (--system-certs, as pip does), and a mirror is named to
# it with UV_DEFAULT_INDEX or UV_FIND_LINKS.
$(STAMP): $(REQUIREMENTS)
	@test -n "$(PYTHON)" || { echo "make: Python $(PYTHON_WANTED) not found (pyenv install $(PYTHON_WANTED), or PYTHON=/path/to/python$(PYTHON_WANTED))" >&2; exit 1; }
	@test ! -x $(PY) || $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != ($(subst .,$(comma),$(PYTHON_WANTED))))' \
		|| { echo "make: $(VENV) is not Python $(PYTHON_WANTED); rebuilding it" >&2; rm -rf $(VENV); }
	@test -x $(PY) || $(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(PY) install --quiet --disable-pip-version-check --require-hashes --no-deps \
		-r requirements-uv.txt 2>/dev/null || { $(PY) -m ensurepip --default-pip && $(PIP) --require-hashes \
		--no-deps -r requirements-uv.txt; }
	$(UV) --compile-bytecode --require-hashes --no-deps -r requirements.lock
	$(UV) -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

# Where the shell sets PYTHONDONTWRITEBYTECODE, each Python process of the stack and the suite (the workers, the
# stacks' servers, the tools the tests run) would compile the project's own modules again, and the tools' packages
# not compiled at install, and each pytest process rewrite the test modules again (docs/testing.md has the
# figures). Every command here that runs the virtualenv's Python writes that bytecode, in __pycache__ folders:
# git ignores them and packaging copies the project without them (dev/deploy/package.py).
WRITE_BYTECODE := env -u PYTHONDONTWRITEBYTECODE

run: $(STAMP)
	$(WRITE_BYTECODE) $(PY) -m dev.stack

# Four pytest workers (pytest-xdist) on the 2-core CI machine: a worker spends much of its time waiting (on its
# moto server, the stand-in's paced answers, a rate window), and with three, two waiting at once left a core idle
# (docs/testing.md has the figures). TEST_WORKERS=0 runs in one process. Whole modules go to a worker, in the
# order collected (the end-to-end ones first): xdist's default hands each worker its first quarter of tests
# at once, and the first worker got every end-to-end test and finished minutes after the others. The modules
# that share one stack of processes go to one worker together (tests/scheduling.py), so a run starts it once.
TEST_WORKERS ?= 4
test: $(STAMP) console
	$(WRITE_BYTECODE) $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The fast tier (tests/unit: logic over plain values, no server started), what to run on every change; one
# process, in random order, as `make test` runs it. docs/testing.md has its figures.
test-fast: $(STAMP)
	$(WRITE_BYTECODE) $(PY) -m pytest tests/unit -n 0

# What the console's browser tests need: Debian's chromium and the npm packages pinned in console/package-lock.json.
console:
	console/install.sh

# Mutation testing of the modules that decide money, limits and identity (dev/mutation/);
# MODULE=chalicelib/pricing.py runs one.
mutation: $(STAMP)
	$(WRITE_BYTECODE) $(PY) -m dev.mutation $(MODULE)

package: $(STAMP)
	$(WRITE_BYTECODE) $(PY) -m dev.deploy.package --stage $(STAGE) --out $(PACKAGE_DIR)

# The dev stage through `chalice deploy --stage dev`, with a small stack of its resources (dev/deploy/dev_stage.py).
deploy-dev: $(STAMP)
	$(WRITE_BYTECODE) $(PY) -m dev.deploy.dev_stage deploy

lock: $(STAMP)
	$(WRITE_BYTECODE) $(PY) -m dev.deploy.package --lock

# The real clients the end-to-end tests run (Claude Code, the TypeScript SDK), pinned in dev/clients/.
clients:
	$(PYTHON) -m dev.clients.install

bench: $(STAMP)
	$(WRITE_BYTECODE) $(PY) -m dev.bench

budget-check: $(STAMP)
	$(WRITE_BYTECODE) $(PY) -m dev.stack.budget_check

clean:
	rm -rf $(VENV) build .pytest_cache .mutation
	find . -path ./.venv -prune -o -name __pycache__ -prune -exec rm -rf {} +
