"""The pytest side of `dev/mutation/runner.py`, loaded with `-p dev.mutation.plugin` in a pytest process it starts.

Two modes, chosen by environment variables:

- TESSERA_MUTATION_COVERAGE=<out.json> with TESSERA_MUTATION_TARGETS=<a.py,b.py>: run the suite once under
  coverage.py, switching the dynamic context to each test's node id (and emptying the targets' functools
  caches before each test), and write which tests execute each line of the target modules (context "" is
  import time), each test's duration, and the tests that failed.
- TESSERA_MUTATION_PLAN=<plan.json>: one long-lived pytest session that runs many mutants. Session fixtures
  (the moto server, the stand-in) are set up once. For each mutant, every `app` and `chalicelib` module is
  dropped from sys.modules and imported again, the mutated module's code coming from an import hook
  (nothing is written to disk), and the test modules' globals that pointed at the old objects are rebound
  to the new ones. Then only the mutant's covering tests run, one by one, stopping at the first failure;
  module-scoped fixtures are torn down after each mutant, so no state built under one mutant serves the
  next, each mutant's tests write to a table of their own, dropped after them, and what an earlier mutant
  left unfolded in the usage stream is skipped. A killing test is re-run
  once on the original code: a test that fails there too is set aside as broken and does not count as a
  kill. One JSON line per event goes to the plan's results file.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]

from dev.mutation import ops as mutation_ops  # noqa: E402

_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None))


def _forget_stream() -> None:
    """Records a mutant left in the usage stream, unfolded (an event the real fold cannot read is read again
    for ever, like Lambda's retry), must not reach the next mutant's tests or a test's re-run on the original:
    they would fail there for the earlier mutant's sake. The test stream pump skips what it has not folded."""
    pump = getattr(sys.modules.get("conftest"), "_pump", None)
    if pump is not None:
        pump.skip_unread()


def _table_for_one_mutant():
    """A table of its own for one mutant's tests, dropped after them (`table_of_its_own` in tests/conftest.py):
    in one table for a whole module, every mutant's tests added to what the next one's queries, sweeps and
    counts read, and the session's moto server grew past 1.7 GB within 45 minutes of one module."""
    conftest = sys.modules.get("conftest")
    if getattr(conftest, "_pump", None) is None:  # the session's servers are not up yet (the first mutant)
        return contextlib.nullcontext()
    return conftest.table_of_its_own("tessera-mutant")


def dotted(module: str) -> str:
    return module[:-len(".py")].replace("/", ".")


class CoverageRecorder:
    def __init__(self, out: str, targets: List[str]) -> None:
        import coverage

        self.out, self.targets = out, targets
        self.cov = coverage.Coverage(data_file=None, config_file=False, include=[str(ROOT / t) for t in targets])
        self.cov.start()
        self.durations: Dict[str, float] = {}
        self.failed: set = set()

    def clear_caches(self) -> None:
        """Empty the target modules' functools caches, so a line that runs once per process (a memoised
        hasher, say) is seen by every test that needs it, not only by the first."""
        for target in self.targets:
            module = sys.modules.get(dotted(target))
            for value in list(vars(module).values()) if module else []:
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.clear_caches()
        self.cov.switch_context(item.nodeid)
        start = time.perf_counter()
        yield
        self.durations[item.nodeid] = round(time.perf_counter() - start, 4)
        self.cov.switch_context("")

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed:
            self.failed.add(report.nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session) -> None:
        self.cov.stop()
        data = self.cov.get_data()
        lines = {}
        for target in self.targets:
            by_line = data.contexts_by_lineno(str(ROOT / target))
            lines[target] = {str(n): sorted(contexts) for n, contexts in sorted(by_line.items())}
        Path(self.out).write_text(json.dumps({"lines": lines, "durations": self.durations,
                                              "failed": sorted(self.failed)}))


class MutantFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves one module's mutated code object to the import system while `code` is set."""

    def __init__(self, name: str, path: Path) -> None:
        self.name, self.path, self.code = name, path, None

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name or self.code is None:
            return None
        return importlib.util.spec_from_file_location(fullname, self.path, loader=self)

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        exec(self.code, module.__dict__)


class MutantTimeout(BaseException):
    """Raised in the main thread when a mutant runs past its time (BaseException: tests must not catch it)."""


def _ours(name: str) -> bool:
    return name == "app" or name == "chalicelib" or name.startswith("chalicelib.")


def _test_side_modules() -> List[object]:
    """Modules whose globals may hold objects of ours: test modules, conftest, dev helpers."""
    found = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None) or ""
        if (path.startswith(str(ROOT / "tests")) or path.startswith(str(ROOT / "dev"))) \
                and not Path(path).name.startswith("mutation"):
            found.append(module)
    return found


