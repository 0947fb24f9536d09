"""Mutation testing: does the suite fail when the code that decides money, limits and identity is changed?

    make mutation                                   # every module in MODULES
    make mutation MODULE=chalicelib/pricing.py      # one module (several: space-separated)
    .venv/bin/python -m dev.mutation --list chalicelib/plans.py   # the mutants and their tests, nothing run

Per module: the mutants come from `dev/mutation/ops.py` (an AST walk; nothing is written to a source
file). Which tests execute each line is measured once per state of the code with coverage.py (one pytest
run over the suite, minus the end-to-end tests, with each test's node id as the dynamic context) and cached
in .mutation/. A line that runs at import time (module-level data, a default argument, a decorator) is
covered by every test that covers any line of the module, and by the tests in files that import it or are
named for it in READERS. Each mutant then runs only its covering tests,
fastest first, stopping at the first failure, in one long-lived pytest process per module (see
`dev/mutation/plugin.py`): the moto server starts once, not once per mutant. Each mutant has a time budget
(`--timeout` seconds plus `--factor` times its tests' measured duration); one past it is stopped and
counted as a timeout, and the process starts afresh for the rest.

Every result is also appended to a journal in .mutation/ as soon as it is known, stamped with the state of
the code, of the runner and of every test file, and with the mutant's tests: a run that is stopped (Ctrl-C,
a lost machine) and started again skips the mutants killed or survived under an unchanged stamp (timeouts
and crashes run again) and reports their earlier results (`--fresh` runs them all again). `--shard K/N` runs
only every Nth mutant (those whose position in the module's list is K-1 modulo N), so N working copies (or
machines) at the same commit, each with a copy of the coverage cache, share a module; appending their
journals to one another's and running once more without `--shard` reports the whole module without running
anything again.

Score = (killed + timeouts) / (mutants - equivalent - those left to other shards). Equivalent mutants (no
test can tell them from the original) are listed in dev/mutation/equivalent.txt as
`module:line:col:operator: reason`; they are left out of the score and reported. A line there that matches
no mutant is reported as stale.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

ROOT = Path(__file__).resolve().parents[2]

from dev.mutation.ops import Mutant, mutants, mutated_code  # noqa: E402
from dev.mutation.plugin import dotted  # noqa: E402

MODULES = [
    "chalicelib/pricing.py",
    "chalicelib/plans.py",
    "chalicelib/periods.py",
    "chalicelib/identity/tokens.py",
    "chalicelib/identity/resolve.py",
    "chalicelib/identity/apikeys.py",
    "chalicelib/identity/passwords.py",
    "chalicelib/ai/bounds.py",
    "chalicelib/metering/limits.py",
    "chalicelib/metering/admission.py",
    "chalicelib/metering/ledger.py",
    "chalicelib/metering/usage.py",
    "chalicelib/metering/aggregator.py",
    "chalicelib/metering/sweeper.py",
    "chalicelib/jobs/budget_check.py",
]
# Test files that exercise a module's module-level data through another module without importing it or
# running a line of it: they count among the tests of its import-time lines (see `covering_tests`).
READERS = {
    # The password length limits are enforced by tenants.py and users.py when a sign-up or a user is refused.
    "chalicelib/identity/passwords.py": ["tests/api/test_signup.py", "tests/api/test_users.py"],
}
EQUIVALENT_FILE = ROOT / "dev" / "mutation" / "equivalent.txt"
STATE = ROOT / ".mutation"
# What a mutant is and how it is judged; the plugin, which measures coverage, is not among them.
RUNNER_FILES = [ROOT / "dev" / "mutation" / name for name in ("runner.py", "ops.py")]
GRACE_SECONDS = 60.0
KILLED = ("killed", "timeout", "crashed")


@dataclass
class Outcome:
    mutant: Mutant
    status: str            # killed | timeout | crashed | survived | uncovered | equivalent | pending
    tests: int = 0
    by: Optional[str] = None
    detail: Optional[str] = None
    seconds: float = 0.0
    reason: Optional[str] = None


# -- coverage ------------------------------------------------------------------------------------------------

def _test_files() -> List[Path]:
    return sorted((ROOT / "tests").rglob("test_*.py"))


def _digest(paths: List[Path], extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _code_fingerprint(targets: List[str]) -> str:
    """Everything but the test modules: a change here means measuring every test again."""
    tests = set(_test_files())
    files = [ROOT / "app.py", ROOT / "pytest.ini", ROOT / "requirements-dev.txt"]
    for folder in ("chalicelib", "tests", "dev"):
        files += [p for p in sorted((ROOT / folder).rglob("*.py")) if p not in tests]
    # The runner's own files do not change what a test covers; the plugin, which measures it, does.
    measured = [p for p in files if p not in RUNNER_FILES]
    return _digest(measured, "\n".join(sorted(targets)))


def _pytest_command(*extra: str) -> List[str]:
    return [sys.executable, "-m", "pytest", "-p", "dev.mutation.plugin", "-p", "no:randomly", "-p", "no:xdist",
            "--tb=line", *extra]


# The plugin's modes: a worker gets its own only, never one it inherits (the runner's own tests start a
# worker, and under the coverage run that worker measured coverage instead of running its plan).
_MODES = ("TESSERA_MUTATION_COVERAGE", "TESSERA_MUTATION_TARGETS", "TESSERA_MUTATION_PLAN")


def _environment(**variables: str) -> Dict[str, str]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    inherited = {name: value for name, value in os.environ.items() if name not in _MODES}
    return {**inherited, "PYTHONPATH": path, **variables}


def _measure(targets: List[str], paths: List[str]) -> dict:
    out = STATE / "coverage-raw.json"
    with open(STATE / "coverage.log", "w") as log:
        process = subprocess.Popen(_pytest_command("-m", "not e2e", *paths), cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   env=_environment(TESSERA_MUTATION_COVERAGE=str(out),
                                                    TESSERA_MUTATION_TARGETS=",".join(targets)))
        returncode = _wait(process)
    if not out.exists():
        raise SystemExit(f"the coverage run wrote nothing (exit {returncode}); see .mutation/coverage.log")
    data = json.loads(out.read_text())
    out.unlink()
    return data


def coverage_map(targets: List[str], refresh: bool) -> dict:
    """Which tests execute each line of `targets`: measured once, cached, and when only test modules changed,
    measured again for those modules alone."""
    STATE.mkdir(exist_ok=True)
    cache = STATE / "coverage.json"
    code = _code_fingerprint(targets)
    files = {str(p.relative_to(ROOT)): _digest([p]) for p in _test_files()}
    data = json.loads(cache.read_text()) if cache.exists() and not refresh else {}
    if data.get("code") != code:
        data = {"code": code, "files": {}, "lines": {t: {} for t in targets}, "durations": {}, "failed": []}
    stale = {f for f in set(files) | set(data["files"]) if files.get(f) != data["files"].get(f)}
    if not stale:
        return data
    started = time.monotonic()
    print(f"measuring per-test coverage of {len(targets)} modules over {len(stale & set(files))} test files "
          f"(cached in .mutation/)", flush=True)
    fresh = _measure(targets, sorted(stale & set(files))) if stale & set(files) else \
        {"lines": {}, "durations": {}, "failed": []}
    kept = lambda nodeid: nodeid.split("::")[0] not in stale  # noqa: E731
    for target in targets:
        merged = {line: {c for c in contexts if not c or kept(c)} for line, contexts in data["lines"][target].items()}
        for line, contexts in fresh["lines"].get(target, {}).items():
            merged.setdefault(line, set()).update(contexts)
        data["lines"][target] = {line: sorted(contexts) for line, contexts in merged.items() if contexts}
    data["durations"] = {**{k: v for k, v in data["durations"].items() if kept(k)}, **fresh["durations"]}
    data["failed"] = sorted({f for f in data["failed"] if kept(f)} | set(fresh["failed"]))
    data["files"] = files
    if fresh["failed"]:
        print(f"  {len(fresh['failed'])} tests failed in the coverage run and are not used: "
              f"{', '.join(fresh['failed'][:5])}", flush=True)
    cache.write_text(json.dumps(data))
    print(f"  done in {time.monotonic() - started:.0f} s", flush=True)
    return data


def covering_tests(mutant: Mutant, lines: Dict[str, List[str]], module_wide: Set[str]) -> Set[str]:
    tests: Set[str] = set()
    for line in range(mutant.line, mutant.end_line + 1):
        contexts = lines.get(str(line), [])
        if "" in contexts:  # runs at import: any test that uses the module may notice
            tests |= module_wide
        tests.update(c for c in contexts if c)
    return tests


def importing_tests(module: str, durations: Dict[str, float]) -> Set[str]:
    """Tests in files that import `module` by name (they may read its data, a price table say, without running
    any of its lines) and in its READERS: they count among the tests of its import-time lines."""
    package, _, name = dotted(module).rpartition(".")
    pattern = re.compile(rf"(\bimport\s+{re.escape(package)}\.{name}\b|\bfrom\s+{re.escape(package)}\.{name}\s+import"
                         rf"|\bfrom\s+{re.escape(package)}\s+import\s+[^\n]*\b{name}\b)")
    files = {str(p.relative_to(ROOT)) for p in _test_files() if pattern.search(p.read_text())}
    files.update(READERS.get(module, []))
    return {t for t in durations if t.split("::")[0] in files}


def schedule(tests: Set[str], durations: Dict[str, float]) -> List[str]:
    """Fast tests first, but each test file's tests together: switching files tears down and rebuilds the
    file's module-scoped fixtures (a sign-up or two each time)."""
    def file_of(test: str) -> str:
        return test.split("::")[0]

    fastest: Dict[str, float] = {}
    for test in tests:
        fastest[file_of(test)] = min(fastest.get(file_of(test), float("inf")), durations.get(test, 0.0))
    return sorted(tests, key=lambda t: (fastest[file_of(t)], file_of(t), durations.get(t, 0.0), t))


