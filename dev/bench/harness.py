"""What every section of the bench stands on: its constants and sizes, API Gateway's events as the Lambdas
receive them, the app loaded in this process against its own moto and stand-in, and the DynamoDB probe."""
from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import secrets
import shutil
import sys
import sysconfig
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from dev.bench.report import Report, section
from dev.stack import local_stack as stack


ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "bench-jwt-secret-" + "b" * 32
OPERATOR_SECRET = "bench-operator-secret-" + "o" * 32
POOL_KEY = "sk-bench-platform-pool"
MODEL = "claude-sonnet-4-6"
COMPANY = "Bench Co"
PROMPT = "Summarise the three main risks in our Q3 roadmap in one sentence each."
MAX_TOKENS = 64
READS = ("GetItem", "BatchGetItem", "Query", "Scan")
SITE_PACKAGES = sysconfig.get_paths()["purelib"]


@dataclass(frozen=True)
class Sizes:
    """How much of each measurement a run makes; --quick shrinks everything for a smoke run."""

    rounds: int = 5               # gateway-vs-direct rounds, each in blocks of 10 alternating
    per_round: int = 80           # requests of each kind per round
    warmup: int = 30
    trips: int = 30               # samples per round-trip count
    logins: int = 5
    profile_requests: int = 200
    threads: int = 16
    concurrency_rounds: int = 3
    per_thread: int = 15
    scale_tenants: int = 100
    scale_events: Tuple[int, int] = (1_000, 10_000)
    scale_reps: int = 15
    usage_reps: int = 30
    cold_runs: int = 7
    importtime_runs: int = 3


FULL = Sizes()


QUICK = Sizes(rounds=2, per_round=20, warmup=5, trips=5, logins=2, profile_requests=20, concurrency_rounds=1,
              per_thread=3, scale_tenants=20, scale_events=(100, 1_000), scale_reps=2, usage_reps=5, cold_runs=2,
              importtime_runs=1)


