"""Shared fixtures: one moto server process and one Anthropic stand-in per test session.

Everything below the SDK edge is real: PynamoDB models against moto's DynamoDB
in server mode, KMS, SES and SNS on the same server. Tests isolate themselves by
creating their own tenants (random slugs), never by resetting shared state.

tests/unit is the fast tier: a session of its tests alone starts no server (`servers`), and a run that
collects a test there asking for one stops before anything starts, naming it (`refuse_servers_in_fast_tier`).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import argon2
import pytest

from dev.deploy import gateway_responses
from dev.stack import local_stack as stack  # the same functions `make run` uses

pytest_plugins = ["scheduling"]  # tests/scheduling.py: the order of a run and its workers' shares

ROOT = Path(__file__).resolve().parents[1]

TEST_JWT_SECRET = "test-jwt-secret-" + "x" * 32
TEST_OPERATOR_SECRET = "test-operator-secret-" + "y" * 32
POOL_KEY = "sk-test-platform-pool-key"


@pytest.fixture(scope="session")
def moto_server():
    port = stack.free_port()
    process = stack.start_moto(port)
    yield f"http://127.0.0.1:{port}", port
    os.killpg(process.pid, 15)
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def standin():
    module = stack.load_standin()
    server, url = module.serve_in_thread()
    yield url
    server.shutdown()


FAST_TIER = Path(__file__).resolve().parent / "unit"
SERVER_FIXTURES = ("moto_server", "standin", "environment")
NOWHERE = 9  # the discard port: nothing listens on it here, so a call to it is refused at once


def in_fast_tier(path) -> bool:
    return Path(path).resolve().is_relative_to(FAST_TIER)


def _requests_share_one_environment() -> None:
    """chalice's test client puts its stage's variables in `os.environ` for each request by swapping in a
    patched copy, a plain dict, and putting back the object it found. Two requests that overlap on threads
    each put back what they found, so when the second to start is the last to end it leaves the first one's
    copy as `os.environ` for the rest of the worker: a variable set after that reaches neither a child
    process nor `environ=os.environ` defaults (the moto-speed check server then started without its check
    file), and one set during another thread's request was lost with that request's copy.

    Here the real `os.environ` is kept: the first request in sets the stage's variables and remembers what
    they replaced, later ones share them, and the last one out puts back each variable that still holds the
    stage's value, so what another thread sets meanwhile stays (a stage variable included). The stage's
    variables are the in-process app's already (`stack.run_app_in_process`), so a request sees what chalice
    would give it. Installed with the servers: only tests outside the fast tier use the client."""
    from chalice.test import BaseClient

    lock = threading.Lock()
    state: Dict[str, Any] = {"requests": 0, "replaced": {}, "set": {}}

    @contextlib.contextmanager
    def stage_variables(client, variables):
        with lock:
            for name, value in variables.items():
                if name not in state["set"]:
                    state["replaced"][name] = os.environ.get(name)
                os.environ[name] = state["set"][name] = str(value)
            state["requests"] += 1
        try:
            yield
        finally:
            with lock:
                state["requests"] -= 1
                if state["requests"] == 0:
                    for name, value in state["replaced"].items():
                        if os.environ.get(name) != state["set"][name]:
                            continue  # set again meanwhile: that value stays
                        if value is None:
                            os.environ.pop(name, None)
                        else:
                            os.environ[name] = value
                    state["replaced"], state["set"] = {}, {}

    BaseClient._patched_env_vars = stage_variables


@pytest.fixture(scope="session", autouse=True)
def local_stage():
    """What every test runs with, servers or not: the local stage's variables and the test keyrings, with AWS
    and the model upstream at a port nothing listens on (a call is refused at once) until `environment`
    points them at the session's moto and stand-in."""
    # Every test of a session shares the platform pool's minute (chalicelib/metering/pool_leases.py): an
    # organisation as large as the suite needs, so only tests that set their own ceilings meet the pool.
    os.environ.setdefault("TESSERA_POOL_CEILINGS", "*=1000000/1000000000000/1000000000000")
    stack.run_app_in_process(NOWHERE, f"http://127.0.0.1:{NOWHERE}", TEST_JWT_SECRET, TEST_OPERATOR_SECRET,
                             POOL_KEY)


