"""Tessera's benchmark (`make bench`): what a warm AI request costs on top of the model call, how many
DynamoDB round trips each entry point makes, how the Lambdas start cold, what grows with usage, what
16 concurrent callers get, and how big the deployment is.

It is a measurement, not a test: it prints a table with a HOLD/MISS per target and writes it, with the
machine it ran on, to docs/performance.md. Everything is local and self-contained: its own moto server
(dev/stack/moto_server.py) as AWS, the Anthropic stand-in (dev/standin/server.py) in a thread, and the real
Lambda entry points, `app.tenant_auth` and `app.app`, called with the events API Gateway sends them.

Each figure is the median over repeated runs, with min and max. Every comparison (gateway vs direct SDK,
1k vs 10k events, app import vs baseline) is measured side by side, interleaved, in the same run.
Each scenario gets its own DynamoDB table: moto's Query walks the whole table, so seeding 20,000 usage
events for the scaling scenario must not slow the other measurements.

    .venv/bin/python -m dev.bench [--quick] [--output docs/performance.md]
"""
from __future__ import annotations

import argparse
import compileall
import cProfile
import importlib.util
import io
import json
import logging
import os
import platform
import pstats
import secrets
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[2]

from dev.stack import local_stack as stack  # noqa: E402  (dev/stack/local_stack.py: the same start-up the tests and `make run` use)

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


# Top-level entries of the zip that observability brings: Powertools, the X-Ray SDK (its Tracer) and wrapt.
OBSERVABILITY_PACKAGES = ("aws_lambda_powertools", "aws_xray_sdk", "wrapt")
LAMBDA_TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


# --- statistics and the result table -------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Row:
    section: str
    metric: str
    values: List[float]
    unit: str
    digits: int = 1
    target: str = ""
    verdict: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def cells(self) -> List[str]:
        def fmt(v: float) -> str:
            return f"{v:,.{self.digits}f}"
        return [self.section, self.metric, fmt(self.median), fmt(min(self.values)), fmt(max(self.values)),
                str(len(self.values)), self.unit, self.target, self.verdict]


class Report:
    HEADER = ["Section", "Metric", "Median", "Min", "Max", "n", "Unit", "Target", "Verdict"]

    def __init__(self) -> None:
        self.rows: List[Row] = []
        self.tables: List[Tuple[str, List[str], List[List[str]]]] = []
        self.blocks: List[Tuple[str, str]] = []
        self.notes: List[str] = []

    def add(self, section: str, metric: str, values: Iterable[float], unit: str, digits: int = 1,
            target: str = "", holds: Optional[Callable[[float], bool]] = None, verdict: str = "") -> Row:
        row = Row(section, metric, [float(v) for v in values], unit, digits, target)
        if holds is not None:
            row.verdict = "HOLD" if holds(row.median) else "MISS"
        if verdict:
            row.verdict = verdict
        if "proposal" in section or "proposal" in metric:  # a what-if, not the code as it is
            row.verdict = f"would {row.verdict}" if row.verdict else ""
        self.rows.append(row)
        print(f"  {metric}: {row.cells()[2]} {unit} (min {row.cells()[3]}, max {row.cells()[4]}, n={len(row.values)})"
              + (f"  target {target}: {row.verdict}" if target else ""), flush=True)
        return row

    def table(self, title: str, header: List[str], rows: List[List[str]]) -> None:
        self.tables.append((title, header, rows))

    def block(self, title: str, text: str) -> None:
        self.blocks.append((title, text))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def ordered(self) -> List[Row]:
        return sorted(self.rows, key=lambda row: row.section.split(" ", 1)[0])

    def text_table(self) -> str:
        cells = [self.HEADER] + [r.cells() for r in self.ordered()]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.HEADER))]
        right = {2, 3, 4, 5}
        lines = []
        for n, row in enumerate(cells):
            lines.append("  ".join(cell.rjust(width) if i in right else cell.ljust(width)
                                   for i, (cell, width) in enumerate(zip(row, widths))))
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)


def md_table(header: List[str], rows: List[List[str]]) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


# --- the machine ---------------------------------------------------------------------------------

def _cpu_flags() -> str:
    try:
        return next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return ""