class MutantRunner:
    def __init__(self, plan_path: str) -> None:
        plan = json.loads(Path(plan_path).read_text())
        self.module: str = plan["module"]
        self.source = (ROOT / self.module).read_text()
        self.mutants: List[dict] = plan["mutants"]
        self.results = open(plan["results"], "a", buffering=1)
        self.finder = MutantFinder(dotted(self.module), ROOT / self.module)
        sys.meta_path.insert(0, self.finder)
        self.current: Dict[str, object] = {}
        self.failure: Optional[str] = None
        self.killers: List[str] = []
        self.verified: set = set()
        self.broken: set = set()
        self.timed_out = False

    def emit(self, **event) -> None:
        self.results.write(json.dumps(event) + "\n")

    def pytest_collection_modifyitems(self, session, config, items) -> None:
        wanted = {t for m in self.mutants for t in m["tests"]}
        items[:] = [item for item in items if item.nodeid in wanted]

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed and self.failure is None:
            text = (report.longreprtext or "").strip().splitlines()
            self.failure = f"{report.when}: {text[-1] if text else 'failed'}"[:300]

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session) -> bool:
        items = {item.nodeid: item for item in session.items}
        self.current = {n: m for n, m in sys.modules.items() if _ours(n)}
        self.emit(event="ready", pid=os.getpid(), tests=len(items))
        signal.signal(signal.SIGALRM, self._on_alarm)
        for mutant in self.mutants:
            self.run_mutant(session, items, mutant)
            if self.timed_out:
                session.shouldstop = "a mutant timed out: the process starts afresh for the rest"
                break
        self.install(None)
        return True

    def _on_alarm(self, signum, frame) -> None:
        self.timed_out = True
        raise MutantTimeout()

    # -- swapping code ---------------------------------------------------------------------------------------

    def install(self, mutant: Optional[mutation_ops.Mutant]) -> None:
        """Import a fresh `app` + `chalicelib` with `mutant` applied (None: the original code)."""
        self.finder.code = (mutation_ops.mutated_code(self.source, mutant, str(ROOT / self.module))
                            if mutant else None)
        names = sorted(self.current)
        for name in [n for n in sys.modules if _ours(n)]:
            del sys.modules[name]
        fresh = {name: importlib.import_module(name) for name in names}
        fresh.update({n: m for n, m in sys.modules.items() if _ours(n)})
        self._rebind(self.current, fresh)
        self.current = fresh

    @staticmethod
    def _rebind(old: Dict[str, object], new: Dict[str, object]) -> None:
        mapping: Dict[int, object] = {}
        for name, old_module in old.items():
            new_module = new.get(name)
            if new_module is None:
                continue
            mapping[id(old_module)] = new_module
            new_vars = vars(new_module)
            for attr, value in vars(old_module).items():
                if not attr.startswith("__") and not isinstance(value, _IMMUTABLE) and attr in new_vars:
                    mapping[id(value)] = new_vars[attr]
        for module in _test_side_modules():
            namespace = vars(module)
            for attr, value in list(namespace.items()):
                replacement = mapping.get(id(value))
                if replacement is not None:
                    namespace[attr] = replacement

    # -- running tests ---------------------------------------------------------------------------------------

    def run_test(self, session, item) -> Optional[str]:
        """Run one test as pytest would; the first failure's one-line reason, or None if it passed."""
        self.failure = None
        session._setupstate.teardown_exact(item)
        # nextitem=item.parent: tear down this test's function scope only; what is wider stays for the next.
        item.ihook.pytest_runtest_protocol(item=item, nextitem=item.parent)
        return self.failure

    def reset_scopes(self, session) -> Optional[str]:
        """Tear down everything below the session (module fixtures built under a mutant)."""
        try:
            session._setupstate.teardown_exact(_SessionOnly(session))
        except Exception as error:  # a finalizer that failed under the mutant
            return f"teardown: {type(error).__name__}: {error}"[:300]
        return None

    def passes_on_original(self, session, item) -> bool:
        if item.nodeid not in self.verified:
            self.reset_scopes(session)
            _forget_stream()
            self.install(None)
            failed = self.run_test(session, item) or self.reset_scopes(session)
            if failed:
                self.broken.add(item.nodeid)
                return False
            self.verified.add(item.nodeid)
        return True

    def ordered(self, tests: List[str]) -> List[str]:
        """The last few killers first (a neighbour's killer often kills this one too), then the given order."""
        wanted = [t for t in tests if t not in self.broken]
        first = [t for t in self.killers[:3] if t in wanted]
        return first + [t for t in wanted if t not in first]

    def run_mutant(self, session, items: Dict[str, object], spec: dict) -> None:
        mutant = mutation_ops.Mutant(self.module, spec["index"], spec["op"], spec["line"], spec["end_line"],
                                     spec["col"])
        self.emit(event="start", key=mutant.key)
        _forget_stream()
        table = _table_for_one_mutant()
        table.__enter__()
        started = time.monotonic()
        status, by, detail = "survived", None, None
        signal.setitimer(signal.ITIMER_REAL, spec["timeout"])
        try:
            remaining = [t for t in self.ordered(spec["tests"]) if t in items]
            while remaining and status == "survived":
                try:
                    self.install(mutant)
                except Exception as error:
                    status, by, detail = "killed", "import", f"{type(error).__name__}: {error}"[:300]
                    # The original back at once: the import stopped half-way, with the mutant's code still
                    # the finder's, and the next import of a module of ours (the stream pump's, as the next
                    # mutant's table is set up) raised the same error and ended the worker, which counted
                    # the next mutant as crashed, never run.
                    self.install(None)
                    break
                while remaining:
                    nodeid = remaining.pop(0)
                    failure = self.run_test(session, items[nodeid])
                    if self.timed_out:
                        status, by = "timeout", nodeid
                        break
                    if failure:
                        if self.passes_on_original(session, items[nodeid]):
                            status, by, detail = "killed", nodeid, failure
                            self.killers = [nodeid] + [k for k in self.killers if k != nodeid]
                        break  # killed, or the original was re-installed to check a broken test
            if status == "survived":
                failure = self.reset_scopes(session)
                if failure:
                    status, by, detail = "killed", "teardown", failure
        except MutantTimeout:
            status = "timeout"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if not self.timed_out:  # (after a timeout the process ends, its fixtures and this table with it)
            self.reset_scopes(session)
            _forget_stream()  # nothing of this table's stream is worth folding: the table goes
            try:
                table.__exit__(None, None, None)
            except Exception:  # a fold that fails under the mutant; the table is dropped all the same
                pass
        self.emit(event="done", key=mutant.key, status=status, by=by, detail=detail,
                  seconds=round(time.monotonic() - started, 2), broken=sorted(self.broken))


class _SessionOnly:
    """A stand-in 'next item' whose only ancestor is the session: teardown_exact keeps the session scope."""

    def __init__(self, session) -> None:
        self.session = session

    def listchain(self):
        return [self.session]


# Coverage must be running before the first test module imports the target modules, so it starts here,
# at plugin import (pytest imports `-p` plugins before conftest.py and the test modules).
_recorder = (CoverageRecorder(os.environ["TESSERA_MUTATION_COVERAGE"],
                              os.environ["TESSERA_MUTATION_TARGETS"].split(","))
             if os.environ.get("TESSERA_MUTATION_COVERAGE") else None)


def pytest_configure(config) -> None:
    if _recorder is not None:
        config.pluginmanager.register(_recorder, "mutation-coverage")
    elif os.environ.get("TESSERA_MUTATION_PLAN"):
        config.pluginmanager.register(MutantRunner(os.environ["TESSERA_MUTATION_PLAN"]), "mutant-runner")