class LambdaContext:
    def __init__(self, function_name: str, memory_mb: int, timeout_s: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = (f"arn:aws:lambda:{stack.REGION}:{stack.ACCOUNT}:function:"
                                     f"tessera-bench-{function_name}")
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/tessera-bench-{function_name}"
        self.log_stream_name = "bench"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


class ApiGateway:
    """A REST API with a TOKEN authorizer on a cache miss: authorize every request, then invoke the route
    with the authorizer's context in requestContext.authorizer."""

    API_ID = "bench4tess"
    STAGE = "api"

    def __init__(self, module: Any) -> None:
        self.module = module
        self.auth_context = LambdaContext("tenant_auth", 256, 10)
        self.route_context = LambdaContext("api_handler", 512, 28)
        self.host = f"{self.API_ID}.execute-api.{stack.REGION}.amazonaws.com"

    def method_arn(self, method: str, path: str) -> str:
        return f"arn:aws:execute-api:{stack.REGION}:{stack.ACCOUNT}:{self.API_ID}/{self.STAGE}/{method}{path}"

    def auth_event(self, token: str, method: str, path: str) -> dict:
        return {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": self.method_arn(method, path)}

    def authorize(self, auth_event: dict) -> Optional[dict]:
        """The authorizer's context as API Gateway forwards it (values as strings), or None for a deny."""
        result = self.module.tenant_auth(auth_event, self.auth_context)
        if not result["policyDocument"]["Statement"][0]["Resource"]:
            return None
        return {**{k: str(v) for k, v in result.get("context", {}).items()},
                "principalId": result["principalId"], "integrationLatency": 0}

    def event(self, method: str, path: str, body: Any = None, token: Optional[str] = None,
              query: Optional[Dict[str, str]] = None, authorizer: Optional[dict] = None) -> dict:
        now = time.time()
        headers = {"Host": self.host, "User-Agent": "tessera-bench/1.0", "Accept": "application/json",
                   "Content-Type": "application/json", "X-Forwarded-For": "203.0.113.10",
                   "X-Forwarded-Port": "443", "X-Forwarded-Proto": "https",
                   "X-Amzn-Trace-Id": f"Root=1-{int(now):08x}-{secrets.token_hex(12)}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        context = {
            "resourceId": "bench1", "resourcePath": path, "httpMethod": method,
            "extendedRequestId": secrets.token_hex(8), "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{self.STAGE}{path}", "accountId": stack.ACCOUNT, "protocol": "HTTP/1.1",
            "stage": self.STAGE, "domainPrefix": self.API_ID, "requestTimeEpoch": int(now * 1000),
            "requestId": str(uuid.uuid4()), "domainName": self.host, "apiId": self.API_ID,
            "identity": {"sourceIp": "203.0.113.10", "userAgent": "tessera-bench/1.0", "accountId": None,
                         "caller": None, "user": None, "userArn": None, "accessKey": None,
                         "cognitoIdentityId": None, "cognitoIdentityPoolId": None,
                         "cognitoAuthenticationType": None, "cognitoAuthenticationProvider": None},
        }
        if authorizer is not None:
            context["authorizer"] = authorizer
        return {
            "resource": path, "path": path, "httpMethod": method, "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": dict(query) if query else None,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
            "pathParameters": None, "stageVariables": None, "requestContext": context,
            "body": json.dumps(body) if body is not None else None, "isBase64Encoded": False,
        }

    def invoke(self, event: dict) -> Tuple[int, Any]:
        response = self.module.app(event, self.route_context)
        text = response.get("body")
        return response["statusCode"], (json.loads(text) if text else None)

    def request(self, method: str, path: str, body: Any = None, token: Optional[str] = None,
                query: Optional[Dict[str, str]] = None) -> Tuple[int, Any]:
        event = self.event(method, path, body, token, query)
        if token:
            authorizer = self.authorize(self.auth_event(token, method, path))
            if authorizer is None:
                return 401, None
            event["requestContext"]["authorizer"] = authorizer
        return self.invoke(event)


class NullStream(io.TextIOBase):
    """Where the app's JSON log lines go: still formatted (that cost is real), not printed."""

    def write(self, text: str) -> int:
        return len(text)


@dataclass(frozen=True)
class Tree:
    """A module tree for cold starts: where `python -c` runs, its extra environment, how many runs."""

    cwd: Path
    env: Dict[str, str]
    runs: int
    warm: bool = True
    flags: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Sample:
    """One gateway request, in seconds: wall time of each Lambda and the part of it inside DynamoDB calls."""

    total: float
    auth: float
    route: float
    dynamo_auth: float
    dynamo_route: float
    calls: int
    cpu: float


@dataclass
class Tenant:
    tenant_id: str
    slug: str
    email: str
    password: str
    token: str
    api_key: str = ""


def make_probe():
    """dev/bench/probes.DynamoProbe, also counting the items each read returned (what DynamoDB bills a read by)."""
    from dev.bench.probes import DynamoProbe

    class ItemProbe(DynamoProbe):
        def __init__(self) -> None:
            super().__init__()
            self.items_read = 0

        def _after(self, parsed: Any = None, model: Any = None, **kwargs: Any) -> None:
            super()._after(parsed=parsed, model=model, **kwargs)
            if isinstance(parsed, dict) and model is not None and self.counted():
                with self._lock:
                    self.items_read += _items_in(model.name, parsed)

        def reset(self) -> None:
            super().reset()
            self.items_read = 0

    return ItemProbe()


def _items_in(operation: str, parsed: dict) -> int:
    if operation in ("Query", "Scan"):
        return int(parsed.get("Count", 0))
    if operation == "BatchGetItem":
        return sum(len(items) for items in parsed.get("Responses", {}).values())
    if operation == "GetItem":
        return 1 if parsed.get("Item") else 0
    return 0


def ops(calls: Counter) -> str:
    return ", ".join(f"{n} {op}" for op, n in sorted(calls.items())) or "none"


def _silence_app_output() -> None:
    """The app's log lines and metric records are still formatted (that cost is real), not printed."""
    from chalicelib.observability import metrics_writer

    for logger in (logging.getLogger("tessera"), metrics_writer()):
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(NullStream())


def load_app_copy(index: int) -> Any:
    """Another Lambda instance's app.py in this process: its own Chalice app with route families of its own.
    A chalice Blueprint belongs to the one app it is registered with (registering pops each route's
    options), so the copy imports chalicelib/routes afresh; the rest of chalicelib is shared, as the
    bench's threads share one process."""
    import chalicelib

    def families() -> list:
        return [name for name in sys.modules if name == "chalicelib.routes" or name.startswith("chalicelib.routes.")]

    kept = {name: sys.modules.pop(name) for name in families()}
    try:
        spec = importlib.util.spec_from_file_location(f"_bench_app_{index}", ROOT / "app.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name in families():
            del sys.modules[name]
        sys.modules.update(kept)
        if "chalicelib.routes" in kept:
            chalicelib.routes = kept["chalicelib.routes"]
    return module


class BenchBase:
    """The bench's set-up and tear-down; each section is a mixin of `dev.bench.run.Bench`."""

    def __init__(self, sizes: Sizes) -> None:
        self.sizes = sizes
        self.report = Report()
        self.workdir = Path(tempfile.mkdtemp(prefix="tessera-bench-"))
        self.moto = None
        self.moto_port = 0
        self.standin_server = None
        self.standin_url = ""
        self.app: Any = None
        self.gateway: Optional[ApiGateway] = None
        self.gateway_tenant: Optional[Tenant] = None
        self.zip_dir: Optional[Path] = None
        self.zip_source_dir: Optional[Path] = None
        self.durations: Dict[str, float] = {}
        self.cpu_per_request_ms = float("nan")
        self.tables_client: Any = None

    def start(self) -> None:
        section("set-up")
        self.moto_port = stack.free_port()
        started = time.perf_counter()
        self.moto = stack.start_moto(self.moto_port)
        endpoint = f"http://127.0.0.1:{self.moto_port}"
        stage_env = stack.stage_environment("local")
        stack.bootstrap(endpoint, stage_env)
        standin = stack.load_standin()
        standin.StandinHandler.log_message = lambda self, *args: None  # keep the bench's output to the table
        self.standin_server, self.standin_url = standin.serve_in_thread()
        stack.run_app_in_process(self.moto_port, self.standin_url, JWT_SECRET, OPERATOR_SECRET, POOL_KEY)
        import app  # only now, after the environment is set, as tests/conftest.py does

        _silence_app_output()
        self.app = app
        self.gateway = ApiGateway(app)
        print(f"  moto on :{self.moto_port}, stand-in at {self.standin_url}, ready in "
              f"{time.perf_counter() - started:.1f} s", flush=True)

    def stop(self) -> None:
        if self.standin_server is not None:
            self.standin_server.shutdown()
        if self.moto is not None:
            stack.terminate(self.moto)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def use_table(self, name: str) -> None:
        """Point the app at table `name` (created if new): each scenario has its own."""
        import boto3

        from chalicelib.settings import reset_settings
        from chalicelib.table import create_table

        if self.tables_client is None:
            self.tables_client = boto3.client("dynamodb", region_name=stack.REGION)
        create_table(self.tables_client, name)
        os.environ["TESSERA_TABLE_NAME"] = name
        reset_settings()

    def probe(self):
        return make_probe()

    def new_tenant(self, table: str, with_key: bool = False) -> Tenant:
        """Sign up and log in through the Lambda entry points; lift the limits the way an operator does."""
        from chalicelib import operators

        self.use_table(table)
        slug = f"bench-{secrets.token_hex(4)}"
        email, password = f"owner@{slug}.example.com", "bench-password-1"
        status, created = self.gateway.request("POST", "/tenants", {"company_name": COMPANY, "slug": slug,
                                                                   "email": email, "password": password})
        assert status == 201, (status, created)
        status, login = self.gateway.request("POST", "/auth/login", {"tenant": slug, "email": email,
                                                                    "password": password})
        assert status == 200, (status, login)
        tenant = Tenant(created["tenant_id"], slug, email, password, login["access_token"])
        operators.set_limits(tenant.tenant_id, {"features": {"basic_chat": 100_000_000},
                                                "requests_per_minute": 100_000})
        if with_key:
            status, key = self.gateway.request("POST", "/api-keys", {"name": "bench"}, token=tenant.token)
            assert status == 201, (status, key)
            tenant.api_key = key["key"]
        return tenant

    def timed(self, name: str, step: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        step()
        self.durations[name] = time.perf_counter() - t0
        print(f"  [{name}: {self.durations[name]:.1f} s]", flush=True)
