"""The local stack as real processes: moto server, the Anthropic stand-in and `chalice local`, over real HTTP.

The stack is started with dev/stack/local_stack.py's `LocalStack` (what `make run` uses) and `python -m dev.stack`
itself, always on free ports so a developer's running stack is never disturbed. The session fixtures in
tests/conftest.py point os.environ at the test session's own moto and stand-in; the stack must not
inherit those.
"""
from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import scheduling
from dev.stack import local_stack as stack 

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "Tessera is running at"


def free_ports(count: int) -> List[int]:
    """Distinct free ports (on Linux `stack.free_port` keeps each bound, so no other process is given one)."""
    return [stack.free_port() for _ in range(count)]


def call(method: str, url: str, body: Optional[dict] = None, token: Optional[str] = None) -> Tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None


def command_lines() -> Dict[int, List[str]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
    return found


def processes_using(ports: List[int]) -> Dict[int, List[str]]:
    """Processes whose command line names one of the ports (how the stack passes them to each child)."""
    wanted = {str(p) for p in ports}
    return {pid: args for pid, args in command_lines().items() if wanted & set(args)}


def process_group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def child_environment(pid: int) -> Dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


needs_proc = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc (Linux)")


def developer_shell(**extra: str) -> Dict[str, str]:
    """The environment a developer's shell has when typing `make run` (with `extra` exported): the session's,
    without the local stage's settings that tests/conftest.py put there for the in-process app. Started from
    the session's environment, the stack's app inherited them, and a stack that never applied its stage
    passed the tests. Handed to the stack, never put in os.environ: this process's stream pump reads the
    settings from os.environ on its own thread, and a read while a stack starts would keep them."""
    stage = stack.stage_environment("local")
    return {**{k: v for k, v in os.environ.items() if k not in stage}, **extra}


@contextlib.contextmanager
def environment_watched(changed: List[str]):
    """Look at os.environ on a thread while the block runs, as the stream pump's thread may read it, and add
    to `changed` each variable found different from before the block (or gone); then once more at the end."""
    before, done = dict(os.environ), threading.Event()

    def differences() -> List[str]:
        now = dict(os.environ)
        return sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))

    def watch() -> None:
        while not done.wait(0.002):
            changed.extend(k for k in differences() if k not in changed)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        changed.extend(k for k in differences() if k not in changed)


# Variables found changed in this process while a stack started (see environment_watched).
CHANGED_WHILE_STARTING: List[str] = []


def start_stack() -> stack.LocalStack:
    """moto server, the stand-in and chalice local as real processes, started as `make run` starts them."""
    started = time.monotonic()
    with environment_watched(CHANGED_WHILE_STARTING):
        running = stack.LocalStack(*free_ports(3), environ=developer_shell()).start()
    print(f"LocalStack ready in {time.monotonic() - started:.1f} s")
    try:  # moto, stand-in, stream worker, chalice local, the streaming function, the local gateway in front
        assert len(running.processes) == 6 and not any(map(stack.port_is_free, ports_of(running)))
    except BaseException:
        running.stop()
        raise
    return running


def ports_of(running: stack.LocalStack) -> List[int]:
    return [port for port in (running.api_port, running.moto_port, running.standin_port) if port]


def stop_and_check(running: stack.LocalStack) -> None:
    """Stop a stack, then check it left nothing behind: each of its processes ended, none of their process
    groups remains, each port it was given is free. The stacks that end-to-end modules start for themselves
    stop through here (the contract fuzzer's, failover's, the pool's, batches' and the AWS endpoint test's),
    so that is where a run checks `stop()`; the shared stack and the bench flood's stop unchecked."""
    processes, ports = list(running.processes), ports_of(running)
    running.stop()
    assert [p.poll() is not None for p in processes] == [True] * len(processes)
    assert not any(process_group_exists(p.pid) for p in processes)
    assert all(map(stack.port_is_free, ports))


@contextlib.contextmanager
def started_stack():
    """A stack started for the block, stopped and checked after it (`stop_and_check`)."""
    running = start_stack()
    try:
        yield running
    finally:
        stop_and_check(running)


_shared: Optional[Any] = None