@pytest.fixture(scope="session", autouse=True)
def servers(request):
    """The session's servers, started first, unless every test collected is in the fast tier: then none."""
    if not all(in_fast_tier(item.path) for item in request.session.items):
        request.getfixturevalue("environment")


@pytest.fixture(scope="session")
def environment(local_stage, moto_server, standin):
    _requests_share_one_environment()
    endpoint, port = moto_server
    stack.bootstrap(endpoint, stack.stage_environment("local"))
    stack.run_app_in_process(port, standin, TEST_JWT_SECRET, TEST_OPERATOR_SECRET, POOL_KEY)
    gateway_responses.install_locally()  # the test client's gateway answers as make run's and the deployed one do
    global _pump
    from dev.stack import stream_worker

    _pump = stream_worker.StreamPump().start()
    yield
    _pump.stop()


_pump = None


@pytest.fixture(autouse=True)
def breakers_counted_per_test():
    """The in-process app's warm gateway counts upstream failures toward its breakers (chalicelib/ai/breaker.py):
    each test starts from none, so tests that fail upstream on purpose cannot add up to an open breaker."""
    yield
    from chalicelib.ai import gateway

    if gateway._default is not None:
        gateway._default.failover.breakers.forget()


@pytest.fixture(scope="module", autouse=True)
def least_argon2_cost(request):
    """In-process tests hash and verify passwords with argon2id at its least cost (1 pass over 8 KiB): at
    OWASP's cost each hash or verification is about 44 ms of CPU, a minute of a run's CPU over 1,364 of them.
    The hashing code is the product's; only the hasher's parameters differ, and each hash carries its own, so
    a hash made at either cost verifies. What production runs is tested where it is run: the modules marked
    `owasp_argon2` (the parameters, the dummy verification's time) and every end-to-end test, whose
    `make run` processes hash at the real cost. Module-scoped, so module-scoped tenants are cheap too."""
    if request.node.get_closest_marker("owasp_argon2") is not None:
        yield
        return
    from chalicelib.identity import passwords  # the module as imported now (mutation testing imports it again)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_hasher", lambda: _LEAST_COST)
        patch.setattr(passwords, "_dummy_hash", lambda: _LEAST_COST_DUMMY)
        yield


_LEAST_COST = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, hash_len=32, salt_len=16,
                                    type=argon2.Type.ID)