def load_average() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def machine() -> Dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.system()} {platform.release()})"
    except OSError:
        pass
    versions = []
    for name in ("anthropic", "pynamodb", "chalice", "boto3", "moto"):
        try:
            from importlib.metadata import version
            versions.append(f"{name} {version(name)}")
        except Exception:
            pass
    return {
        "CPU": cpu + (" (virtual machine)" if "hypervisor" in _cpu_flags() else ""),
        "Cores": str(os.cpu_count()),
        "Memory": memory,
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": os_name,
        "Packages": ", ".join(versions),
        "Date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# --- API Gateway, as far as the Lambdas can tell --------------------------------------------------

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


# --- the environment ------------------------------------------------------------------------------

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


class Bench:
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

    # -- set-up and tear-down

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

    # -- 1. the warm gateway path against the bare SDK call

    def chat_body(self) -> dict:
        return {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": MAX_TOKENS}

    def direct_client(self):
        import anthropic

        return anthropic.Anthropic(base_url=self.standin_url, api_key=POOL_KEY, max_retries=0, timeout=20)

    def direct_call(self, client) -> None:
        # What the gateway sends for this tenant: its context as system text and its temperature.
        client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": PROMPT}],
                               system=f"You are assisting the team at {COMPANY}.", extra_body={"temperature": 0.7})

    def gateway_call(self, tenant: Tenant, probe) -> "Sample":
        """One POST /ai/chat as API Gateway makes it: the authorizer, then the route."""
        gw = self.gateway
        auth_event = gw.auth_event(tenant.token, "POST", "/ai/chat")
        event = gw.event("POST", "/ai/chat", self.chat_body(), tenant.token)
        seconds0, calls0, cpu0 = probe.seconds, probe.total, time.thread_time()
        t0 = time.perf_counter()
        authorizer = gw.authorize(auth_event)
        t1 = time.perf_counter()
        seconds1 = probe.seconds
        event["requestContext"]["authorizer"] = authorizer
        status, body = gw.invoke(event)
        t2 = time.perf_counter()
        cpu = time.thread_time() - cpu0
        if status != 200:
            raise RuntimeError(f"POST /ai/chat answered {status}: {body}")
        return Sample(total=t2 - t0, auth=t1 - t0, route=t2 - t1, dynamo_auth=seconds1 - seconds0,
                      dynamo_route=probe.seconds - seconds1, calls=probe.total - calls0, cpu=cpu)

    def measure_overhead(self) -> None:
        section("1. gateway overhead: POST /ai/chat through the Lambda entry points vs the bare SDK call")
        s = self.sizes
        client = self.direct_client()
        per_round: Dict[str, List[float]] = defaultdict(list)
        for round_no in range(s.rounds):
            tenant = self.new_tenant(f"bench-overhead-{round_no}")
            if round_no == 0:
                self.gateway_tenant = tenant
            gw: List[Sample] = []
            direct: List[Tuple[float, float]] = []
            back_to_back: List[float] = []
            with self.probe() as probe:
                for _ in range(s.warmup if round_no == 0 else 5):
                    self.gateway_call(tenant, probe)
                    self.direct_call(client)
                # Strictly alternating, so each direct call, like the gateway's own model call, follows other
                # work: a call straight after another is ~1 ms faster on loopback, which would flatter it.
                for _ in range(s.per_round):
                    gw.append(self.gateway_call(tenant, probe))
                    cpu0 = time.thread_time()
                    t0 = time.perf_counter()
                    self.direct_call(client)
                    direct.append((time.perf_counter() - t0, time.thread_time() - cpu0))
                for _ in range(20):
                    t0 = time.perf_counter()
                    self.direct_call(client)
                    back_to_back.append(time.perf_counter() - t0)
            ms = lambda values: [v * 1000 for v in values]  # noqa: E731
            total = ms(g.total for g in gw)
            dynamo = ms(g.dynamo_auth + g.dynamo_route for g in gw)
            excl = ms(g.total - g.dynamo_auth - g.dynamo_route for g in gw)
            d_total = ms(d[0] for d in direct)
            for q in (50, 95):
                per_round[f"gw{q}"].append(percentile(total, q))
                per_round[f"direct{q}"].append(percentile(d_total, q))
                per_round[f"diff{q}"].append(percentile(total, q) - percentile(d_total, q))
                per_round[f"dynamo{q}"].append(percentile(dynamo, q))
                per_round[f"excl{q}"].append(percentile(excl, q))
                per_round[f"over{q}"].append(percentile(excl, q) - percentile(d_total, q))
            per_round["b2b50"].append(percentile(ms(back_to_back), 50))
            per_round["auth50"].append(percentile(ms(g.auth for g in gw), 50))
            per_round["auth_excl50"].append(percentile(ms(g.auth - g.dynamo_auth for g in gw), 50))
            per_round["route50"].append(percentile(ms(g.route for g in gw), 50))
            per_round["route_excl50"].append(percentile(ms(g.route - g.dynamo_route for g in gw), 50))
            per_round["calls"].append(statistics.mean(g.calls for g in gw))
            gw_cpu, d_cpu = percentile(ms(g.cpu for g in gw), 50), percentile(ms(d[1] for d in direct), 50)
            per_round["gwcpu"].append(gw_cpu)
            per_round["dcpu"].append(d_cpu)
            per_round["cpuover"].append(gw_cpu - d_cpu)
            print(f"  round {round_no + 1}/{s.rounds}: gateway p50 {percentile(total, 50):.2f} ms, of which in "
                  f"DynamoDB "
                  f"{percentile(dynamo, 50):.2f} ms; direct p50 {percentile(d_total, 50):.2f} ms; overhead excl. "
                  f"DynamoDB p50 {per_round['over50'][-1]:.2f} ms, p95 {per_round['over95'][-1]:.2f} ms", flush=True)
        client.close()
        self.cpu_per_request_ms = statistics.median(per_round["gwcpu"])
        r, sec = self.report, "1 Gateway"
        n = s.per_round
        r.add(sec, f"gateway: authorizer + route, p50 ({n} requests/round)", per_round["gw50"], "ms", 2)
        r.add(sec, "gateway p95", per_round["gw95"], "ms", 2)
        r.add(sec, "direct SDK call p50 (alternating with the gateway)", per_round["direct50"], "ms", 2)
        r.add(sec, "direct SDK call p95", per_round["direct95"], "ms", 2)
        r.add(sec, "direct SDK call p50, back-to-back (reference only)", per_round["b2b50"], "ms", 2)
        r.add(sec, "difference p50 (gateway - direct)", per_round["diff50"], "ms", 2)
        r.add(sec, "difference p95", per_round["diff95"], "ms", 2)
        r.add(sec, "inside DynamoDB calls per request p50 (moto)", per_round["dynamo50"], "ms", 2)
        r.add(sec, "inside DynamoDB calls per request p95 (moto)", per_round["dynamo95"], "ms", 2)
        r.add(sec, "DynamoDB calls per request (mean, incl. tenant cache refresh)", per_round["calls"], "calls", 2)
        r.add(sec, "gateway excl. DynamoDB p50", per_round["excl50"], "ms", 2)
        r.add(sec, "gateway excl. DynamoDB p95", per_round["excl95"], "ms", 2)
        r.add(sec, "  authorizer excl. DynamoDB p50", per_round["auth_excl50"], "ms", 2)
        r.add(sec, "  route excl. DynamoDB p50 (model call included)", per_round["route_excl50"], "ms", 2)
        r.add(sec, "overhead excl. DynamoDB p50 = gateway excl. DynamoDB - direct", per_round["over50"], "ms", 2,
              "<= 3 ms", lambda v: v <= 3)
        r.add(sec, "overhead excl. DynamoDB p95", per_round["over95"], "ms", 2, "<= 8 ms", lambda v: v <= 8)
        r.add(sec, "CPU per request p50 (calling thread): gateway", per_round["gwcpu"], "ms", 2)
        r.add(sec, "CPU per request p50 (calling thread): direct", per_round["dcpu"], "ms", 2)
        r.add(sec, "CPU overhead p50 (gateway - direct; includes botocore inside DynamoDB calls)",
              per_round["cpuover"], "ms", 2)

    # -- 2. DynamoDB round trips per entry point

    def measure_round_trips(self) -> None:
        section("2. DynamoDB round trips per call")
        s, gw = self.sizes, self.gateway
        tenant = self.new_tenant("bench-trips", with_key=True)
        route_calls, route_ops = [], Counter()
        with self.probe() as probe:
            for _ in range(3):
                self.gateway_call(tenant, probe)
            for _ in range(s.trips):
                authorizer = gw.authorize(gw.auth_event(tenant.token, "POST", "/ai/chat"))
                event = gw.event("POST", "/ai/chat", self.chat_body(), tenant.token, authorizer=authorizer)
                probe.reset()
                status, _ = gw.invoke(event)
                assert status == 200
                route_calls.append(probe.total)
                if probe.total == statistics.mode(route_calls):
                    route_ops = Counter(probe.calls)
        jwt_calls, jwt_ops = self._authorizer_trips(tenant.token)
        key_calls, key_ops = self._authorizer_trips(tenant.api_key)
        login_calls, login_ms, login_ops = [], [], Counter()
        with self.probe() as probe:
            for _ in range(s.logins):
                probe.reset()
                t0 = time.perf_counter()
                status, _ = gw.request("POST", "/auth/login", {"tenant": tenant.slug, "email": tenant.email,
                                                                "password": tenant.password})
                login_ms.append((time.perf_counter() - t0) * 1000)
                assert status == 200
                login_calls.append(probe.total)
                login_ops = Counter(probe.calls)
        usage_calls, usage_ops = [], Counter()
        with self.probe() as probe:
            for _ in range(max(3, s.trips // 3)):
                authorizer = gw.authorize(gw.auth_event(tenant.token, "GET", "/usage"))
                event = gw.event("GET", "/usage", None, tenant.token, authorizer=authorizer)
                probe.reset()
                status, _ = gw.invoke(event)
                assert status == 200
                usage_calls.append(probe.total)
                usage_ops = Counter(probe.calls)
        r, sec = self.report, "2 Round trips"
        r.add(sec, f"POST /ai/chat route, tenant cache warm [{ops(route_ops)}]", route_calls, "calls", 1,
              "<= 2", lambda v: v <= 2)
        r.add(sec, f"authorizer, JWT, every call [{ops(jwt_ops)}]", jwt_calls, "calls", 1, "<= 1", lambda v: v <= 1)
        r.add(sec, f"authorizer, API key, every call [{ops(key_ops)}]", key_calls, "calls", 1, "<= 1",
              lambda v: v <= 1)
        r.add(sec, "AI request end to end (authorizer + route)",
              [a + b for a, b in zip(jwt_calls, route_calls)], "calls", 1)
        r.add(sec, f"POST /auth/login [{ops(login_ops)}]", login_calls, "calls", 1)
        r.add(sec, "POST /auth/login latency (argon2 verify included)", login_ms, "ms", 1)
        r.add(sec, f"GET /usage route [{ops(usage_ops)}]", usage_calls, "calls", 1)

    def _authorizer_trips(self, token: str) -> Tuple[List[int], Counter]:
        gw = self.gateway
        calls, last = [], Counter()
        with self.probe() as probe:
            for _ in range(self.sizes.trips):
                probe.reset()
                assert gw.authorize(gw.auth_event(token, "POST", "/ai/chat")) is not None
                calls.append(probe.total)
                last = Counter(probe.calls)
        return calls, last

    # -- profile of the warm path

    def profile_warm_path(self) -> None:
        section(f"profile: {self.sizes.profile_requests} warm gateway requests under cProfile (this thread's CPU time)")
        tenant = self.new_tenant("bench-profile")
        with self.probe() as probe:
            for _ in range(5):
                self.gateway_call(tenant, probe)
            profiler = cProfile.Profile(time.thread_time)
            wall0 = time.perf_counter()
            profiler.enable()
            for _ in range(self.sizes.profile_requests):
                self.gateway_call(tenant, probe)
            profiler.disable()
            wall = time.perf_counter() - wall0
        stats = pstats.Stats(profiler)
        n = self.sizes.profile_requests
        cpu_total = stats.total_tt
        print(f"  {n} requests: {wall * 1000 / n:.2f} ms wall, {cpu_total * 1000 / n:.2f} ms CPU per request "
              f"(profiler overhead included)")
        for key, title in (("cumulative", "cumulative"), ("tottime", "tottime")):
            buffer = io.StringIO()
            pstats.Stats(profiler, stream=buffer).sort_stats(key).print_stats(25)
            text = _trim_profile(buffer.getvalue())
            print(f"\n  top 25 by {title}:\n{text}")
            self.report.block(f"Warm path profile: top 25 by {title} ({n} requests, CPU time of the calling "
                              f"thread; moto and the stand-in excluded)", text)
        areas = (f"unprofiled CPU per gateway request (section 1, p50): {self.cpu_per_request_ms:.2f} ms\n"
                 + _profile_areas(stats, n))
        self.report.block("Warm path profile: CPU per request by area (cumulative; nested areas are indented)",
                          areas)
        print(areas)

    # -- 5. concurrency

    def measure_concurrency(self) -> None:
        s = self.sizes
        section(f"5. concurrency: {s.threads} threads on one tenant through the Lambda entry points")
        from dev.stack import stream_worker
        from chalicelib.metering import admission, usage
        from chalicelib.models import FeatureUsage, UsagePeriod, tenant_pk
        from chalicelib.periods import current_period

        # chalice keeps `current_request` on the app object, which is safe only one request at a time
        # (as in Lambda). Each thread therefore drives its own instance of app.py; chalicelib (the
        # gateway, its caches and the one DynamoDB client) is shared, as in one warm process.
        apps = [ApiGateway(_load_app_copy(i)) for i in range(s.threads)]
        throughput, p50s, p95s, exact = [], [], [], []
        for round_no in range(s.concurrency_rounds):
            tenant = self.new_tenant(f"bench-concurrency-{round_no}")
            warm = [gw.request("POST", "/ai/chat", self.chat_body(), tenant.token) for gw in apps[:2]]
            assert all(status == 200 for status, _ in warm), warm
            results: List[Tuple[int, Any, float]] = []
            barrier = threading.Barrier(s.threads + 1)

            def hammer(gw: ApiGateway) -> None:
                barrier.wait()
                for _ in range(s.per_thread):
                    t0 = time.perf_counter()
                    status, body = gw.request("POST", "/ai/chat", self.chat_body(), tenant.token)
                    results.append((status, body, time.perf_counter() - t0))

            threads = [threading.Thread(target=hammer, args=(gw,)) for gw in apps]
            for t in threads:
                t.start()
            barrier.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - t0
            ok = [b for st, b, _ in results if st == 200]
            others = Counter(st for st, _, _ in results if st != 200)
            answered = ok + [b for _, b in warm]
            cost = sum(int(Decimal(b["cost_usd"]) * 1_000_000) for b in answered)
            pk, period = tenant_pk(tenant.tenant_id), current_period()
            stream_worker.StreamPump().drain(timeout=120)  # fold the usage stream, as Lambda would
            feature = FeatureUsage.get(pk, FeatureUsage.sk_for(period, "basic_chat"), consistent_read=True)
            aggregate = UsagePeriod.get(pk, UsagePeriod.sk_for(period), consistent_read=True)
            view, returns = usage.admission_state(tenant.tenant_id)
            admitted = view.counters.get(admission.admitted_key(period, "basic_chat"), 0) - returns.released(
                period, "basic_chat")
            committed = view.counters.get(admission.committed_key(period), 0) - returns.refunded(period)
            right = (admitted == len(answered) and int(feature.requests) == len(answered)
                     and int(aggregate.requests) == len(answered) and int(aggregate.cost_micros) == cost
                     and int(feature.cost_micros) == cost and committed == cost)
            exact.append(1.0 if right else 0.0)
            throughput.append(len(results) / elapsed)
            latencies = [lat * 1000 for _, _, lat in results]
            p50s.append(percentile(latencies, 50))
            p95s.append(percentile(latencies, 95))
            print(f"  round {round_no + 1}: {len(results)} requests in {elapsed:.2f} s, {len(ok)} x 200"
                  f"{', others: ' + str(dict(others)) if others else ''}; with 2 warm-up calls: admitted "
                  f"{admitted}, requests {int(aggregate.requests)}, cost {int(aggregate.cost_micros)} "
                  f"micro-USD vs {len(answered)} answered costing {cost}: {'exact' if right else 'MISMATCH'}",
                  flush=True)
        r, sec = self.report, f"5 Concurrency ({s.threads} threads)"
        r.add(sec, f"throughput, {s.threads * s.per_thread} requests/round", throughput, "req/s", 1)
        r.add(sec, "latency under load p50", p50s, "ms", 1)
        r.add(sec, "latency under load p95", p95s, "ms", 1)
        r.add(sec, "rounds whose counters end exact (admitted, requests, cost = 200s, sum of cost_usd)",
              [sum(exact)], f"of {len(exact)} rounds", 0, "all", verdict="HOLD" if all(exact) else "MISS")

    # -- 7, 8. the ledger under DynamoDB's conflict semantics, and the production latency estimate

    def measure_latency_estimate(self) -> None:
        section("8. latency estimate: the synchronous part of a warm AI request")
        from dev.bench import ledger as bench_ledger
        from chalicelib.ai.gateway import FeatureCall, Gateway
        from chalicelib.tenancy import TenantContext

        tenant = self.new_tenant("bench-latency")
        ctx = TenantContext(tenant.tenant_id, "usr_bench", "user", "owner", tenant.email, tenant.slug)
        call = FeatureCall(messages=[{"role": "user", "content": PROMPT}], max_tokens=MAX_TOKENS)
        bench_ledger.measure_latency(self.report, Gateway, ctx, call, samples=self.sizes.profile_requests)

    def measure_ledger_contention(self) -> None:
        section("7. the ledger under DynamoDB's conflict semantics: one tenant, 16/64/256 in flight")
        from dev.bench import ledger as bench_ledger

        run = bench_ledger.LedgerBench(self.report, self.standin_url, quick=self.sizes is QUICK)
        try:
            run.start()
            run.run()
        finally:
            run.stop()

    # -- 4. what grows with usage events

    def seed_scale(self, table: str, events: int, ids: List[str]) -> Tuple[str, str]:
        """Budgeted tenants `ids`; the first ('heavy') holds `events` usage events and the others share as
        many again. Aggregates are written directly (what settle would have left). Returns the heavy
        tenant's id and table."""
        from chalicelib import pricing
        from chalicelib.ids import new_request_id
        from chalicelib.models import (TENANT_LIST_PARTITION, AIConfig, FeatureUsage, Tenant, UsageEvent,
                                       UsagePeriod, budget_segment, tenant_pk)
        from chalicelib.periods import current_period, period_start

        self.use_table(table)
        now = datetime.now(timezone.utc)
        period = current_period()
        start = period_start(period).timestamp()
        span = max(1.0, now.timestamp() - start - 1)
        n_tenants = len(ids)
        counts = [events] + [events // (n_tenants - 1) + (1 if i < events % (n_tenants - 1) else 0)
                             for i in range(n_tenants - 1)]
        cost = pricing.cost_micros(MODEL, 20, 40)
        with Tenant.batch_write() as batch:
            for i, tid in enumerate(ids):
                batch.save(Tenant(tenant_pk(tid), Tenant.SK, tenant_id=tid, name=f"Scale {i}", slug=f"scale-{tid}",
                                  plan="pro", status="active", created_at=now, owner_count=1,
                                  monthly_budget_micros=10_000 * pricing.MICROS_PER_USD,
                                  budget_alert_thresholds={50, 80, 100}, budget_hard_limit=False,
                                  gsi1pk=TENANT_LIST_PARTITION, gsi1sk=f"{now.isoformat()}#{tid}",
                                  gsi2pk=budget_segment(tid), gsi2sk=tid))
                batch.save(AIConfig(tenant_pk(tid), AIConfig.SK, model=MODEL, max_tokens=1024, temperature=0.7))
        with UsagePeriod.batch_write() as batch:
            for tid, count in zip(ids, counts):
                pk = tenant_pk(tid)
                batch.save(UsagePeriod(pk, UsagePeriod.sk_for(period), period=period, requests=count,
                                       input_tokens=20 * count, output_tokens=40 * count, cost_micros=cost * count,
                                       pool_requests=count, pool_cost_micros=cost * count))
                batch.save(FeatureUsage(pk, FeatureUsage.sk_for(period, "basic_chat"), feature="basic_chat",
                                        requests=count, input_tokens=20 * count,
                                        output_tokens=40 * count, cost_micros=cost * count))
        with UsageEvent.batch_write() as batch:
            for tid, count in zip(ids, counts):
                pk = tenant_pk(tid)
                for i in range(count):
                    moment = start + span * (i + 0.5) / count
                    request_id = new_request_id(moment)
                    batch.save(UsageEvent(pk, UsageEvent.sk_for(request_id), request_id=request_id,
                                          principal_id="usr_scale", principal_type="user", feature="basic_chat",
                                          model=MODEL, status="ok", input_tokens=20, output_tokens=40,
                                          cost_micros=cost, latency_ms=3, key_source="platform",
                                          created_at=datetime.fromtimestamp(moment, timezone.utc),
                                          expires_at=timedelta(days=400)))
        return ids[0], table

    def measure_scaling(self) -> None:
        s = self.sizes
        small, large = s.scale_events
        section(f"4. scaling: budget job over {s.scale_tenants} budgeted tenants and GET /usage, "
                f"{small:,} vs {large:,} events")
        from chalicelib.jobs.budget_check import check_budgets

        scenarios = {}
        # The same tenants in both tables, so only the events differ: the job's reads depend on how the
        # tenants fall into its segments (a segment with none needs no BatchGetItem).
        ids = [f"ten_scale{secrets.token_hex(6)}" for _ in range(s.scale_tenants)]
        for events in (small, large):
            t0 = time.perf_counter()
            heavy, table = self.seed_scale(f"bench-scale-{events}", events, ids)
            scenarios[events] = (heavy, table)
            print(f"  seeded {table}: {s.scale_tenants} tenants, {2 * events:,} events "
                  f"(the measured tenant holds {events:,}) in {time.perf_counter() - t0:.1f} s", flush=True)
        job: Dict[str, Dict[int, List[float]]] = defaultdict(lambda: defaultdict(list))
        usage: Dict[str, Dict[int, List[float]]] = defaultdict(lambda: defaultdict(list))
        checked: Dict[int, int] = {}
        gw = self.gateway
        for rep in range(max(s.scale_reps, s.usage_reps)):
            for events in ((small, large) if rep % 2 == 0 else (large, small)):
                heavy, table = scenarios[events]
                self.use_table(table)
                with self.probe() as probe:
                    if rep < s.scale_reps:
                        t0 = time.perf_counter()
                        result = check_budgets(workers=1)  # moto serves one request at a time
                        ms = (time.perf_counter() - t0) * 1000
                        job["ms"][events].append(ms)
                        job["app_ms"][events].append(ms - probe.seconds * 1000)
                        job["reads"][events].append(sum(n for op, n in probe.calls.items() if op in READS))
                        job["writes"][events].append(sum(n for op, n in probe.calls.items() if op not in READS))
                        job["items"][events].append(probe.items_read)
                        checked[events] = result.tenants_checked
                    authorizer = {"tenant_id": heavy, "principal_id": "usr_scale", "principal_type": "user",
                                  "role": "owner", "display": "owner@scale.example.com", "slug": f"scale-{heavy}",
                                  "principalId": "usr_scale", "integrationLatency": 0}
                    for path, query in (("/usage", None), ("/usage/events", {"limit": "50"})):
                        event = gw.event("GET", path, query=query, authorizer=authorizer)
                        probe.reset()
                        t0 = time.perf_counter()
                        status, body = gw.invoke(event)
                        ms = (time.perf_counter() - t0) * 1000
                        assert status == 200, (status, body)
                        if path == "/usage":
                            assert body["requests"] == events, body
                            usage["ms"][events].append(ms)
                            usage["app_ms"][events].append(ms - probe.seconds * 1000)
                            usage["calls"][events].append(probe.total)
                            usage["items"][events].append(probe.items_read)
                        else:
                            assert len(body["events"]) == 50, body
                            usage["events_ms"][events].append(ms)
                            usage["events_app_ms"][events].append(ms - probe.seconds * 1000)
        r, sec = self.report, "4 Scaling"

        def same(series: Dict[int, List[float]]) -> bool:
            return len(set(series[small]) | set(series[large])) == 1

        def ratio(series: Dict[int, List[float]]) -> List[float]:
            return [b / a for a, b in zip(series[small], series[large])]

        job_flat = same(job["reads"]) and same(job["items"])
        usage_flat = same(usage["calls"]) and same(usage["items"])
        label = {small: f"{2 * small:,} events", large: f"{2 * large:,} events"}
        for events in (small, large):
            r.add(sec, f"budget job, {checked[events]} tenants, {label[events]}: DynamoDB reads",
                  job["reads"][events], "calls", 0, "same at both", verdict="HOLD" if job_flat else "MISS")
        for events in (small, large):
            r.add(sec, f"budget job, {label[events]}: items read", job["items"][events], "items", 0,
                  "same at both", verdict="HOLD" if job_flat else "MISS")
        for events in (small, large):
            r.add(sec, f"budget job, {label[events]}: writes (no threshold crossed)", job["writes"][events],
                  "calls", 0)
        for events in (small, large):
            r.add(sec, f"budget job, {label[events]}: time (moto Query scans the whole table)",
                  job["ms"][events], "ms", 1)
        for events in (small, large):
            r.add(sec, f"budget job, {label[events]}: time excl. DynamoDB", job["app_ms"][events], "ms", 1)
        r.add(sec, f"budget job: time excl. DynamoDB, ratio {label[large]} / {label[small]}", ratio(job["app_ms"]),
              "x", 2, "<= 1.25", lambda v: v <= 1.25)
        for events in (small, large):
            r.add(sec, f"GET /usage, tenant with {events:,} events: DynamoDB calls", usage["calls"][events], "calls",
                  0, "same at both", verdict="HOLD" if usage_flat else "MISS")
        for events in (small, large):
            r.add(sec, f"GET /usage, tenant with {events:,} events: items read", usage["items"][events], "items", 0,
                  "same at both", verdict="HOLD" if usage_flat else "MISS")
        for events in (small, large):
            r.add(sec, f"GET /usage, tenant with {events:,} events: route latency (moto scans the table)",
                  usage["ms"][events], "ms", 2)
        for events in (small, large):
            r.add(sec, f"GET /usage, tenant with {events:,} events: latency excl. DynamoDB", usage["app_ms"][events],
                  "ms", 2)
        r.add(sec, f"GET /usage: latency excl. DynamoDB, ratio {large:,} / {small:,}", ratio(usage["app_ms"]), "x",
              2, "<= 1.25", lambda v: v <= 1.25)
        r.add(sec, f"GET /usage: raw latency ratio {large:,} / {small:,} (moto)", ratio(usage["ms"]), "x", 2)
        for events in (small, large):
            r.add(sec, f"GET /usage/events?limit=50, {events:,} events: latency excl. DynamoDB",
                  usage["events_app_ms"][events], "ms", 2)

    # -- 6. the deployment package

    def measure_package(self) -> None:
        section("6. deployment package")
        out = self.workdir / "package"
        env = {**os.environ, "AWS_DEFAULT_REGION": stack.REGION}
        for variable in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.pop(variable, None)
        t0 = time.perf_counter()
        how = "python -m dev.deploy.package --stage prod"
        args = [sys.executable, "-m", "dev.deploy.package", "--stage", "prod", "--out", str(out)]
        result = subprocess.run(args, cwd=str(ROOT), env=env, capture_output=True, text=True)
        zip_path = out / "deployment.zip"
        if result.returncode != 0 or not zip_path.exists():
            print(f"  packaging failed ({how}, exit {result.returncode}):\n{result.stdout}{result.stderr}")
            self.report.note(f"Packaging with `{how}` failed (exit {result.returncode}); no zip figures.")
            return
        elapsed = time.perf_counter() - t0
        size = zip_path.stat().st_size
        sizes, zipped, files = Counter(), Counter(), Counter()
        pyc = 0
        with zipfile.ZipFile(zip_path) as archive:
            for info in archive.infolist():
                top = info.filename.split("/", 1)[0]
                sizes[top] += info.file_size
                zipped[top] += info.compress_size
                files[top] += 1
                pyc += info.filename.endswith(".pyc")
            self.zip_dir = self.workdir / "lambda-task"
            archive.extractall(self.zip_dir)
        print(f"  {how}: {zip_path.name} {size / 1e6:.2f} MB in {elapsed:.1f} s, {pyc} .pyc files")
        self.report.add("6 Package", f"deployment.zip ({how})", [size / 1e6], "MB", 2, "<= 20 MB",
                        lambda v: v <= 20)
        self.report.add("6 Package", ".pyc files in the zip", [pyc], "files", 0)
        largest = sorted(sizes, key=lambda k: (-zipped[k], k))[:10]
        rows = [[name, f"{zipped[name] / 1e6:.2f}", f"{sizes[name] / 1e6:.2f}", str(files[name]),
                 f"{100 * zipped[name] / size:.0f}%"] for name in largest]
        self.report.table("Largest top-level entries in deployment.zip (by zipped size)",
                          ["Entry", "Zipped MB", "Unzipped MB", "Files", "Share of zip"], rows)
        for row in rows:
            print("   ", "  ".join(row))
        observability = [name for name in sizes if name.split("-")[0] in OBSERVABILITY_PACKAGES]
        self.report.add("6 Package", "of which Powertools, the X-Ray SDK and wrapt (zipped)",
                        [sum(zipped[name] for name in observability) / 1e6], "MB", 2)
        # The same tree without its bytecode (what chalice ships by itself), for the cold starts of section 3.
        self.zip_source_dir = self.workdir / "lambda-task-source"
        shutil.copytree(self.zip_dir, self.zip_source_dir, ignore=shutil.ignore_patterns("__pycache__"))
        sources_only = _zip_tree(self.zip_source_dir, self.workdir / "deployment-without-pyc.zip")
        self.report.add("6 Package", "deployment.zip without its .pyc (for comparison)",
                        [sources_only.stat().st_size / 1e6], "MB", 2)

    # -- 3. cold start

    def cold_trees(self) -> Dict[str, "Tree"]:
        """The module trees a cold start can meet, each with the environment that makes it so."""
        for name in ("pyc", "src"):
            target = self.workdir / f"cold-{name}"
            target.mkdir()
            shutil.copy2(ROOT / "app.py", target / "app.py")
            shutil.copytree(ROOT / "chalicelib", target / "chalicelib",
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            if name == "pyc":
                compileall.compile_dir(str(target), quiet=1)
        runs = self.sizes.cold_runs
        no_write = {"PYTHONDONTWRITEBYTECODE": "1"}
        trees = {
            "our code precompiled": Tree(self.workdir / "cold-pyc", {}, runs),
            "our code from source": Tree(self.workdir / "cold-src", no_write, runs),
        }
        if self.zip_dir is not None:
            # As in Lambda: /var/task (the zip) first, then the runtime's own boto3 and botocore with their
            # dependencies, and nothing else: `-S` keeps the venv's site-packages (moto's cryptography,
            # blinker, ...) off the path, so only what the zip and the runtime hold can be imported.
            runtime = self.workdir / "lambda-runtime"
            runtime.mkdir()
            for name in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py"):
                (runtime / name).symlink_to(Path(SITE_PACKAGES) / name)
            # In Lambda: LAMBDA_TASK_ROOT and, with active tracing, a trace header per invocation.
            in_lambda = {"LAMBDA_TASK_ROOT": str(self.zip_dir), "_X_AMZN_TRACE_ID": LAMBDA_TRACE_HEADER}
            for name, tree, extra in (
                    ("Lambda zip as shipped", self.zip_dir, in_lambda),
                    ("Lambda zip, tracing off", self.zip_dir, {**in_lambda, "POWERTOOLS_TRACE_DISABLED": "true"}),
                    ("Lambda zip without .pyc (before)", self.zip_source_dir, in_lambda)):
                trees[name] = Tree(tree, {**no_write, **extra, "PYTHONPATH": f"{tree}{os.pathsep}{runtime}"}, runs,
                                   flags=("-S",))
        empty = self.workdir / "empty-pycache"
        empty.mkdir()
        trees["nothing precompiled"] = Tree(self.workdir / "cold-src", {**no_write, "PYTHONPYCACHEPREFIX": str(empty)},
                                            min(3, runs), warm=False)
        return trees

    def measure_cold_start(self) -> None:
        s = self.sizes
        section(f"3. cold start: fresh processes, {s.cold_runs} runs of each, interleaved")
        tenant = self.gateway_tenant
        self.use_table("bench-overhead-0")
        gw = self.gateway
        authorizer = gw.authorize(gw.auth_event(tenant.token, "POST", "/ai/chat"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update({"BENCH_TOKEN": tenant.token, "BENCH_ARN": gw.method_arn("POST", "/ai/chat"),
                    "BENCH_EVENT": json.dumps(gw.event("POST", "/ai/chat", self.chat_body(), tenant.token,
                                                       authorizer=authorizer))})
        trees = self.cold_trees_cache
        kinds = ("baseline", "authorizer", "floor", "ai")
        results: Dict[Tuple[str, str], List[dict]] = defaultdict(list)
        for tree in trees.values():   # one untimed run each, so the OS file cache is warm for all
            if tree.warm:
                for kind in kinds:
                    _cold_child(kind, tree, env)
        for run in range(max(t.runs for t in trees.values())):
            for name, tree in trees.items():
                if run < tree.runs:
                    for kind in kinds:
                        results[(name, kind)].append(_cold_child(kind, tree, env))
            print(f"  run {run + 1}: " + ", ".join(
                f"{name}: app {results[(name, 'authorizer')][-1]['import'] * 1000:.0f} / baseline "
                f"{results[(name, 'baseline')][-1]['import'] * 1000:.0f} ms" for name, tree in trees.items()
                if run < tree.runs), flush=True)
        r = self.report
        for tree in trees:
            sec = f"3 Cold start ({tree})"
            base = [x["import"] * 1000 for x in results[(tree, "baseline")]]
            auth = results[(tree, "authorizer")]
            ai = results[(tree, "ai")]
            r.add(sec, "baseline: import boto3, pynamodb, chalice (+ pynamodb Model)", base, "ms", 0)
            r.add(sec, "import app (authorizer Lambda: import only)", [x["import"] * 1000 for x in auth], "ms", 0)
            floor = results[(tree, "floor")]
            r.add(sec, "floor: import chalice + chalicelib.identity.resolve only (what the authorizer uses)",
                  [x["import"] * 1000 for x in floor], "ms", 0)
            r.add(sec, "import app + first tenant_auth (JWT, 1 BatchGetItem)",
                  [(x["import"] + x["first_call"]) * 1000 for x in auth], "ms", 0)
            r.add(sec, "ratio import app / baseline", [x["import"] / b["import"] for x, b in
                                                       zip(auth, results[(tree, "baseline")])], "x", 2,
                  "<= 1.3x", lambda v: v <= 1.3)
            r.add(sec, "ratio floor / baseline", [x["import"] / b["import"] for x, b in
                                                  zip(floor, results[(tree, "baseline")])], "x", 2)
            r.add(sec, "ratio (import app + first auth) / baseline",
                  [(x["import"] + x["first_call"]) / b["import"] for x, b in zip(auth, results[(tree, "baseline")])],
                  "x", 2)
            r.add(sec, "import app + import anthropic (AI route Lambda, until the client has the SDK)",
                  [(x["import"] + x["anthropic"]) * 1000 for x in ai], "ms", 0)
            shipped = tree == "Lambda zip as shipped"
            r.add(sec, "first AI request's imports: app + anthropic + Tracer (X-Ray SDK, when tracing is on)",
                  [(x["import"] + x["anthropic"] + x["tracer"]) * 1000 for x in ai], "ms", 0,
                  "<= 1000 ms" if shipped else "", (lambda v: v <= 1000) if shipped else None)
            r.add(sec, "  of which the Tracer", [x["tracer"] * 1000 for x in ai], "ms", 0)
            r.add(sec, "import app + anthropic + Tracer + first POST /ai/chat",
                  [(x["import"] + x["anthropic"] + x["tracer"] + x["first_call"]) * 1000 for x in ai], "ms", 0)
            if shipped:
                r.add(sec, "authorizer's import (import app)", [x["import"] * 1000 for x in auth], "ms", 0,
                      "<= 400 ms", lambda v: v <= 400)
            leaked = sum(x["anthropic_after_import"] or x["anthropic_after_call"] or x["xray_after_call"]
                         for x in auth)
            r.add(sec, "runs with anthropic or the X-Ray SDK in sys.modules after import app / first auth", [leaked],
                  "runs", 0,
                  "0", verdict="HOLD" if leaked == 0 else "MISS")

    def measure_importtime(self) -> None:
        section("import profile: python -X importtime")
        tree = "Lambda zip as shipped" if self.zip_dir is not None else "our code from source"
        trees = self.cold_trees_cache
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        for label, code in (("import app", "import app"),
                            ("import anthropic after app", "import app; import anthropic")):
            for name in (tree, "our code precompiled"):
                runs = [_importtime(code, trees[name], env) for _ in range(self.sizes.importtime_runs)]
                selfs: Dict[str, List[float]] = defaultdict(list)
                cumulative: Dict[str, List[float]] = defaultdict(list)
                for run in runs:
                    for module, (own, cum) in run.items():
                        selfs[module].append(own)
                        cumulative[module].append(cum)
                own = {m: statistics.median(v) for m, v in selfs.items()}
                cum = {m: statistics.median(v) for m, v in cumulative.items()}
                if label == "import anthropic after app":
                    before = _importtime("import app", trees[name], env)
                    own = {m: v for m, v in own.items() if m not in before}
                packages: Dict[str, float] = defaultdict(float)
                for module, value in own.items():
                    packages[module.split(".")[0]] += value
                total = sum(own.values())
                top_packages = sorted(packages.items(), key=lambda kv: -kv[1])[:12]
                rows = [[p, f"{v / 1000:.1f}", f"{100 * v / total:.0f}%"] for p, v in top_packages]
                self.report.table(f"`{label}` by top-level package ({name}; self time summed, median of "
                                  f"{len(runs)}; total {total / 1000:.0f} ms)", ["Package", "ms", "Share"], rows)
                print(f"  {label} ({name}): {total / 1000:.0f} ms; " +
                      ", ".join(f"{p} {v / 1000:.0f}" for p, v in top_packages[:6]))
                if name == tree:
                    top = sorted(own.items(), key=lambda kv: -kv[1])[:20]
                    self.report.table(f"`{label}`: top 20 modules by self time ({name})",
                                      ["Module", "Self ms", "Cumulative ms"],
                                      [[m, f"{v / 1000:.1f}", f"{cum.get(m, 0) / 1000:.1f}"] for m, v in top])

    # -- the whole run

    def timed(self, name: str, step: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        step()
        self.durations[name] = time.perf_counter() - t0
        print(f"  [{name}: {self.durations[name]:.1f} s]", flush=True)

    STEPS = ("package", "gateway overhead", "round trips", "profile", "concurrency", "latency estimate",
             "ledger contention", "scaling", "cold start", "import profile", "snapstart restore")

    def measure_restore(self) -> None:
        from dev.bench import restore_report as bench_restore  # dev/bench/restore_report.py: section 7

        bench_restore.measure(self)

    def run(self, only: Optional[Sequence[str]] = None) -> None:
        if only:
            return self.run_only(only)
        started = time.perf_counter()
        try:
            self.timed("set-up", self.start)
            self.timed("package", self.measure_package)
            self.timed("gateway overhead", self.measure_overhead)
            self.timed("round trips", self.measure_round_trips)
            self.timed("profile", self.profile_warm_path)
            self.timed("concurrency", self.measure_concurrency)
            self.timed("latency estimate", self.measure_latency_estimate)
            self.timed("ledger contention", self.measure_ledger_contention)
            self.timed("scaling", self.measure_scaling)
            self.cold_trees_cache = self.cold_trees()
            self.timed("cold start", self.measure_cold_start)
            self.timed("import profile", self.measure_importtime)
            self.timed("snapstart restore", self.measure_restore)
        finally:
            self.stop()
        self.elapsed = time.perf_counter() - started


    def run_only(self, only: Sequence[str]) -> None:
        """Some sections alone (`--only ledger,latency`): a quicker measurement of what a change touched."""
        steps = {"concurrency": self.measure_concurrency, "latency": self.measure_latency_estimate,
                 "ledger": self.measure_ledger_contention, "round-trips": self.measure_round_trips,
                 "restore": self.measure_restore}
        unknown = [name for name in only if name not in steps]
        if unknown:
            raise SystemExit(f"--only takes {', '.join(steps)}; not {', '.join(unknown)}")
        started = time.perf_counter()
        try:
            self.timed("set-up", self.start)
            for name in only:
                self.timed(name, steps[name])
        finally:
            self.stop()
        self.elapsed = time.perf_counter() - started


# --- helpers that run outside the Bench ----------------------------------------------------------

def _zip_tree(tree: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(tree).as_posix())
    return target


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


def _load_app_copy(index: int) -> Any:
    spec = importlib.util.spec_from_file_location(f"_bench_app_{index}", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _silence_app_output()
    return module


COLD_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
kind = sys.argv[1]
out = {}
if kind == "baseline":
    import boto3, pynamodb, chalice
    from pynamodb.models import Model
    out["import"] = time.perf_counter() - t0
elif kind == "floor":
    from chalice import AuthResponse, Chalice
    from chalicelib.identity.resolve import resolve
    out["import"] = time.perf_counter() - t0
else:
    import app
    out["import"] = time.perf_counter() - t0
    out["anthropic_after_import"] = "anthropic" in sys.modules
    class Context:
        aws_request_id = "cold"
        function_name = "cold"
        def get_remaining_time_in_millis(self):
            return 10000
    if kind == "authorizer":
        t1 = time.perf_counter()
        result = app.tenant_auth({"type": "TOKEN", "authorizationToken": "Bearer " + os.environ["BENCH_TOKEN"],
                                  "methodArn": os.environ["BENCH_ARN"]}, Context())
        out["first_call"] = time.perf_counter() - t1
        assert result["policyDocument"]["Statement"][0]["Resource"], "authorizer denied"
        out["anthropic_after_call"] = "anthropic" in sys.modules
        out["xray_after_call"] = "aws_xray_sdk" in sys.modules
    else:
        t1 = time.perf_counter()
        import anthropic
        out["anthropic"] = time.perf_counter() - t1
        t3 = time.perf_counter()
        from chalicelib import observability
        if observability.tracing_enabled():
            observability.tracer()
        out["tracer"] = time.perf_counter() - t3
        t2 = time.perf_counter()
        response = app.app(json.loads(os.environ["BENCH_EVENT"]), Context())
        out["first_call"] = time.perf_counter() - t2
        assert response["statusCode"] == 200, response
print("BENCH_RESULT " + json.dumps(out))
"""


def _cold_child(kind: str, tree: Tree, env: Dict[str, str]) -> dict:
    cwd = tree.cwd
    result = subprocess.run([sys.executable, *tree.flags, "-c", COLD_CHILD, kind], cwd=str(cwd),
                            env={**env, **tree.env}, capture_output=True, text=True, timeout=120)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):])
    raise RuntimeError(f"cold-start child {kind} in {cwd} failed (exit {result.returncode}):\n"
                       f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")


def _importtime(code: str, tree: Tree, env: Dict[str, str]) -> Dict[str, Tuple[int, int]]:
    """module -> (self us, cumulative us) from `python -X importtime`."""
    result = subprocess.run([sys.executable, *tree.flags, "-X", "importtime", "-c", code], cwd=str(tree.cwd),
                            env={**env, **tree.env}, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"importtime of {code!r} failed:\n{result.stderr[-3000:]}")
    modules = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:"):].split("|", 2)
        modules[name.strip()] = (int(own), int(cumulative))
    return modules


def _trim_profile(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    kept = [line for line in lines[start:] if line.strip()]
    out = "\n".join(kept)
    for prefix in (SITE_PACKAGES + "/", str(ROOT) + "/", sysconfig.get_paths()["stdlib"] + "/"):
        out = out.replace(prefix, "")
    return out


def _module_file(name: str) -> str:
    try:
        return importlib.import_module(name).__file__ or ""
    except ImportError:
        return ""


def _profile_areas(stats: pstats.Stats, n: int) -> str:
    """CPU per request spent under a few functions (cumulative, so areas nest: read each on its own)."""
    import botocore.client
    import chalice.app
    import pydantic

    from chalicelib import logs, store
    from chalicelib.ai import client, features, gateway
    from chalicelib.identity import tokens
    from chalicelib.metering import admission, ledger

    from pynamodb.models import Model
    from pynamodb.transactions import TransactWrite

    def key(function: Any) -> Tuple[str, int, str]:
        code = getattr(function, "__func__", function).__code__
        return code.co_filename, code.co_firstlineno, code.co_name

    wanted = [
        ("authorizer Lambda: ChaliceAuthorizer.__call__", key(chalice.app.ChaliceAuthorizer.__call__)),
        ("  JWT verify (tokens._verify)", key(tokens._verify)),
        ("  store.get_items (BatchGetItem, both Lambdas)", key(store.get_items)),
        ("route Lambda: Chalice.__call__", key(chalice.app.Chalice.__call__)),
        ("  features.chat (body validation)", key(features.chat)),
        ("  Gateway.run", key(gateway.Gateway.run)),
        ("    admission.reserve (one UpdateItem)", key(admission.reserve)),
        ("    ModelClient.complete", key(client.ModelClient.complete)),
        ("      anthropic Messages.create", (_module_file("anthropic.resources.messages.messages"), None,
                                          "create")),
        ("      pydantic BaseModel.model_dump", key(pydantic.BaseModel.model_dump)),
        ("    ledger.record (one PutItem)", key(ledger.record)),
        ("botocore BaseClient._make_api_call (every DynamoDB call)", key(botocore.client.BaseClient._make_api_call)),
        ("  build the request (_convert_to_request_dict; outside the DynamoDB window)",
         key(botocore.client.BaseClient._convert_to_request_dict)),
        ("  sign, send to moto, parse (_make_request; inside the DynamoDB window)",
         key(botocore.client.BaseClient._make_request)),
        ("pynamodb: items from DynamoDB JSON (Model.from_raw_data)", key(Model.from_raw_data)),
        ("pynamodb: transaction items (TransactWrite.update + .save)", key(TransactWrite.update)),
        ("", key(TransactWrite.save)),
        ("logging: Logger._log", key(logging.Logger._log)),
        ("  logs.JsonFormatter.format", key(logs.JsonFormatter.format)),
    ]
    table: Dict[Tuple[str, int, str], Tuple] = stats.stats  # type: ignore[attr-defined]
    lines = [f"total CPU per request (profiled thread, profiler overhead included): "
             f"{stats.total_tt * 1000 / n:.2f} ms"]  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]
    previous = None
    for label, (filename, line, name) in wanted:
        cumulative = sum(ct for (f, l, fn), (_, _, _, ct, _) in table.items()
                         if f == filename and fn == name and (line is None or l == line))
        if not label and previous is not None:  # a continuation: add to the line above
            label, cumulative = previous[0], previous[1] + cumulative
            lines.pop()
        lines.append(f"{label:<75} {cumulative * 1000 / n:7.3f} ms  {100 * cumulative / total:4.0f}%")
        previous = (label, cumulative)
    return "\n".join(lines)


def write_markdown(path: Path, bench: Bench, info: Dict[str, str], sizes: Sizes, quick: bool) -> None:
    r = bench.report
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (`dev/bench/run.py`); do not edit by hand. Re-run it to refresh.",
        "" if not quick else "\n**This was a `--quick` smoke run: sample sizes are too small to judge targets.**\n",
        "## Machine",
        "",
        md_table(["", ""], [[k, v] for k, v in info.items()] + [["Bench runtime", f"{bench.elapsed:.0f} s ("
                      + ", ".join(f"{k} {v:.0f} s" for k, v in bench.durations.items()) + ")"]]),
        "",
        "## Targets",
        "",
        md_table(["Target", "Measured (median)", "Verdict"],
                 [[f"{row.section}: {row.metric} {row.target}", f"{row.cells()[2]} {row.unit}", row.verdict]
                  for row in r.ordered() if row.target]),
        "",
        "## Results",
        "",
        "Each figure is the median over repeated runs (n) with min and max. Comparisons are measured side by "
        "side in the same run, interleaved.",
        "",
        md_table(Report.HEADER, [row.cells() for row in r.ordered()]),
        "",
    ]
    for title, header, rows in r.tables:
        lines += [f"### {title}", "", md_table(header, rows), ""]
    for title, text in r.blocks:
        lines += [f"### {title}", "", "```", text, "```", ""]
    lines += ["## How it is measured", ""] + [f"- {n}" for n in METHOD_NOTES(sizes)] + [f"- {n}" for n in r.notes]
    lines.append("")
    tmp = path.with_suffix(".md.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)


def METHOD_NOTES(s: Sizes) -> List[str]:  # noqa: N802  (a table of text, kept next to the code it describes)
    from dev.bench import ledger as bench_ledger

    return [
        "**Set-up.** A moto server (`dev/stack/moto_server.py`) on a free port is AWS, bootstrapped by "
        "`dev/stack/local_stack.bootstrap`; the Anthropic stand-in (`dev/standin/server.py`) answers at once from a thread "
        "of the bench process. The environment is the tests' (`tests/conftest.py`): the `local` stage's "
        "variables, moto's endpoint, test secrets, `TESSERA_ANTHROPIC_MAX_RETRIES=0`, set before `import app`.",
        "**The stand-in's sockets.** `http.server` writes a response's headers and body separately; the "
        "stand-in sets TCP_NODELAY so the body does not wait ~40 ms for the client's delayed ACK.",
        "**Entry points.** Each request is what API Gateway does for a REST API with a TOKEN authorizer whose "
        "result is not cached: `app.tenant_auth({type: TOKEN, authorizationToken, methodArn}, context)`, then "
        "`app.app(event, context)` with a full REST proxy event whose `requestContext.authorizer` holds the "
        "authorizer's context (as strings) plus `principalId`. The app's JSON log lines are formatted as usual "
        "and discarded (the `local` stage logs at INFO).",
        f"**Gateway overhead.** {s.rounds} rounds, each on a fresh table and tenant (feature limit and "
        f"requests per minute lifted with `operators.set_limits`), each {s.per_round} gateway requests strictly "
        "alternating with as many direct `anthropic.Anthropic(base_url=stand-in).messages.create(...)` calls "
        "with the same model, messages, system text and temperature; warm-up first. Strict alternation matters: "
        "on loopback a call made straight after another is ~1 ms faster than one made after other work (the "
        "back-to-back row), and the gateway's own model call always follows other work. 'Inside DynamoDB' is "
        "`dev/bench/probes.DynamoProbe` time (botocore's before-call to after-call: signing, HTTP to moto, parsing; "
        "botocore's and PynamoDB's request building happen before it and count as overhead). 'Overhead excl. "
        "DynamoDB' = pXX(gateway_i - dynamodb_i) - pXX(direct_i) per round. The tenant cache (5 s) expires "
        "during a round, hence a mean slightly above 3 calls. CPU rows are `time.thread_time` of the calling "
        "thread (moto is another process; the stand-in other threads).",
        "**moto is not DynamoDB.** Its latency is Python in another process on the same cores. Every Query "
        "walks all items of the table (moto/dynamodb/models/table.py `query`), hence a table per scenario; "
        "moto's own TransactWriteItems deep-copies the table, which dev/stack/moto_server.py replaces with a backup "
        "of the touched items; werkzeug's server closes every connection, so each call also opens a new TCP "
        "connection. Use the call and item counts, not moto's milliseconds, to predict DynamoDB latency and cost.",
        "**Round trips** are botocore calls on the app's one DynamoDB client: the AI route with the tenant "
        "cache warm (authorizer outside the count), the authorizer per call (as on an API "
        "Gateway authorizer-cache miss: every 30 s per token, and for every new token), a login and GET /usage through `app.app`. Items read = items returned "
        "by GetItem, BatchGetItem and Query (no filters are used, so returned = read).",
        f"**Cold start.** Fresh processes ({s.cold_runs} runs of each kind, interleaved across trees, after one "
        "untimed run per tree to warm the OS file cache), timed with `time.perf_counter` inside the process "
        "(interpreter start-up excluded). Trees: 'our code precompiled' = a temporary copy of app.py + chalicelib "
        "with .pyc, in the venv; 'our code from source' = the same copy without .pyc and with "
        "`PYTHONDONTWRITEBYTECODE=1` (the venv's site-packages keep their .pyc, so only our code compiles); "
        "'Lambda zip as shipped' = the extracted deployment.zip (unchecked-hash .pyc beside every module) run "
        "with `python -S`, `PYTHONDONTWRITEBYTECODE=1` and only the zip plus the runtime's "
        "boto3/botocore/s3transfer/jmespath/dateutil/urllib3/six on the path, as in Lambda (those are "
        "linked from the venv, with .pyc), with `LAMBDA_TASK_ROOT` and an X-Ray trace header set as Lambda sets "
        "them, so the API handler builds Powertools' Tracer as deployed; 'Lambda zip, tracing off' = the same "
        "with `POWERTOOLS_TRACE_DISABLED=true` (the Tracer's cost is the difference); 'Lambda zip without .pyc "
        "(before)' = the same tree with every __pycache__ removed (/var/task is read-only, so every cold start "
        "compiles what it imports); 'nothing precompiled' = `PYTHONPYCACHEPREFIX` at an empty "
        "directory, so the standard library compiles too (an upper bound, fewer runs). The baseline imports "
        "boto3, pynamodb and chalice (+ `from pynamodb.models import Model`) in the same tree. Ratios are taken "
        "per run (app and baseline of the same round), then the median. 'First tenant_auth' and 'first POST "
        "/ai/chat' talk to the bench's moto and stand-in. Lambda gives a function CPU in proportion to its "
        "memory (one vCPU at 1,769 MB): these figures are one core's, the cold start without SnapStart; with "
        "it, init runs before the snapshot and section 7 times a restored instance at the deployed memory.",
        "**Scaling.** Per scenario a table with budgeted tenants (budgets far above spend, so the job only "
        "reads); one tenant holds N events and the others share N more, so the table holds 2N. Events are "
        "written with PynamoDB `batch_write`, aggregates (UsagePeriod, FeatureUsage) directly, never with "
        "transactions. Runs alternate between the two scenarios. Verdicts use calls, items read and time "
        "outside DynamoDB calls; raw latency is shown too and grows only because moto scans.",
        f"**Concurrency.** {s.threads} threads x {s.per_thread} requests on one fresh tenant per round, after 2 "
        "warm-up calls. Each thread drives its own copy of app.py (chalice keeps `current_request` on the app "
        "object, safe for one request at a time, as Lambda runs it; `chalice local` serves requests on threads "
        "and shares it), sharing chalicelib: the gateway, its caches and the one DynamoDB client, as in one warm "
        "process. Exact, once the usage stream is folded: admissions (admission item less released) and "
        "FeatureUsage.requests, UsagePeriod.requests equal the number of 200s, and UsagePeriod.cost_micros, "
        "FeatureUsage.cost_micros and committed spend equal the sum of returned cost_usd. dev/stack/moto_server.py runs one request at a time because moto's backend is not safe under "
        "concurrent requests: a cancelled TransactWriteItems restores a backup taken when it started (in moto "
        "a copy of the whole table), silently undoing writes that other requests made meanwhile, whereas "
        "DynamoDB serialises conflicting writes itself. Throughput is therefore moto's, not the app's.",
        "**Package.** `python -m dev.deploy.package --stage prod` (offline `chalice package` plus the merge template) into a "
        "temporary folder; MB = 10^6 bytes. The 'without its .pyc' zip is the same tree with every __pycache__ "
        "removed, zipped with deflate like chalice's.",
        "**Latency estimate.** `Gateway.run` called directly (no HTTP, no authorizer: the synchronous part of "
        "a warm AI request) on one tenant with its limits lifted, the model edge answering at once, with "
        "tracing as deployed (`LAMBDA_TASK_ROOT` and an unsampled X-Ray trace header, as for the median "
        "request under X-Ray's default rule; a further 200 sampled calls are shown for reference), after "
        f"{bench_ledger.WARM_UP_CALLS} warm-up calls, then {bench_ledger.LATENCY_ROUNDS} rounds of "
        f"{s.profile_requests} timed calls. App time = wall time less "
        "`DynamoProbe` time, so it holds our code, PynamoDB and botocore's request building, serialisation "
        "and endpoint resolution (signing, HTTP and parsing are inside the probe's window). One probe covers "
        "the whole run: registering a botocore handler empties the client's event lookup cache, so a probe "
        "per call would add a lookup no production call makes. The estimate adds, "
        "for each DynamoDB call of the usual request, the latency docs/local-dynamodb.md derives from what AWS "
        "publishes for that kind of call. One round's median moves by a few tenths of a millisecond between "
        f"runs on the same machine, so the target is held twice: by the median of all "
        f"{bench_ledger.LATENCY_ROUNDS * s.profile_requests:,} calls and by the "
        "median of the slowest round.",
        "**Profile.** cProfile with `time.thread_time` as its clock, so time waiting for moto or the stand-in "
        "is not counted; the profiler inflates CPU several-fold (compare with the unprofiled CPU per request), "
        "so read shares, not absolute numbers.",
    ]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sample sizes: a smoke run, not a measurement")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--only", default="", help="comma-separated sections: concurrency, latency, ledger, "
                                                   "round-trips, restore (default: all)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    info = machine()
    info["Load average (1/5/15 min) at start"] = load_average()
    print("Tessera benchmark on " + "; ".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    bench = Bench(sizes)
    bench.run([name for name in args.only.split(",") if name])
    info["Load average (1/5/15 min) at end"] = load_average()
    if args.only:
        info["Sections"] = f"only {args.only} (python -m dev.bench --only); `make bench` runs every section"
    section("results")
    print(bench.report.text_table())
    for title, header, rows in bench.report.tables:
        if "Largest" in title:
            print(f"\n{title}\n" + "\n".join("  ".join(row) for row in [header] + rows))
    from dev.bench import restore_report as bench_restore

    if args.only != "restore":  # that section alone rewrites only its own part of the file
        write_markdown(args.output, bench, info, sizes, args.quick)
    if any(row.section.startswith(bench_restore.SECTION) for row in bench.report.rows):
        bench_restore.write_section(args.output, bench.report, info)
    misses = [row for row in bench.report.rows if row.verdict == "MISS"]
    print(f"\nTargets: {sum(r.verdict == 'HOLD' for r in bench.report.rows)} HOLD, {len(misses)} MISS"
          + "".join(f"\n  MISS: {row.section}: {row.metric} = {row.cells()[2]} {row.unit} (target {row.target})"
                    for row in misses))
    print(f"Wrote {args.output} in {bench.elapsed:.0f} s total.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