@pytest.fixture(scope="module")
def local_stack(request):
    """One stack per test process, shared by every end-to-end module that imports this fixture: they only
    add tenants of their own. A module that changes what every tenant meets (a plan in the catalog, the
    pool's breakers) starts its own with `started_stack()`. Started on first use, stopped as the session
    ends. `make test` hands the modules that share it to one worker (tests/scheduling.py), so a run starts
    it once."""
    global _shared
    module = request.path.relative_to(ROOT).as_posix()  # as SHARED_STACK_MODULES names it, wherever pytest's root is
    if module not in scheduling.SHARED_STACK_MODULES:
        pytest.fail(f"{module} uses the shared local_stack: name it in SHARED_STACK_MODULES "
                    "(tests/scheduling.py), so the one worker that runs those runs it", pytrace=False)
    if _shared is None:
        _shared = start_stack()
        request.config.add_cleanup(_shared.stop)  # unchecked: under xdist a cleanup's error is not reported
    return _shared


def sign_up(api_url: str, company: str = "E2E Inc", prefix: str = "e2e") -> Tuple[dict, str, str]:
    """A tenant signed up and logged in over HTTP: (sign-up response, slug, access token)."""
    slug = f"{prefix}-{secrets.token_hex(4)}"
    email, password = f"owner@{slug}.example.com", "correct-horse-battery"
    status, created = call("POST", api_url + "/tenants",
                           {"company_name": company, "slug": slug, "email": email, "password": password})
    assert status == 201, created
    status, login = call("POST", api_url + "/auth/login", {"tenant": slug, "email": email, "password": password})
    assert status == 200, login
    return created, slug, login["access_token"]


@pytest.fixture(scope="module")
def tenant(local_stack):
    return sign_up(local_stack.api_url)


# --- over HTTP ------------------------------------------------------------------

def test_starting_a_stack_leaves_this_process_environment_as_it_was(local_stack):
    """The stack gets a developer's shell as an argument: were it made by taking the stage's variables out
    of os.environ for the start, this process's stream pump could read the settings then (no base domain,
    the stage's default table) and keep them, and later in-process tests would run on them."""
    assert CHANGED_WHILE_STARTING == []


def test_health_answers_ok(local_stack):
    assert call("GET", local_stack.api_url + "/health") == (200, {"status": "ok"})


def test_login_token_reaches_me_as_the_owner(local_stack, tenant):
    created, _, token = tenant
    status, me = call("GET", local_stack.api_url + "/me", token=token)
    assert status == 200, me
    assert me["tenant_id"] == created["tenant_id"] and me["role"] == "owner" and me["principal_type"] == "user"


def test_api_key_created_over_http_authenticates_me(local_stack, tenant):
    created, _, token = tenant
    status, key = call("POST", local_stack.api_url + "/api-keys", {"name": "e2e"}, token=token)
    assert status == 201, key
    status, me = call("GET", local_stack.api_url + "/me", token=key["key"])
    assert status == 200, me
    assert me == {"key_id": key["key_id"], "name": "e2e", "tenant_id": created["tenant_id"], "role": "member",
                  "principal_type": "api_key"}


def test_me_without_credentials_is_refused(local_stack):
    status, _ = call("GET", local_stack.api_url + "/me")
    assert status == 401


# --- isolation from the test session ---------------------------------------------

def dynamodb_at(endpoint: str):
    import boto3

    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=stack.REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def slug_claim_in(endpoint: str, slug: str) -> bool:
    table = stack.stage_environment()["TESSERA_TABLE_NAME"]
    return "Item" in dynamodb_at(endpoint).get_item(
        TableName=table, Key={"pk": {"S": f"SLUG#{slug}"}, "sk": {"S": "CLAIM"}}, ConsistentRead=True)


def test_app_writes_to_the_stacks_own_moto_not_the_test_sessions(local_stack, tenant):
    _, slug, _ = tenant
    assert slug_claim_in(f"http://127.0.0.1:{local_stack.moto_port}", slug)
    assert not slug_claim_in(os.environ["AWS_ENDPOINT_URL"], slug)


def test_make_runs_app_hashes_passwords_at_owasps_argon2_cost(local_stack, tenant):
    """In-process tests hash at argon2's least cost (tests/conftest.py: least_argon2_cost); `make run`'s app
    must not: the owner signed up over HTTP is stored with 19 MiB, two passes, one lane."""
    created, _, _ = tenant
    users = dynamodb_at(f"http://127.0.0.1:{local_stack.moto_port}").query(
        TableName=stack.stage_environment()["TESSERA_TABLE_NAME"], ConsistentRead=True,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :user)",
        ExpressionAttributeValues={":pk": {"S": f"TENANT#{created['tenant_id']}"}, ":user": {"S": "USER#"}})["Items"]
    assert [u["password_hash"]["S"].split("$")[1:4] for u in users] == [["argon2id", "v=19", "m=19456,t=2,p=1"]]