_LEAST_COST_DUMMY = _LEAST_COST.hash("tessera-timing-equaliser")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Settings read again as each test ends, from the session's environment, under the stream pump's lock
    (its thread reads them only inside a poll, under that lock): whatever a test's environment put in the
    cache, through the test or through the pump's thread while the test ran, goes with it, and is not kept
    for the rest of the session."""
    yield
    from chalicelib.settings import get_settings, reset_settings

    with _pump.lock if _pump is not None else contextlib.nullcontext():
        reset_settings()
        get_settings()


def settle_usage() -> None:
    """Wait until the usage aggregator has folded every call made so far (in AWS: the stream's delay)."""
    _pump.drain()


@contextlib.contextmanager
def stream_paused():
    """Hold the stream's consumer (dev/stack/stream_worker.py) off: what the test writes meanwhile is folded
    after it, or handed to the aggregator by the test itself. Inside, nothing may wait for the stream
    (`settle_usage`)."""
    with _pump.lock:
        yield


def _point_at(table: Optional[str]) -> None:
    from chalicelib.settings import get_settings, reset_settings

    with _pump.lock:  # no fold runs half in one table and half in the other
        if table is None:
            os.environ.pop("TESSERA_TABLE_NAME", None)
        else:
            os.environ["TESSERA_TABLE_NAME"] = table
        reset_settings()
        get_settings()  # cached now, so a chalice test client's stage variables cannot point a read elsewhere


@contextlib.contextmanager
def table_of_its_own(prefix: str = "tessera-test"):
    """Point the app at a new table for the block, then back at the one before (and drop the new one), with
    what the usage stream holds folded into the table it came from before each switch. moto's Query reads
    every item of the table it queries, so a query's cost grows with everything the suite wrote before."""
    from chalicelib.table import create_table

    dynamodb = _dynamodb()
    name = f"{prefix}-{secrets.token_hex(4)}"
    create_table(dynamodb, name)
    before = os.environ.get("TESSERA_TABLE_NAME")
    settle_usage()
    _point_at(name)
    try:
        yield name
    finally:
        try:
            settle_usage()
        finally:  # back at the table before even if the fold failed (an event it cannot read, say)
            _point_at(before)
            dynamodb.delete_table(TableName=name)


@pytest.fixture(scope="module")
def own_table(environment):
    """The module's items in a table of their own: a sweep makes one Query per bucket of its lookback day
    (144), and against the suite's shared table, grown by thousands of items, each sweep took seconds."""
    with table_of_its_own() as name:
        yield name


@pytest.fixture
def drain(environment):
    return settle_usage


def random_address() -> str:
    return "127." + ".".join(str(secrets.randbelow(254) + 1) for _ in range(3))


@contextlib.contextmanager
def from_address(address: str):
    """Requests through chalice's local gateway come from `address`.

    chalice's local gateway gives every request the source address 127.0.0.1, where API Gateway gives each
    caller its own (`requestContext.identity.sourceIp`); the login throttle counts by that address."""
    from chalice.local import LambdaEventConverter

    before = LambdaEventConverter.LOCAL_SOURCE_IP
    LambdaEventConverter.LOCAL_SOURCE_IP = address
    try:
        yield address
    finally:
        LambdaEventConverter.LOCAL_SOURCE_IP = before


@pytest.fixture(autouse=True)
def caller_address():
    """Each test calls from its own address, so no test's failed logins count against another's."""
    with from_address(random_address()) as address:
        yield address


@pytest.fixture
def client(environment):
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as test_client:
        yield test_client


def random_slug(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


_FIRST_YEAR, _LAST_YEAR = 2100, 2999  # after every real month, within the periods the API accepts (to 2999)
_months: Optional[Iterator[int]] = None


def month_block(worker: int, workers: int) -> range:
    """The months (counted from January 2100) that worker `worker` of a run's `workers` draws from: the years
    2100 to 2999 shared out, so every worker's months are periods the API accepts."""
    size = (_LAST_YEAR - _FIRST_YEAR + 1) * 12 // max(workers, 1)
    return range(worker * size, (worker + 1) * size)


def month_at(index: int):
    from datetime import datetime, timezone

    return datetime(_FIRST_YEAR + index // 12, index % 12 + 1, 1, tzinfo=timezone.utc)


def own_month():
    """The first moment of a month between 2100 and 2999 that no other test of this run shares: each pytest-xdist
    worker draws from a block of its own, one month after another, from a random start in its first half (so a
    run against the same moto, as the mutation runner's are, gets new ones). For tests whose sweep windows,
    buckets or month totals must see only their own calls: a random day alone let two tests meet (a sweep of
    one counted the other's mark)."""
    global _months
    if _months is None:
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        # A worker that replaces a crashed one gets the next id (gw4 of four): it shares a block, but not a moto.
        worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % workers
        block = month_block(worker, workers)
        _months = iter(block[secrets.randbelow(len(block) // 2):])
    return month_at(next(_months))


def own_bucket_start():
    """A bucket's first moment on a random day of a month of the test's own (own_month), between 01:00 and 21:00."""
    return own_month().replace(day=secrets.randbelow(26) + 2, hour=secrets.randbelow(20) + 1,
                               minute=secrets.choice((10, 20, 30)))


_DYNAMODB_CLIENTS: Dict[tuple, Any] = {}


def _dynamodb():
    """A DynamoDB client for the environment as it is now (every AWS_ variable), made once for each:
    `WritesNothing` reads the table before and after every block it guards, and a new client for each read
    (about 5 ms of CPU, and a new connection and a new thread in the moto server) was over a thousand clients
    in three API test modules."""
    import boto3

    key = tuple(sorted((name, value) for name, value in os.environ.items() if name.startswith("AWS_")))
    client = _DYNAMODB_CLIENTS.get(key)
    if client is None:
        client = _DYNAMODB_CLIENTS[key] = boto3.client("dynamodb")
    return client


def stored_items(tenant_id: str) -> list:
    """Every item in the tenant's partition exactly as DynamoDB holds it (a consistent read)."""
    from chalicelib.settings import get_settings

    pages = _dynamodb().get_paginator("query").paginate(
        TableName=get_settings().table_name, KeyConditionExpression="pk = :pk", ConsistentRead=True,
        ExpressionAttributeValues={":pk": {"S": f"TENANT#{tenant_id}"}})
    return [item for page in pages for item in page["Items"]]


def item_count() -> int:
    """How many items the whole table holds (moto counts them live): unchanged means none added or removed."""
    from chalicelib.settings import get_settings

    return _dynamodb().describe_table(TableName=get_settings().table_name)["Table"]["ItemCount"]


class WritesNothing:
    """`with WritesNothing(tenant_id, ...):` fails if the block adds or removes any item in the table or
    changes any item of the named tenants; with `table=False`, only the named tenants' items count."""

    def __init__(self, *tenant_ids: str, table: bool = True) -> None:
        self.tenant_ids, self.table = tenant_ids, table

    def state(self):
        settle_usage()  # what the block's writes set off through the stream counts too
        return item_count() if self.table else None, [stored_items(t) for t in self.tenant_ids]

    def __enter__(self):
        self.before = self.state()
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            after = self.state()
            assert after[0] == self.before[0], f"the table went from {self.before[0]} to {after[0]} items"
            assert after[1] == self.before[1], "a tenant's stored items changed"
        return False


class Api:
    """Thin JSON helpers over chalice's test client."""

    def __init__(self, client):
        self.client = client

    def call(self, method, path, body=None, token=None, headers=None, raw=None):
        if method == "GET" and path.startswith(("/usage", "/features")):
            settle_usage()  # usage totals follow the calls through the stream: read them once folded
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        response = self.client.http.request(method, path, headers=all_headers, body=payload)
        try:
            response.json = json.loads(response.body) if response.body else None
        except ValueError:
            response.json = None
        return response

    def signup(self, slug=None, email=None, password="correct-horse-battery", name="Acme Inc"):
        slug = slug or random_slug()
        email = email or f"owner@{slug}.example.com"
        created = self.call("POST", "/tenants", {"company_name": name, "slug": slug, "email": email,
                                                 "password": password})
        assert created.status_code == 201, created.body
        token = self.login(slug, email, password)
        return Tenant(created.json, slug, email, password, token)

    def login(self, slug, email, password):
        response = self.call("POST", "/auth/login", {"tenant": slug, "email": email, "password": password})
        assert response.status_code == 200, response.body
        return response.json["access_token"]

    def add_user(self, tenant, role="member", token=None):
        email = f"{role}-{secrets.token_hex(3)}@{tenant.slug}.example.com"
        response = self.call("POST", "/users", {"email": email, "password": "member-password-1", "role": role},
                             token=token or tenant.token)
        assert response.status_code == 201, response.body
        return response.json, self.login(tenant.slug, email, "member-password-1")

    def api_key(self, tenant, name="ci"):
        response = self.call("POST", "/api-keys", {"name": name}, token=tenant.token)
        assert response.status_code == 201, response.body
        return response.json


class Tenant:
    def __init__(self, created, slug, email, password, token):
        self.created, self.slug, self.email, self.password, self.token = created, slug, email, password, token
        self.id = created["tenant_id"]
        self.owner_id = created["owner"]["user_id"]


@pytest.fixture
def api(client):
    return Api(client)


@pytest.fixture
def operator_token():
    from chalicelib.identity.tokens import issue_operator_token

    return issue_operator_token("test-operator")


@pytest.fixture(scope="module")
def module_api(environment):
    """An Api whose tenants a whole test module may share (argon2 makes each sign-up cost ~30 ms)."""
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as test_client:
        yield Api(test_client)


@pytest.fixture(scope="module")
def acme(module_api):
    """A tenant a test module shares: module_api signs it up once per module."""
    return module_api.signup()


@pytest.fixture(scope="module")
def other(module_api):
    """A second tenant of the module, for checks across tenants."""
    return module_api.signup()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """The end-to-end tests first, then the modules with an in-process test marked `long` (whole, so their
    module fixtures are made once), each group still in its random order (this runs after pytest-randomly
    has shuffled). The end-to-end tests start processes and take about a third of the suite's time, the
    contract fuzzer one to three minutes of it alone: begun last, such a test kept one worker busy long after
    the others had run out of tests, and the suite's time varied by minutes with the seed. Begun first, the
    short tests fill in around them (`make test` hands whole modules to the workers in this order, the next
    to the first worker free); a `long` test's half minute likewise."""
    refuse_servers_in_fast_tier(items)
    long_modules = {item.path for item in items if item.get_closest_marker("long") is not None}
    items.sort(key=lambda item: (item.get_closest_marker("e2e") is None, item.path not in long_modules))


def refuse_servers_in_fast_tier(items) -> None:
    asking = [f"{item.nodeid} asks for {', '.join(n for n in SERVER_FIXTURES if n in item.fixturenames)}"
              for item in items if in_fast_tier(item.path) and set(SERVER_FIXTURES) & set(item.fixturenames)]
    if asking:
        raise pytest.UsageError("tests/unit is the fast tier and starts no server; move these to tests/integration:\n  "
                                + "\n  ".join(asking))


def record_spend(tenant_id, micros, calls=1, now=None, feature="basic_chat"):
    """Calls that cost `micros` each, through the real admission and ledger (no model call), folded."""
    from chalicelib.ids import new_request_id
    from chalicelib.metering import admission, ledger

    for _ in range(calls):
        reservation, _ = admission.reserve(
            tenant_id, new_request_id(now.timestamp() if now else None), feature, micros, None, admission.Returns(),
            load_view=lambda: admission.load_view(tenant_id), load_returns=lambda: admission.load_returns(tenant_id),
            now=now)
        ledger.record(reservation, ledger.Settlement(
            principal_id="usr_job", principal_type="user", model="claude-sonnet-4-6", input_tokens=1,
            output_tokens=1, cost_micros=micros, latency_ms=1))
    settle_usage()


# --- the deployable package (tests/integration): built once per session by dev/deploy/package.py, offline --------

PACKAGE_STAGE = "prod"
ARTIFACTS_BUCKET = "tessera-artifacts"
ARTIFACT_KEY = "tessera/prod/deployment.zip"


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory) -> Path:
    """Built once per run, not once per pytest-xdist worker (a build is about 25 s of CPU, in a suite bound by
    CPU): the workers share their base temporary folder's parent, and the first to take the lock builds
    (pytest-xdist's documented recipe for a session fixture that runs once, with fcntl for its lock)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker's base folder is <the run's>/<worker id>
        shared = shared.parent
    out, built = shared / "package" / PACKAGE_STAGE, shared / "package" / "built"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(shared / "package.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if the build fails
        if not built.exists():
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update({"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                        "AWS_CONFIG_FILE": os.devnull})
            result = subprocess.run([sys.executable, "-m", "dev.deploy.package", "--stage", PACKAGE_STAGE,
                                     "--out", str(out)], cwd=str(ROOT), env=env, capture_output=True, text=True,
                                    timeout=600)
            assert result.returncode == 0, f"dev/deploy/package.py failed:\n{result.stdout}\n{result.stderr}"
            print(result.stdout)
            built.touch()
    return out


@pytest.fixture(scope="session")
def template_path(package_dir) -> Path:
    return package_dir / "sam.json"


@pytest.fixture(scope="session")
def template(template_path) -> Dict[str, Any]:
    return json.loads(template_path.read_text())


@pytest.fixture(scope="session")
def expanded(template) -> Dict[str, Any]:
    """The template as CloudFormation runs it: code in S3, the SAM transform applied (aws-sam-translator)."""
    from dev.deploy import rehearsal 

    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"  # the translator builds ARNs for a region
    try:
        return rehearsal.expand(template, ARTIFACTS_BUCKET, ARTIFACT_KEY)
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous


@pytest.fixture(scope="session")
def stage_env() -> Dict[str, str]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return {**config["environment_variables"], **config["stages"][PACKAGE_STAGE]["environment_variables"]}


@contextlib.contextmanager
def tessera_log(caplog):
    """caplog hears the app's own logger ("tessera", which does not propagate to the root) inside the block."""
    import logging

    tessera = logging.getLogger("tessera")
    tessera.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        tessera.removeHandler(caplog.handler)
