"""How a run is ordered and shared out among `make test`'s workers (a plugin of tests/conftest.py).

pytest-randomly shuffles modules, then the tests in each; the seed is printed at the start and the end of
a run (pytest's own header, which also names it, is hidden by -q), so a failing order can be replayed with
`--randomly-seed=<seed>`; `-p no:randomly` runs in file order. tests/conftest.py then puts the end-to-end
modules first (`pytest_collection_modifyitems`).

With `--dist loadfile` (`make test`), this plugin's scheduler hands whole modules to the workers, in the
order collected, as xdist's does, except that the modules named in SHARED_STACK_MODULES go together as one
unit: they share the test process's stack of `make run`'s processes (`local_stack` in
tests/e2e/test_local_stack.py, which refuses a module not named here), so one worker runs them all and a run
starts that stack once, not once per worker. (xdist's own `loadgroup` would say this with a mark, but under
pytest 9.2 it groups nothing: it renames each marked test's `_nodeid`, which pytest no longer reads;
pytest-dev/pytest-xdist#1386, open.)
"""
from __future__ import annotations

import pytest


def _seed_line(config):
    seed = config.getoption("randomly_seed", None) if config.pluginmanager.has_plugin("randomly") else None
    if seed is None or hasattr(config, "workerinput"):
        return None
    return f"random order: --randomly-seed={seed} (replay: .venv/bin/python -m pytest --randomly-seed={seed})"


def pytest_sessionstart(session):
    line = _seed_line(session.config)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if line and reporter:
        reporter.write_line(line)


def pytest_terminal_summary(terminalreporter, config):
    line = _seed_line(config)
    if line:
        terminalreporter.write_line(line)


SHARED_STACK = "tests/e2e/shared stack"  # the unit's name: no module's path, so it cannot take in another
SHARED_STACK_MODULES = frozenset(f"tests/e2e/{name}.py" for name in (
    "test_claude_code", "test_console_browser", "test_edges_over_http", "test_local_stack", "test_local_stage",
    "test_offboarding_over_http", "test_streaming_over_http"))


def work_unit(nodeid: str) -> str:
    """The unit a test is handed out in: its module, or SHARED_STACK for the modules sharing the stack."""
    module = nodeid.split("::", 1)[0]
    return SHARED_STACK if module in SHARED_STACK_MODULES else module


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: a run without xdist (-p no:xdist) has no such hook
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModulesAndTheSharedStack(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ModulesAndTheSharedStack(config, log)