@needs_proc
def test_app_process_gets_the_stacks_endpoints_not_the_test_sessions(local_stack):
    app_process = local_stack.processes[-1]
    env = child_environment(app_process.pid)
    assert env["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{local_stack.moto_port}" != os.environ["AWS_ENDPOINT_URL"]
    assert env["ANTHROPIC_BASE_URL"] == local_stack.standin_url != os.environ["ANTHROPIC_BASE_URL"]
    assert "ANTHROPIC_API_KEY" not in env
    assert env["TESSERA_PLATFORM_KEYS"] == stack.STANDIN_POOL_KEY


def test_app_environment_drops_inherited_aws_and_anthropic_settings(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "https://dynamodb.us-east-1.amazonaws.com")
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "real-token")
    env = stack.app_environment(stack.aws_environment(5001), "http://127.0.0.1:8787", stack.STANDIN_POOL_KEY)
    assert not {"AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE", "ANTHROPIC_AUTH_TOKEN"} & set(env)
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5001"


# --- `make run` (python -m dev.stack) ----------------------------------------------

def make_run_environment(ports: List[int]) -> Dict[str, str]:
    """A shell's environment: the test session's AWS settings (its own moto) are not the developer's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(zip(("TESSERA_PORT", "MOTO_PORT", "ANTHROPIC_STANDIN_PORT"), map(str, ports)))
    env.pop("ANTHROPIC_API_KEY", None)
    # Its own record of the running stack: a developer's `make run` keeps theirs.
    env[stack.STATE_FILE_VARIABLE] = str(Path(tempfile.gettempdir()) / f"tessera-stack-{ports[0]}.json")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_make_run_refuses_a_taken_api_port():
    ports = free_ports(3)
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server does: the port is held for one
        taken.bind(("127.0.0.1", ports[0]))
        taken.listen()
        result = subprocess.run([sys.executable, "-m", "dev.stack"], cwd=str(ROOT),
                                env=make_run_environment(ports), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"Port {ports[0]} is already in use" in result.stderr and "TESSERA_PORT=" in result.stderr
    assert READY_LINE not in result.stdout
    assert all(stack.port_is_free(p) for p in ports[1:])


class MakeRun:
    """`python -m dev.stack` in its own session (like a terminal's foreground job), its output drained."""

    def __init__(self, ports: List[int], extra_env: Optional[Dict[str, str]] = None) -> None:
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "dev.stack"], cwd=str(ROOT),
                                        env={**make_run_environment(ports), **(extra_env or {})},
                                        stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.output: List[str] = []
        # Keep reading: the children write to the same pipe and would block on a full one.
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"make run exited before printing {text!r}:\n" + self.text
            if text in line:
                return line

    def ctrl_c(self) -> int:
        os.killpg(self.process.pid, signal.SIGINT)  # what Ctrl-C sends to a terminal's foreground group
        return self.process.wait(timeout=60)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.reader.join(timeout=10)

    @property
    def text(self) -> str:
        return "".join(self.output)


