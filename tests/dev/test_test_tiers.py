"""The fast tier (tests/unit) starts nothing: no moto, no stand-in, no stream pump. A test placed there that asks
for a server stops the run before anything starts, naming the test and where it belongs.

Each check runs pytest in a child process over a copy of the suite's conftest (and the modules beside it) with one probe
test in its unit/ folder, so what that session starts (or refuses) is the child's own, whatever this session runs
beside it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

NOTHING_BESIDE = '''
import os
import threading


def children():
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                    found.append(pid)
        except OSError:  # gone meanwhile
            pass
    return found


def test_nothing_runs_beside_the_test():
    assert children() == [], "the fast tier started a process"
    threads = {t.name for t in threading.enumerate()}
    assert not threads & {"anthropic-standin", "usage-stream"}, threads


def test_the_settings_are_the_local_stages_with_the_test_keyrings():
    from chalicelib.settings import get_settings

    assert get_settings().stage == "local" and os.environ["TESSERA_JWT_SECRET"].startswith("test-jwt-secret-")
'''

ASKS_FOR_MOTO = '''
def test_reads_the_table(moto_server):
    assert moto_server
'''


def run_fast_tier(tmp_path: Path, probe: str) -> subprocess.CompletedProcess:
    unit = tmp_path / "tests" / "unit"
    unit.mkdir(parents=True)
    shutil.copy(ROOT / "pytest.ini", tmp_path / "pytest.ini")  # the project's options and plugins
    for helper in (ROOT / "tests").glob("*.py"):  # the conftest and the modules beside it that it loads
        shutil.copy(helper, tmp_path / "tests" / helper.name)
    (unit / "test_probe.py").write_text(textwrap.dedent(probe))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}  # not a worker of this session
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "pytest", str(unit), "-n", "0", "-p", "no:randomly"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_a_session_of_the_fast_tier_alone_starts_no_server(tmp_path):
    result = run_fast_tier(tmp_path, NOTHING_BESIDE)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 passed" in result.stdout


def test_a_fast_tier_test_asking_for_a_server_stops_the_run_naming_it(tmp_path):
    result = run_fast_tier(tmp_path, ASKS_FOR_MOTO)
    output = result.stdout + result.stderr
    assert result.returncode == 4, output  # pytest's usage error: nothing ran
    assert "tests/unit is the fast tier and starts no server" in output
    assert "test_probe.py::test_reads_the_table asks for moto_server" in output


def test_every_end_to_end_module_is_marked_e2e_so_it_starts_first():
    """`pytest_collection_modifyitems` starts the tests marked `e2e` first: an unmarked module of tests/e2e ran
    wherever the shuffle put it, its half-minute test at the end of a run among them."""
    unmarked = [path.name for path in sorted((ROOT / "tests" / "e2e").glob("test_*.py"))
                if "pytestmark = pytest.mark.e2e" not in path.read_text()]
    assert unmarked == []
