"""How a run is shared among workers: the modules that share one stack go to a worker together, every other
module alone (tests/scheduling.py); each worker draws months of its own (own_month, tests/conftest.py)."""
from __future__ import annotations

import ast
from pathlib import Path

import conftest
import pytest
import scheduling

from chalicelib.periods import parse_period

ROOT = Path(__file__).resolve().parents[2]


def test_the_scheduler_is_a_plugin_of_the_suite(pytestconfig):
    """Loaded by tests/conftest.py (`pytest_plugins`), so `make test`'s xdist asks it for the scheduler."""
    assert pytestconfig.pluginmanager.get_plugin("scheduling") is scheduling
    if pytestconfig.pluginmanager.has_plugin("xdist"):
        implementations = pytestconfig.hook.pytest_xdist_make_scheduler.get_hookimpls()
        assert scheduling.pytest_xdist_make_scheduler in [hook.function for hook in implementations]


def test_the_modules_sharing_the_stack_are_one_unit_and_every_other_module_its_own(monkeypatch, pytestconfig):
    monkeypatch.setattr(pytestconfig.option, "dist", "loadfile", raising=False)  # also under -p no:xdist
    monkeypatch.setattr(pytestconfig.option, "tx", ["3*popen"], raising=False)
    scheduler = scheduling.pytest_xdist_make_scheduler(pytestconfig, None)
    units = {scheduler._split_scope(f"{module}::test_a[x@y]") for module in scheduling.SHARED_STACK_MODULES}
    assert units == {scheduling.SHARED_STACK}
    assert scheduler._split_scope("tests/e2e/test_contract_fuzz.py::test_b") == "tests/e2e/test_contract_fuzz.py"
    assert scheduler._split_scope("tests/unit/test_plans.py::test_c[a::b]") == "tests/unit/test_plans.py"


def test_another_distribution_is_left_to_xdist(monkeypatch, pytestconfig):
    monkeypatch.setattr(pytestconfig.option, "dist", "load", raising=False)
    assert scheduling.pytest_xdist_make_scheduler(pytestconfig, None) is None


def uses_the_shared_stack(path: Path) -> bool:
    """Whether a module takes `local_stack` from tests/e2e/test_local_stack.py (or is that module)."""
    if path.name == "test_local_stack.py":
        return True
    return any(isinstance(node, ast.ImportFrom) and node.module == "test_local_stack"
               and "local_stack" in {alias.name for alias in node.names}
               for node in ast.walk(ast.parse(path.read_text())))


def test_the_modules_named_as_sharing_the_stack_are_those_that_use_it():
    """The fixture refuses a module not named; a name left after its module stopped sharing is caught here."""
    using = {path.relative_to(ROOT).as_posix() for path in (ROOT / "tests" / "e2e").glob("test_*.py")
             if uses_the_shared_stack(path)}
    assert using == scheduling.SHARED_STACK_MODULES


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 5, 8, 16])
def test_each_workers_own_months_are_its_alone_and_periods_the_api_accepts(workers, monkeypatch):
    """Four workers once drew months in the 3100s, which the console's month totals refuse as a period."""
    blocks = [conftest.month_block(worker, workers) for worker in range(workers)]
    assert all(len(block) // 2 >= 300 for block in blocks)  # what a process is sure to draw: from its first half on
    assert all(earlier.stop <= later.start for earlier, later in zip(blocks, blocks[1:]))
    for index in (blocks[0][0], blocks[-1][-1]):
        month = conftest.month_at(index).strftime("%Y-%m")
        assert parse_period(month) == month and month >= "2100-01"
    # As a worker starts: the last of `workers`, and one that xdist starts in place of a crashed one (the next id).
    for worker, block in ((workers - 1, blocks[-1]), (workers, blocks[0])):
        monkeypatch.setattr(conftest, "_months", None)
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{worker}")
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(workers))
        drawn = [conftest.own_month() for _ in range(3)]
        assert len(set(drawn)) == 3
        assert all(conftest.month_at(block[0]) <= month < conftest.month_at(block[-1]) for month in drawn)