def test_make_run_serves_the_budget_check_its_ports_until_ctrl_c_then_leaves_nothing_behind():
    """One `make run` from start to Ctrl-C: it serves, records its ports for `make budget-check` (which finds
    this stack's own moto through the record), and on Ctrl-C stops every process, frees every port and takes
    the record with it."""
    ports = free_ports(3)
    env = make_run_environment(ports)
    run = MakeRun(ports)
    try:
        line = run.wait_for(READY_LINE)
        print(f"make run became ready in {time.monotonic() - run.started:.1f} s ({line.strip()})")
        api = f"http://127.0.0.1:{ports[0]}"
        assert call("GET", api + "/health") == (200, {"status": "ok"})
        assert json.loads(Path(env[stack.STATE_FILE_VARIABLE]).read_text())["MOTO_PORT"] == ports[1]
        body = {"company_name": "Budget Co", "slug": "budget-co", "email": "o@budget.example.com",
                "password": "correct-horse-battery"}
        assert call("POST", api + "/tenants", body)[0] == 201
        token = call("POST", api + "/auth/login", {"tenant": "budget-co", "email": body["email"],
                                                    "password": body["password"]})[1]["access_token"]
        assert call("PATCH", api + "/tenant", {"monthly_budget_usd": "5"}, token=token)[0] == 200
        check_env = {k: v for k, v in env.items() if k != "MOTO_PORT"}
        result = subprocess.run([sys.executable, "-m", "dev.stack.budget_check"], cwd=str(ROOT),
                                env=check_env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(result.stdout)["tenants_checked"] == 1  # the one budget in this stack's own moto
        assert run.ctrl_c() == 0, run.text
    finally:
        run.close()
    assert "Stopped." in run.text
    assert all(stack.port_is_free(p) for p in ports)
    if Path("/proc").exists():
        assert processes_using(ports) == {}
    assert not Path(env[stack.STATE_FILE_VARIABLE]).exists()


def test_make_run_interrupted_while_starting_leaves_nothing_behind():
    ports = free_ports(3)
    run = MakeRun(ports)
    try:
        run.wait_for(f"127.0.0.1:{ports[1]}")  # moto announces itself; the rest is still starting
        assert run.ctrl_c() == 0, run.text
    finally:
        run.close()
    assert READY_LINE not in run.text
    assert all(stack.port_is_free(p) for p in ports)
    if Path("/proc").exists():
        assert processes_using(ports) == {}


def test_make_run_with_aws_endpoint_url_starts_no_moto_and_says_which_endpoint():
    moto_port, *ports = free_ports(4)
    endpoint = f"http://127.0.0.1:{moto_port}"
    moto = stack.start_moto(moto_port, contention=False)
    aws = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "dev", "AWS_SECRET_ACCESS_KEY": "dev",
           "AWS_REGION": stack.REGION}
    run = MakeRun(ports, {**aws, "TESSERA_JWT_SECRET": "", "TESSERA_OPERATOR_SECRET": ""})
    try:
        run.wait_for(READY_LINE)
        token = run.wait_for("operator token:").split(":", 1)[1].strip()
        assert f"AWS endpoint:       {endpoint} (AWS_ENDPOINT_URL; not started here)" in run.text
        assert "local AWS (moto)" not in run.text
        # The token was signed with the operator keyring make run created in the endpoint's Secrets Manager.
        assert call("GET", f"http://127.0.0.1:{ports[0]}/admin/tenants", token=token)[0] == 200
        assert stack.port_is_free(ports[1])  # MOTO_PORT: nothing was started on it
        assert run.ctrl_c() == 0, run.text
    finally:
        run.close()
        stack.terminate(moto)
    assert moto.returncode is not None and all(stack.port_is_free(p) for p in ports)


# --- the official SDK over HTTP against the processes `make run` starts ---------------------------

@pytest.fixture(scope="module")
def api_key(local_stack, tenant):
    status, key = call("POST", local_stack.api_url + "/api-keys", {"name": "sdk"}, token=tenant[2])
    assert status == 201, key
    return key["key"]


@pytest.fixture(scope="module")
def sdk(local_stack, api_key):
    import anthropic

    with anthropic.Anthropic(base_url=local_stack.api_url, api_key=api_key, max_retries=0) as client:
        yield client


def standin_record(local_stack, text):
    with urllib.request.urlopen(local_stack.standin_url + "/_standin/requests") as response:
        return [r for r in json.loads(response.read()) if text in r["last_user_text"]][-1]


def test_official_sdk_calls_v1_messages_over_http(local_stack, tenant, sdk):
    raw = sdk.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=64, system="Reply in one line.",
        messages=[{"role": "user", "content": "e2e-sdk-probe"}])
    message = raw.parse()
    assert message.model == "claude-haiku-4-5" and "e2e-sdk-probe" in message.content[0].text
    seen = standin_record(local_stack, "e2e-sdk-probe")
    assert seen["system"].endswith("Reply in one line.") and "You are assisting the team at" in seen["system"]
    deadline = time.monotonic() + 10  # the usage stream folds the call in within moments
    while True:
        status, usage = call("GET", local_stack.api_url + "/usage", token=tenant[2])
        if usage["requests"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert usage["by_feature"]["basic_chat"]["requests"] >= 1
    assert raw.headers["x-tessera-cost-usd"]


def test_sdk_tool_round_trip_over_http(sdk):
    tool = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                                    "required": ["city"]}}
    ask = [{"role": "user", "content": "e2e weather?"}]
    first = sdk.messages.create(model="claude-haiku-4-5", max_tokens=128, tools=[tool], messages=ask)
    use = first.content[-1]
    assert (first.stop_reason, use.type, use.input) == ("tool_use", "tool_use", {"city": "standin"})
    second = sdk.messages.create(model="claude-haiku-4-5", max_tokens=128, tools=[tool], messages=ask + [
        {"role": "assistant", "content": [b.to_dict() for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "e2e sunny"}]}])
    assert second.stop_reason == "end_turn" and "e2e sunny" in second.content[0].text


