"""dev/mutation/ops.py: which mutants a piece of code gets, and that each one is the change its name says."""
from __future__ import annotations

import ast
import os
import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

from dev.mutation import runner as mutation  # noqa: E402
from dev.mutation import ops as mutation_ops  # noqa: E402

SOURCE = '''"""A docstring is never mutated."""
LIMIT = 10


def admit(used: int, cost: int, budget: int, hard: bool = True) -> bool:
    """Nor is a function's."""
    if hard and not used + cost <= budget:
        return False
    log("admitted", level="info")
    return used * 2 >= LIMIT or cost != 0
'''


def applied(mutant):
    return ast.unparse(mutation_ops.mutated_tree(SOURCE, mutant))


def by_op(op, line=None):
    found = [m for m in mutation_ops.mutants("m.py", SOURCE) if m.op == op and line in (None, m.line)]
    assert found, op
    return found[0]


@pytest.mark.parametrize("op, line, before, after", [
    ("<= -> <", 7, "used + cost <= budget", "used + cost < budget"),
    ("<= -> >", 7, "used + cost <= budget", "used + cost > budget"),
    (">= -> >", 10, "used * 2 >= LIMIT", "used * 2 > LIMIT"),
    ("!= -> ==", 10, "cost != 0", "cost == 0"),
    ("+ -> -", 7, "used + cost", "used - cost"),
    ("drop + left term", 7, "(not used + cost <= budget)", "(not cost <= budget)"),
    ("drop + right term", 7, "(not used + cost <= budget)", "(not used <= budget)"),
    ("* -> /", 10, "used * 2", "used / 2"),
    ("10 -> 11", 2, "LIMIT = 10", "LIMIT = 11"),
    ("10 -> 0", 2, "LIMIT = 10", "LIMIT = 0"),
    ("True -> False", 5, "hard: bool=True", "hard: bool=False"),
    ("and -> or", 7, "if hard and (not used + cost <= budget)", "if hard or not used + cost <= budget"),
    ("or -> and", 10, ">= LIMIT or cost", ">= LIMIT and cost"),
    ("drop not", 7, "and (not used + cost <= budget)", "and used + cost <= budget"),
    ("return None", 10, "return used * 2 >= LIMIT or cost != 0", "return None"),
    ("drop statement", 9, "log('admitted', level='info')", "pass"),
    ("drop arg level=", 9, "log('admitted', level='info')", "log('admitted')"),
    ("str -> ''", 9, "log('admitted'", "log(''"),
])
def test_each_operator_makes_the_change_it_names(op, line, before, after):
    original, mutated = ast.unparse(ast.parse(SOURCE)), applied(by_op(op, line))
    assert before in original and after not in original
    assert after in mutated and mutated == original.replace(before, after, 1)
    assert sum(a != b for a, b in zip(original.splitlines(), mutated.splitlines())) == 1


def test_docstrings_annotations_and_imports_are_left_alone():
    ops = {(m.line, m.op) for m in mutation_ops.mutants("m.py", SOURCE)}
    assert not [o for o in ops if o[0] in (1, 6)]  # the docstrings
    assert not [o for o in ops if "int" in o[1] or "bool" in o[1]]


def test_every_mutant_has_its_own_key_and_compiles():
    found = mutation_ops.mutants("m.py", SOURCE)
    assert len({m.key for m in found}) == len(found)
    for mutant in found:
        mutation_ops.mutated_code(SOURCE, mutant, "m.py")


def kind(mutant) -> str:
    """A mutant's operator without its values: `10 -> 11` and `3 -> 4` are one kind."""
    return re.sub(r"'[^']*'|-?\d[\d.]*", "#", mutant.op)


@pytest.mark.parametrize("module", mutation.MODULES)
def test_the_listed_modules_have_mutants_with_unique_keys_and_their_files_stay_untouched(module):
    """One mutant of each kind is compiled here; a mutation run compiles every one first (`uncompilable`)."""
    path = ROOT / module
    before = path.read_bytes()
    found = mutation_ops.mutants(module, before.decode())
    for mutant in {kind(m): m for m in reversed(found)}.values():
        mutation_ops.mutated_code(before.decode(), mutant, str(path))
    assert found and len({m.key for m in found}) == len(found)
    assert path.read_bytes() == before


