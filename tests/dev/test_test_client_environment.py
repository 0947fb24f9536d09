"""Requests of chalice's test client on several threads leave `os.environ` as they found it, give each
request its stage's variables, and lose nothing another thread sets meanwhile (`_requests_share_one_environment`
in tests/conftest.py)."""
import json
import os
import threading

import pytest
from chalice import Chalice
from chalice.test import Client

STAGE_VARIABLE = "TESSERA_TEST_STAGE_VARIABLE"


def project_with_stage_variable(tmp_path, app_name: str) -> str:
    config = {"version": "2.0", "app_name": app_name,
              "stages": {"dev": {"environment_variables": {STAGE_VARIABLE: "from-the-stage"}}}}
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


def overlapping_requests(tmp_path, while_both_run=lambda: None) -> dict:
    """Two requests: the first starts, then the second, the first ends, then the second (the order that left
    the first one's copy behind). `while_both_run` runs on this thread while both are in their handlers."""
    app = Chalice("overlap")
    first_in, second_in, first_out, both_seen = (threading.Event() for _ in range(4))
    seen = {}

    @app.route("/first")
    def first():
        first_in.set()
        assert second_in.wait(5)
        assert both_seen.wait(5)
        seen["first"] = os.environ.get(STAGE_VARIABLE)
        return {}

    @app.route("/second")
    def second():
        second_in.set()
        assert first_out.wait(5)
        seen["second"] = os.environ.get(STAGE_VARIABLE)
        return {}

    with Client(app, stage_name="dev", project_dir=project_with_stage_variable(tmp_path, "overlap")) as client:
        def call_first():
            client.http.get("/first")
            first_out.set()

        threads = [threading.Thread(target=call_first), threading.Thread(target=lambda: client.http.get("/second"))]
        threads[0].start()
        assert first_in.wait(5)
        threads[1].start()
        assert second_in.wait(5)
        while_both_run()
        both_seen.set()
        for thread in threads:
            thread.join(10)
    return seen


@pytest.fixture
def process_environment(environment, monkeypatch):
    """The process's own os.environ, put back after the test whatever happened, so a broken patch fails this
    test alone and not every later one in the worker."""
    original = os.environ
    monkeypatch.delenv(STAGE_VARIABLE, raising=False)
    monkeypatch.delenv("TESSERA_TEST_SET_MEANWHILE", raising=False)
    yield original
    os.environ = original
    for name in (STAGE_VARIABLE, "TESSERA_TEST_SET_MEANWHILE"):
        os.environ.pop(name, None)


def test_overlapping_requests_put_back_the_processs_own_environment(tmp_path, process_environment):
    seen = overlapping_requests(tmp_path)
    assert os.environ is process_environment
    assert seen == {"first": "from-the-stage", "second": "from-the-stage"}
    assert STAGE_VARIABLE not in os.environ


def test_a_stage_variable_the_process_had_gets_its_value_back(tmp_path, process_environment):
    os.environ[STAGE_VARIABLE] = "the-process's"
    seen = overlapping_requests(tmp_path)
    assert seen == {"first": "from-the-stage", "second": "from-the-stage"}
    assert os.environ.get(STAGE_VARIABLE) == "the-process's"


def test_a_variable_set_during_another_threads_request_stays(tmp_path, process_environment):
    def meanwhile():
        os.environ["TESSERA_TEST_SET_MEANWHILE"] = "kept"
        os.environ[STAGE_VARIABLE] = "set meanwhile"

    overlapping_requests(tmp_path, meanwhile)
    assert os.environ.get("TESSERA_TEST_SET_MEANWHILE") == "kept"
    assert os.environ.get(STAGE_VARIABLE) == "set meanwhile"