def test_sdk_streamed_tool_call_over_http(sdk):
    tool = {"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}},
                                               "required": ["q"]}}
    with sdk.messages.stream(model="claude-haiku-4-5", max_tokens=128, tools=[tool],
                             tool_choice={"type": "tool", "name": "lookup"},
                             messages=[{"role": "user", "content": "e2e stream tool"}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and "input_json" in kinds
    assert final.stop_reason == "tool_use" and final.content[0].input == {"q": "standin"}


def test_sdk_image_over_http_is_billed_by_its_size(local_stack, sdk):
    from content_blocks import image, png

    message = sdk.messages.create(model="claude-haiku-4-5", max_tokens=32, messages=[{"role": "user", "content": [
        image(png(280, 140)), {"type": "text", "text": "e2e image"}]}])
    assert standin_record(local_stack, "e2e image")["block_types"] == ["image", "text"]
    assert message.usage.input_tokens == 10 * 5 + 4 + 10 + 3  # patches + block; system 39 bytes; "e2e image"


def test_sdk_count_tokens_and_models_over_http(sdk):
    counted = sdk.messages.count_tokens(model="claude-haiku-4-5", messages=[{"role": "user", "content": "e2e"}])
    assert counted.input_tokens == 10 + 1  # the tenant's system text is counted
    assert [m.id for m in sdk.models.list()] == ["claude-sonnet-4-6", "claude-haiku-4-5"]
    assert sdk.models.retrieve("claude-sonnet-4-6").display_name == "Claude Sonnet 4.6"


def test_anthropics_x_api_key_header_works_where_bearer_does(local_stack, tenant, api_key):
    import anthropic

    request = urllib.request.Request(local_stack.api_url + "/me", headers={"x-api-key": api_key})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())["tenant_id"] == tenant[0]["tenant_id"]
    with anthropic.Anthropic(base_url=local_stack.api_url, api_key=None, auth_token=None, max_retries=0,
                             default_headers={"x-api-key": api_key}) as client:
        message = client.messages.create(model="claude-haiku-4-5", max_tokens=64,
                                         messages=[{"role": "user", "content": "e2e x-api-key"}])
    assert message.type == "message" and "e2e x-api-key" in message.content[0].text


def test_a_bad_x_api_key_is_refused_in_anthropics_shape(local_stack):
    import anthropic

    with anthropic.Anthropic(base_url=local_stack.api_url, api_key=None, auth_token=None, max_retries=0,
                             default_headers={"x-api-key": "tsk_ten_x.key_x.nope"}) as client:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            client.models.list()
    assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "authentication_error"
    status, body = call("GET", local_stack.api_url + "/v1/models")  # no credential at all
    assert status == 401 and body["error"]["type"] == "authentication_error"
    status, body = call("GET", local_stack.api_url + "/me")
    assert status == 401 and body["error"]["code"] == "unauthorized"


def request_raw(url: str, token: str) -> Tuple[int, Dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_an_unknown_path_under_make_run_is_a_404_that_echoes_no_credential(local_stack, tenant):
    status, headers, body = request_raw(f"{local_stack.api_url}/no/such/path", tenant[2])
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    assert tenant[2].encode() not in body and b"Authorization" not in body
    assert headers.get("X-Request-Id")


def test_an_authorizer_refusal_under_make_run_carries_a_request_id(local_stack):
    status, headers, body = request_raw(f"{local_stack.api_url}/me", "not-a-valid-token")
    assert status == 401 and json.loads(body)["error"]["code"] == "unauthorized"
    assert headers.get("X-Request-Id")
