"""The stack against an AWS endpoint it did not start (AWS_ENDPOINT_URL): here a moto server this module
starts, standing in for LocalStack, an AWS account or a proxy in front of moto."""
from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest

from dev.stack import local_stack as stack 
from test_local_stack import stop_and_check

pytestmark = pytest.mark.e2e


def moto_server():
    port = stack.free_port()
    process = stack.start_moto(port, contention=False)
    yield f"http://127.0.0.1:{port}"
    stack.terminate(process)


endpoint = pytest.fixture(scope="module")(moto_server)
empty_endpoint = pytest.fixture(moto_server)


def shell(monkeypatch, endpoint: str) -> str:
    """A developer's shell that names the endpoint, with its own credentials and none of the session's
    keyrings (so the app must find them at the endpoint)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "caller-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "caller-secret")
    monkeypatch.setenv("AWS_REGION", stack.REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")  # must not reach the app
    for name in ("TESSERA_JWT_SECRET", "TESSERA_OPERATOR_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return endpoint


@pytest.fixture
def caller(monkeypatch, endpoint):
    return shell(monkeypatch, endpoint)


@pytest.fixture
def new_caller(monkeypatch, empty_endpoint):
    """The same, on an endpoint nothing has been created at yet."""
    return shell(monkeypatch, empty_endpoint)


def inventory(endpoint: str) -> dict:
    """Everything bootstrap creates, with what identifies each version of it."""
    session = boto3.session.Session(aws_access_key_id="caller-key", aws_secret_access_key="caller-secret",
                                    region_name=stack.REGION)

    def client(service):
        return session.client(service, endpoint_url=endpoint)

    kms = client("kms")
    manager = client("secretsmanager")
    return {
        "tables": client("dynamodb").list_tables()["TableNames"],
        "keys": sorted(k["KeyId"] for k in kms.list_keys()["Keys"]),
        "aliases": sorted((a["AliasName"], a.get("TargetKeyId")) for a in kms.list_aliases()["Aliases"]
                          if a["AliasName"].startswith("alias/tessera")),
        "topics": [t["TopicArn"] for t in client("sns").list_topics()["Topics"]],
        "senders": client("ses").list_identities()["Identities"],
        "secrets": sorted((s["Name"], manager.get_secret_value(SecretId=s["Name"])["VersionId"])
                          for s in manager.list_secrets()["SecretList"]),
    }


def children() -> set:
    """Processes this test process started (their command lines), from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == os.getpid():
                    found.add((entry / "cmdline").read_bytes().decode(errors="replace"))
            except (OSError, IndexError, ValueError):
                continue
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_use_endpoint_twice_creates_each_resource_once_and_starts_nothing(new_caller):
    assert inventory(new_caller)["tables"] == []
    before = children()
    first = stack.use_endpoint(new_caller)
    created = inventory(new_caller)
    second = stack.use_endpoint(new_caller)
    assert inventory(new_caller) == created and second == first
    assert children() == before
    stage = stack.stage_environment()
    assert created["tables"] == [stage["TESSERA_TABLE_NAME"]]
    assert len(created["keys"]) == 1 and created["aliases"] == [(stage["TESSERA_KMS_KEY_ID"], created["keys"][0])]
    assert created["topics"] == [first["TESSERA_ALERT_TOPIC_ARN"]]
    assert created["senders"] == [stage["TESSERA_EMAIL_SENDER"]]
    assert [name for name, _ in created["secrets"]] == ["tessera/local/jwt", "tessera/local/operator"]
    assert (first["TESSERA_JWT_SECRET_ID"], first["TESSERA_OPERATOR_SECRET_ID"]) == (
        "tessera/local/jwt", "tessera/local/operator")


def test_use_endpoint_passes_on_the_callers_endpoint_credentials_and_region_only(caller):
    env = stack.use_endpoint(caller)
    assert env["AWS_ENDPOINT_URL"] == caller
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("caller-key", "caller-secret")
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == stack.REGION
    assert "AWS_ENDPOINT_URL_DYNAMODB" not in env


def test_use_endpoint_that_does_not_answer_is_a_clear_error(monkeypatch):
    dead = f"http://127.0.0.1:{stack.free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    with pytest.raises(RuntimeError, match=f"the AWS endpoint {dead} \\(AWS_ENDPOINT_URL\\) refused the set-up"):
        stack.use_endpoint(dead)


def call(method: str, url: str, body=None, token=None):
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                     headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_local_stack_on_an_endpoint_starts_no_moto_and_the_app_lives_there(caller):
    api_port, standin_port = stack.free_port(), stack.free_port()
    running = stack.LocalStack(api_port, None, standin_port, aws_endpoint=caller).start()
    try:
        started = [" ".join(p.args) for p in running.processes]
        # The stand-in, the stream worker, and the API as deployed: chalice local, the streaming function's
        # host and the local gateway in front of both; no moto.
        assert not any("dev.stack.moto_server" in args for args in started), started
        assert len(started) == 5, started
        for program in ("dev.standin", "dev.stack.stream_worker", "dev.stack.local_api", "chalicelib.stream_host",
                        "dev.stack.local_gateway"):
            assert sum(program in args for args in started) == 1, (program, started)
        slug = f"ep-{secrets.token_hex(4)}"
        status, _ = call("POST", running.api_url + "/tenants", {"company_name": "Endpoint Inc", "slug": slug,
                                                                "email": f"o@{slug}.example.com",
                                                                "password": "correct-horse-battery"})
        assert status == 201
        # Login signs with the JWT keyring the app read from the endpoint's Secrets Manager.
        status, login = call("POST", running.api_url + "/auth/login", {"tenant": slug, "email": f"o@{slug}.example.com",
                                                                       "password": "correct-horse-battery"})
        assert status == 200, login
        assert call("GET", running.api_url + "/me", token=login["access_token"])[0] == 200
        claim = boto3.client("dynamodb", endpoint_url=caller, region_name=stack.REGION).get_item(
            TableName=stack.stage_environment()["TESSERA_TABLE_NAME"],
            Key={"pk": {"S": f"SLUG#{slug}"}, "sk": {"S": "CLAIM"}})
        assert "Item" in claim
        assert "TESSERA_JWT_SECRET" not in running.env and running.env["TESSERA_JWT_SECRET_ID"] == "tessera/local/jwt"
        assert "AWS_ENDPOINT_URL_DYNAMODB" not in running.env
    finally:
        stop_and_check(running)


def test_budget_check_runs_against_the_endpoint_make_run_used(caller):
    import subprocess
    import sys

    # MOTO_PORT names a free port: without the endpoint, budget-check would refuse to run.
    env = {**os.environ, "MOTO_PORT": str(stack.free_port())}
    result = subprocess.run([sys.executable, "-m", "dev.stack.budget_check"], env=env, cwd=str(stack.ROOT),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["alerts_sent"] == []