# -- equivalent mutants --------------------------------------------------------------------------------------

def load_equivalents() -> Dict[str, str]:
    found = {}
    if EQUIVALENT_FILE.exists():
        for raw in EQUIVALENT_FILE.read_text().splitlines():
            if raw.strip() and not raw.lstrip().startswith("#"):
                module, line, col, op, reason = raw.split(":", 4)
                key = f"{module.strip()}:{line.strip()}:{col.strip()}:{op.strip()}"
                if key in found:  # a second reason for one mutant: one of the two names a line that moved
                    raise SystemExit(f"{EQUIVALENT_FILE.relative_to(ROOT)} lists {key} twice")
                found[key] = reason.strip()
    return found


# -- running a module ----------------------------------------------------------------------------------------

def _descendants(pid: int) -> List[int]:
    children: Dict[int, List[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _stop(process: subprocess.Popen) -> None:
    """Stop a worker and what it started (the moto server runs in its own process group)."""
    started_by_it = _descendants(process.pid)
    for pid in [process.pid] + started_by_it:
        try:
            os.killpg(pid, signal.SIGKILL) if pid == process.pid else os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    process.wait()


def _wait(process: subprocess.Popen) -> int:
    """Wait for a worker; if we are interrupted (Ctrl-C, SIGTERM), stop it and what it started first."""
    try:
        return process.wait()
    except BaseException:
        _stop(process)
        raise


class Journal:
    """The results of one module's mutants, appended as they come: a stopped run resumes from it.

    A result is reused only when its stamp matches: the code fingerprint the coverage was measured for (which
    covers every non-test file, the mutated module included), the runner's own files (what a mutant is and
    how it is judged), the mutant, its tests in order, the contents of every test file (a test may import
    helpers from another's) and its time budget. Timeouts and crashed workers are never reused: a loaded
    machine or a killed worker can cause either."""

    REUSED = ("killed", "survived")

    def __init__(self, path: Path, coverage: dict):
        runner = _digest(RUNNER_FILES)
        tests = "\n".join(f"{name}={digest}" for name, digest in sorted(coverage["files"].items()))
        self.path, self.state = path, "\n".join([coverage["code"], runner, tests])

    def stamp(self, spec: dict) -> str:
        parts = [self.state, spec["key"], str(spec["timeout"]), *spec["tests"]]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def reusable(self, specs: List[dict]) -> Dict[str, dict]:
        """key -> the earlier result of each of `specs` that was run on this same state."""
        earlier = self.load()
        found = {s["key"]: earlier.get(self.stamp(s)) for s in specs}
        return {key: result for key, result in found.items() if result and result["status"] in self.REUSED}

    def load(self) -> Dict[str, dict]:
        found: Dict[str, dict] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:  # a line cut short when the run was stopped
                    continue
                found[entry["stamp"]] = entry["result"]
        return found

    def append(self, spec: dict, result: dict) -> None:
        cut_short = False  # a run stopped mid-line: start on a line of our own
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb") as journal:
                journal.seek(-1, os.SEEK_END)
                cut_short = journal.read(1) != b"\n"
        with open(self.path, "a") as out:
            out.write(("\n" if cut_short else "") + json.dumps({"stamp": self.stamp(spec), "result": result}) + "\n")

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def run_mutants(module: str, specs: List[dict], log_path: Path, journal: Journal) -> Dict[str, dict]:
    """Run `specs` in as few worker processes as timeouts allow; key -> the worker's `done` event. Each result
    goes to `journal` as soon as it is known."""
    by_key = {spec["key"]: spec for spec in specs}

    class Results(dict):
        def __setitem__(self, key: str, result: dict) -> None:
            super().__setitem__(key, result)
            journal.append(by_key[key], result)

    results: Dict[str, dict] = Results()
    pending = list(specs)
    files = sorted({t.split("::")[0] for spec in specs for t in spec["tests"]})
    plan, results_path = STATE / f"plan-{os.getpid()}.json", STATE / f"results-{os.getpid()}.jsonl"
    with open(log_path, "w") as log:
        while pending:
            results_path.write_text("")
            plan.write_text(json.dumps({"module": module, "mutants": pending, "results": str(results_path)}))
            process = subprocess.Popen(_pytest_command(*files), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                       env=_environment(TESSERA_MUTATION_PLAN=str(plan)), start_new_session=True)
            budget = {s["key"]: s["timeout"] for s in pending}
            progressed = False
            try:
                progressed = _watch(process, results_path, budget, results)
            except BaseException:
                _stop(process)
                raise
            pending = [s for s in pending if s["key"] not in results]
            if pending and not progressed:
                raise SystemExit(f"the mutation worker for {module} stopped without running a mutant; see {log_path}")
    plan.unlink(missing_ok=True)
    results_path.unlink(missing_ok=True)
    return results


def _watch(process: subprocess.Popen, results_path: Path, budget: Dict[str, float], results: Dict[str, dict]) -> bool:
    """Follow a worker's events until it exits or a mutant overruns its budget; whether any mutant finished."""
    state = {"current": None, "since": 0.0, "seen": 0, "progressed": False}

    def read_events() -> None:
        lines = results_path.read_text().splitlines()
        for line in lines[state["seen"]:]:
            event = json.loads(line)
            if event["event"] == "start":
                state.update(current=event["key"], since=time.monotonic())
            elif event["event"] == "done":
                results[event["key"]] = event
                state.update(current=None, progressed=True)
        state["seen"] = len(lines)

    while True:
        exited = process.poll() is not None
        read_events()
        current = state["current"]
        if exited:
            if current:
                results[current] = {"status": "crashed", "detail": f"worker exit {process.returncode}"}
                return True
            return state["progressed"]
        if current and time.monotonic() - state["since"] > budget[current] + GRACE_SECONDS:
            _stop(process)
            results[current] = {"status": "timeout", "seconds": budget[current] + GRACE_SECONDS}
            return True
        time.sleep(0.2)


def spec_of(mutant: Mutant, position: int, tests: List[str], timeout: float) -> dict:
    """What the worker is handed for one mutant (and the journal stamps): the mutant, its place in the
    module's list, its covering tests in the order they run, and its time budget in seconds."""
    return {"key": mutant.key, "index": mutant.index, "position": position, "op": mutant.op, "line": mutant.line,
            "end_line": mutant.end_line, "col": mutant.col, "tests": tests, "timeout": timeout}


def uncompilable(modules: List[str]) -> List[str]:
    """The mutants of `modules` that do not compile, each with its error. A worker would count such a mutant
    killed at import, so a run refuses them (`main`, before anything is measured) instead of scoring them."""
    problems = []
    for module in modules:
        source = (ROOT / module).read_text()
        for mutant in mutants(module, source):
            try:
                mutated_code(source, mutant, str(ROOT / module))
            except (SyntaxError, ValueError, TypeError, LookupError) as error:
                problems.append(f"{mutant.key}: {type(error).__name__}: {error}")
    return problems


def run_module(module: str, coverage: dict, equivalents: Dict[str, str], args) -> List[Outcome]:
    source = (ROOT / module).read_text()
    found = mutants(module, source)
    lines = coverage["lines"].get(module, {})
    failed = set(coverage["failed"])
    durations = coverage["durations"]
    module_wide = {c for contexts in lines.values() for c in contexts if c} | importing_tests(module, durations)
    module_wide -= failed
    outcomes: Dict[str, Outcome] = {}
    specs = []
    for position, mutant in enumerate(found):
        if mutant.key in equivalents:
            outcomes[mutant.key] = Outcome(mutant, "equivalent", reason=equivalents[mutant.key])
            continue
        tests = schedule(covering_tests(mutant, lines, module_wide) - failed, durations)
        if not tests:
            outcomes[mutant.key] = Outcome(mutant, "uncovered")
            continue
        outcomes[mutant.key] = Outcome(mutant, "pending", tests=len(tests))
        specs.append(spec_of(mutant, position, tests,
                             round(args.timeout + args.factor * sum(durations.get(t, 0) for t in tests), 1)))
    if args.list:
        for outcome in outcomes.values():
            print(f"{outcome.mutant.key}  [{outcome.status}, {outcome.tests} tests]")
        return list(outcomes.values())
    slug = module.replace("/", "_")
    journal = Journal(STATE / f"{slug}.journal.jsonl", coverage)
    if args.fresh:
        journal.clear()
    results = journal.reusable(specs)
    if results:
        print(f"{module}: {len(results)} of {len(specs)} mutants already run on this code (journal in .mutation/; "
              f"--fresh runs them again)", flush=True)
    todo = [s for s in specs if s["key"] not in results]
    if args.shard:
        number, shards = args.shard
        todo = [s for s in todo if in_shard(s["position"], args.shard)]
        slug += f".shard-{number}-of-{shards}"
    if todo:
        results.update(run_mutants(module, todo, STATE / f"{slug}.log", journal))
    for key, event in results.items():
        outcome = outcomes[key]
        outcome.status, outcome.by, outcome.detail = event["status"], event.get("by"), event.get("detail")
        outcome.seconds = event.get("seconds", 0.0)
    (STATE / f"{slug}.json").write_text(json.dumps(
        [{**vars(o), "mutant": o.mutant.key} for o in outcomes.values()], indent=1))
    return list(outcomes.values())


# -- report --------------------------------------------------------------------------------------------------

def summary(module: str, outcomes: List[Outcome], seconds: float) -> dict:
    count = {s: sum(1 for o in outcomes if o.status == s)
             for s in ("killed", "timeout", "crashed", "survived", "uncovered", "equivalent", "pending")}
    scored = len(outcomes) - count["equivalent"] - count["pending"]  # pending: left to another shard
    detected = count["killed"] + count["timeout"] + count["crashed"]
    score = 100.0 * detected / scored if scored else 100.0
    return {"module": module, "mutants": len(outcomes), **count, "score": score, "seconds": seconds}


def print_module(module: str, outcomes: List[Outcome], row: dict) -> None:
    source = (ROOT / module).read_text().splitlines()
    print(f"\n{module}: {row['mutants']} mutants, {row['killed']} killed, {row['timeout']} timeouts, "
          f"{row['crashed']} crashed, {row['survived']} survived, {row['uncovered']} not covered, "
          f"{row['equivalent']} equivalent -> score {row['score']:.1f} % ({row['seconds']:.0f} s)"
          + (f"; {row['pending']} left to other shards, not scored" if row["pending"] else ""))
    for outcome in sorted(outcomes, key=lambda o: (o.mutant.line, o.mutant.col)):
        m = outcome.mutant
        if outcome.status in ("survived", "uncovered", "timeout", "crashed"):
            note = {"survived": f"survived {outcome.tests} tests", "uncovered": "no test runs this line"}.get(
                outcome.status, outcome.status)
            print(f"  {m.line}:{m.col}  {m.op:<24} {note:<22} | {source[m.line - 1].strip()[:90]}")


def in_shard(position: int, shard: Tuple[int, int]) -> bool:
    number, shards = shard
    return position % shards == number - 1


def _shard(text: str) -> Tuple[int, int]:
    number, _, shards = text.partition("/")
    if not (number.isdigit() and shards.isdigit() and 1 <= int(number) <= int(shards)):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, e.g. 1/2; not {text!r}")
    return int(number), int(shards)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"modules to mutate (default: {len(MODULES)} listed in MODULES)")
    parser.add_argument("--list", action="store_true", help="list the mutants and their covering tests only")
    parser.add_argument("--refresh-coverage", action="store_true", help="measure coverage again even if cached")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds every mutant may take (plus --factor)")
    parser.add_argument("--factor", type=float, default=3.0, help="times its tests' measured duration")
    parser.add_argument("--fresh", action="store_true", help="run every mutant again, ignoring earlier results")
    parser.add_argument("--shard", type=_shard, default=None, metavar="K/N",
                        help="run only the mutants whose position is K-1 modulo N (see the module's docstring)")
    parser.add_argument("--fail-under", type=float, default=None, help="exit 1 if a module scores below this")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the workers are stopped on the way out
    selected = [m[2:] if m.startswith("./") else m for m in (args.modules or MODULES)]
    unknown = [m for m in selected if not (ROOT / m).is_file()]
    if unknown:
        parser.error(f"no such module: {', '.join(unknown)}")
    invalid = uncompilable(selected)
    if invalid:
        raise SystemExit("dev/mutation/ops.py made mutants that do not compile:\n  " + "\n  ".join(invalid))
    targets = sorted(set(MODULES) | set(selected))
    coverage = coverage_map(targets, args.refresh_coverage)
    equivalents = load_equivalents()
    keys: Set[str] = set()
    rows = []
    for module in selected:
        started = time.monotonic()
        outcomes = run_module(module, coverage, equivalents, args)
        keys.update(o.mutant.key for o in outcomes)
        if not args.list:
            rows.append(summary(module, outcomes, time.monotonic() - started))
            print_module(module, outcomes, rows[-1])
    stale = [k for k in equivalents if k.split(":", 1)[0] in selected and k not in keys]
    for key in stale:
        print(f"stale entry in {EQUIVALENT_FILE.relative_to(ROOT)} (no such mutant): {key}")
    if rows:
        print("\n| module | mutants | killed | timeouts | equivalent | survived | not covered | score | time |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| `{r['module']}` | {r['mutants']} | {r['killed']} | {r['timeout'] + r['crashed']} | "
                  f"{r['equivalent']} | {r['survived']} | {r['uncovered']} | {r['score']:.1f} % | "
                  f"{r['seconds']:.0f} s |")
    if args.fail_under is not None and any(r["score"] < args.fail_under for r in rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