def test_a_mutant_that_does_not_compile_stops_the_run_before_anything_is_measured(monkeypatch):
    module = "chalicelib/plans.py"
    found = mutation_ops.mutants(module, (ROOT / module).read_text())
    bad = found[len(found) // 2]
    real = mutation.mutated_code

    def compiles_but_one(text, mutant, filename):
        if mutant.key == bad.key:
            raise SyntaxError("invalid syntax")
        return real(text, mutant, filename)

    monkeypatch.setattr(mutation, "mutated_code", compiles_but_one)
    monkeypatch.setattr(mutation, "coverage_map", lambda *args: pytest.fail("went on to measure coverage"))
    monkeypatch.setattr(mutation.signal, "signal", lambda *args: None)  # main's SIGTERM handler, not this process's
    with pytest.raises(SystemExit) as stopped:
        mutation.main([module])
    assert str(stopped.value).splitlines()[1:] == [f"  {bad.key}: SyntaxError: invalid syntax"]


def test_every_equivalent_mutant_listed_is_a_real_mutant():
    keys = {m.key for module in mutation.MODULES for m in mutation_ops.mutants(module, (ROOT / module).read_text())}
    assert set(mutation.load_equivalents()) <= keys


def test_a_mutant_listed_as_equivalent_twice_is_refused(tmp_path, monkeypatch):
    listed = tmp_path / "equivalent.txt"
    listed.write_text("a.py:3:4:0 -> 1: one reason\na.py:3:4:0 -> 1: another\n")
    monkeypatch.setattr(mutation, "EQUIVALENT_FILE", listed)
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    with pytest.raises(SystemExit, match="lists a.py:3:4:0 -> 1 twice"):
        mutation.load_equivalents()


def test_a_line_run_at_import_is_covered_by_every_test_of_the_module():
    mutant = mutation_ops.Mutant("m.py", 0, "10 -> 11", 2, 2, 8)
    lines = {"2": [""], "7": ["t::a"], "10": ["t::b"]}
    assert mutation.covering_tests(mutant, lines, {"t::a", "t::b"}) == {"t::a", "t::b"}
    inside = mutation_ops.Mutant("m.py", 0, "* -> /", 10, 10, 11)
    assert mutation.covering_tests(inside, lines, {"t::a", "t::b"}) == {"t::b"}


def test_tests_run_fastest_first_with_each_files_tests_together():
    durations = {"a.py::slow": 5.0, "a.py::fast": 0.1, "b.py::one": 0.5, "b.py::two": 0.2}
    assert mutation.schedule(set(durations), durations) == ["a.py::fast", "a.py::slow", "b.py::two", "b.py::one"]


def test_a_stopped_run_resumes_only_where_nothing_it_depends_on_changed(tmp_path):
    coverage = {"code": "c1", "files": {"t.py": "d1", "u.py": "d2"}}
    spec = {"key": "m.py:7:4:<= -> <", "timeout": 61.5, "tests": ["t.py::a", "t.py::b"]}
    slow = {**spec, "key": "m.py:7:4:<= -> >"}
    journal = mutation.Journal(tmp_path / "m.journal.jsonl", coverage)
    journal.append(spec, {"status": "killed", "by": "t.py::b"})
    with open(journal.path, "a") as out:
        out.write('{"stamp": "cut short')  # the run was stopped mid-line
    journal.append(slow, {"status": "timeout"})  # on a line of its own, after the cut one
    assert journal.load() == {journal.stamp(spec): {"status": "killed", "by": "t.py::b"},
                              journal.stamp(slow): {"status": "timeout"}}
    # A timeout may be the machine's load, not the mutant: it runs again.
    assert journal.reusable([spec, slow]) == {spec["key"]: {"status": "killed", "by": "t.py::b"}}
    changed = [
        mutation.Journal(journal.path, {**coverage, "code": "c2"}).stamp(spec),  # the code changed
        mutation.Journal(journal.path, {**coverage, "files": {"t.py": "d3", "u.py": "d2"}}).stamp(spec),  # a test
        mutation.Journal(journal.path, {**coverage, "files": {"t.py": "d1", "u.py": "d9"}}).stamp(spec),  # a helper
        journal.stamp({**spec, "tests": ["t.py::b", "t.py::a"]}),  # the tests or their order
        journal.stamp({**spec, "timeout": 90.0}),  # the time budget
        journal.stamp(slow),  # another mutant
    ]
    assert len(set(changed) | {journal.stamp(spec)}) == 7
    assert mutation.Journal(journal.path, dict(coverage)).stamp(spec) == journal.stamp(spec)
    journal.clear()
    assert journal.load() == {} and journal.reusable([spec]) == {}


def test_a_shard_is_k_of_n_and_what_other_shards_run_is_not_scored():
    assert mutation._shard("2/3") == (2, 3)
    for bad in ("0/2", "3/2", "1", "a/b", "1/0"):
        with pytest.raises(Exception):
            mutation._shard(bad)
    shards = [{i for i in range(10) if mutation.in_shard(i, (k, 3))} for k in (1, 2, 3)]
    assert shards == [{0, 3, 6, 9}, {1, 4, 7}, {2, 5, 8}]  # every mutant in exactly one
    mutant = mutation_ops.Mutant("m.py", 0, "* -> /", 10, 10, 11)
    outcomes = [mutation.Outcome(mutant, status) for status in ("killed", "killed", "survived", "pending", "pending")]
    row = mutation.summary("m.py", outcomes, 1.0)
    assert (row["pending"], row["score"]) == (2, 100.0 * 2 / 3)


def test_docs_list_every_equivalent_mutant_of_the_metering_bound_and_budget_modules():
    """docs/testing.md copies these entries of dev/mutation/equivalent.txt into a table: they must not drift."""
    docs = (ROOT / "docs" / "testing.md").read_text()
    for key in mutation.load_equivalents():
        module, line, col, op = key.split(":", 3)
        if module.startswith(("chalicelib/metering", "chalicelib/ai", "chalicelib/jobs")):
            short = module.replace("chalicelib/", "")
            assert f"| `{short}:{line}:{col}` | `{op.replace('|', chr(92) + '|')}` |" in docs, key


def test_a_worker_gets_its_own_mode_and_not_one_it_inherits(monkeypatch):
    monkeypatch.setenv("TESSERA_MUTATION_COVERAGE", "/tmp/out.json")
    monkeypatch.setenv("TESSERA_MUTATION_TARGETS", "chalicelib/plans.py")
    environment = mutation._environment(TESSERA_MUTATION_PLAN="/tmp/plan.json")
    assert environment["TESSERA_MUTATION_PLAN"] == "/tmp/plan.json"
    assert "TESSERA_MUTATION_COVERAGE" not in environment and "TESSERA_MUTATION_TARGETS" not in environment
    assert environment["PATH"] == os.environ["PATH"]


def breaks_its_import(module: str, mutant) -> bool:
    """Whether the module's code with `mutant` applied raises as it is imported (a required argument of a
    module-level call dropped, say)."""
    code = mutation_ops.mutated_code((ROOT / module).read_text(), mutant, str(ROOT / module))
    probe = types.ModuleType("mutant_probe")
    sys.modules[probe.__name__] = probe  # where dataclasses look up the module of a class
    try:
        exec(code, probe.__dict__)
    except Exception:
        return True
    finally:
        del sys.modules[probe.__name__]
    return False


def test_a_mutant_killed_at_import_leaves_the_next_one_to_run(tmp_path, monkeypatch):
    """The worker puts the original code back after a mutant that fails to import: the next mutant's table
    is set up through the stream pump, which imports plans.py, and with the failed mutant's code still in
    place that import ended the worker and the next mutant counted as crashed, never run."""
    module = "chalicelib/plans.py"
    found = mutation_ops.mutants(module, (ROOT / module).read_text())
    at_import = next(m for m in found if breaks_its_import(module, m))
    before, after = [m for m in found if m.op == "drop statement" and not breaks_its_import(module, m)][:2]
    # A test outside the fast tier: the first mutant's run starts the session's servers and the stream pump.
    test = "tests/integration/test_limits.py::test_a_new_tenant_gets_the_free_plans_numbers"
    specs = [mutation.spec_of(m, n, [test], 300.0) for n, m in enumerate([before, at_import, after])]
    monkeypatch.setattr(mutation, "STATE", tmp_path)
    journal = mutation.Journal(tmp_path / "plans.journal.jsonl", {"code": "c", "files": {}})
    results = mutation.run_mutants(module, specs, tmp_path / "plans.log", journal)
    assert (results[at_import.key]["status"], results[at_import.key]["by"]) == ("killed", "import")
    assert results[after.key]["status"] in ("killed", "survived"), results[after.key]
    assert results[after.key].get("seconds", 0) > 0
