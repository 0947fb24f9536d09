"""`make bench`'s ledger section: one tenant under DynamoDB's conflict semantics, and what a request
writes.

It starts its own moto in contention mode (dev/stack/moto_server.py --contention: a transaction holds its
items for its latency and anything else touching them is cancelled with TransactionConflict, each call
takes its kind's latency), points the app at it, and drives one tenant with 16, 64 and 256 requests in
flight through the real gateway (`Gateway.run`: admission, the stand-in model call, the usage event)
while the usage stream is folded on a thread as Lambda would. Two tenants per level:

- a quota tenant whose monthly limit is twice the level: exactly that many must be admitted, every
  refusal must be the limit's own, and the ledger must end exact;
- a hard-budget tenant whose budget covers about half of what is asked: spend must stay within it,
  every refusal must be budget_exceeded, and nothing may be lost or counted twice.

Absolute local throughput is bounded by the mock's CPU, so the figures are conflict rates, exactness
and write units per request; the per-tenant ceiling is computed from the write units (docs/scaling.md).
"""
from __future__ import annotations

import contextlib
import math
import os
import secrets
import statistics
import threading
import time
from collections import Counter
from decimal import Decimal
from typing import Any, Callable, Dict, Iterator, List, Tuple

from dev.stack import local_stack as stack

LEVELS = (16, 64, 256)
QUICK_LEVELS = (16,)
PER_THREAD = 3
INSTANCES = 4  # warm Lambda instances sharing the load, each with its own caches
WARM_UP_CALLS = 20
LATENCY_ROUNDS = 5
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled="
PUBLISHED_MS = {"UpdateItem": 5.0, "PutItem": 5.0}  # docs/local-dynamodb.md: the simulator's defaults, sourced


def item_size(item: Dict[str, Any]) -> int:
    """An item's size by DynamoDB's rules (names plus values; numbers ~1 byte per two digits + 1; maps 3 + 1
    per element): https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html"""
    def value_size(value: Dict[str, Any]) -> int:
        (kind, inner), = value.items()
        if kind in ("S", "B"):
            return len(inner.encode() if isinstance(inner, str) else inner)
        if kind == "N":
            digits = inner.lstrip("-").replace(".", "").lstrip("0") or "0"
            return (len(digits) + 1) // 2 + 1
        if kind in ("BOOL", "NULL"):
            return 1
        if kind in ("M",):
            return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in inner.items())
        if kind in ("L",):
            return 3 + sum(value_size(v) + 1 for v in inner)
        if kind in ("SS", "NS"):
            return sum(len(str(v)) for v in inner)
        raise ValueError(kind)
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int, transactional: bool = False) -> int:
    """1 WCU per KB written, 2 in a transaction (CapacityUnitCalculations, transaction-apis)."""
    return math.ceil(max(size, 1) / 1024) * (2 if transactional else 1)


class LedgerBench:
    def __init__(self, report: Any, standin_url: str, quick: bool) -> None:
        self.report = report
        self.standin_url = standin_url
        self.levels = QUICK_LEVELS if quick else LEVELS
        self.moto = None
        self.saved_env: Dict[str, str] = {}

    def start(self) -> None:
        from chalicelib import models
        from chalicelib.settings import reset_settings

        # The mock serves one request at a time, so at 256 in flight a call can queue past the app's 5 s
        # DynamoDB read timeout, which DynamoDB itself would not make it wait: this run's connection waits
        # longer, so what is measured is conflicts and exactness, not the mock's queue.
        self.saved_timeout = models._Meta.read_timeout_seconds
        models._Meta.read_timeout_seconds = 120
        port = stack.free_port()
        self.moto = stack.start_moto(port, contention=True)
        endpoint = f"http://127.0.0.1:{port}"
        stage_env = {**stack.stage_environment("local"), "TESSERA_TABLE_NAME": f"bench-contention-{port}"}
        stack.bootstrap(endpoint, stage_env)
        self.saved_env = {k: os.environ.get(k, "") for k in ("AWS_ENDPOINT_URL", "TESSERA_TABLE_NAME")}
        os.environ.update({"AWS_ENDPOINT_URL": endpoint, "TESSERA_TABLE_NAME": stage_env["TESSERA_TABLE_NAME"]})
        reset_settings()
        from dev.stack import stream_worker

        self.pump = stream_worker.StreamPump(endpoint=endpoint).start()

    def stop(self) -> None:
        from chalicelib.settings import reset_settings

        if getattr(self, "pump", None) is not None:
            self.pump.stop()
        os.environ.update(self.saved_env)
        reset_settings()
        from chalicelib import models

        models._Meta.read_timeout_seconds = getattr(self, "saved_timeout", models._Meta.read_timeout_seconds)
        if self.moto is not None:
            stack.terminate(self.moto)

    def tenant(self, **limits: Any):
        from chalicelib import operators, tenants
        from chalicelib.tenancy import TenantContext

        slug = f"contend-{secrets.token_hex(4)}"
        created = tenants.sign_up({"company_name": "Contention Co", "slug": slug,
                                   "email": f"o@{slug}.example.com", "password": "contention-pass-1"})
        tenant_id = created["tenant_id"]
        operators.set_limits(tenant_id, {"requests_per_minute": 100_000, **limits})
        return tenant_id, TenantContext(tenant_id, created["owner"]["user_id"], "user", "owner",
                                        created["owner"]["email"], slug)

    def drive(self, ctx: Any, in_flight: int) -> Tuple[Counter, List[int], float]:
        from chalicelib.ai.gateway import FeatureCall, Gateway

        call = FeatureCall(messages=[{"role": "user", "content": "How are the risks in the Q3 plan?"}],
                           max_tokens=64)
        instances = [Gateway() for _ in range(INSTANCES)]
        outcomes: Counter = Counter()
        costs: List[int] = []
        lock = threading.Lock()
        barrier = threading.Barrier(in_flight + 1)

        def worker(index: int) -> None:
            gateway = instances[index % INSTANCES]
            barrier.wait()
            for _ in range(PER_THREAD):
                try:
                    result = gateway.run(ctx, "basic_chat", call)
                    with lock:
                        outcomes["ok"] += 1
                        costs.append(result.cost_micros)
                except Exception as error:
                    with lock:
                        outcomes[getattr(error, "code", type(error).__name__)] += 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(in_flight)]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        return outcomes, costs, time.perf_counter() - started

    def standing(self, tenant_id: str) -> Dict[str, int]:
        from chalicelib.metering import admission, usage
        from chalicelib.models import UsagePeriod, tenant_pk
        from chalicelib.periods import current_period

        self.pump.drain(timeout=120)
        period = current_period()
        view, returns = usage.admission_state(tenant_id)
        aggregate = UsagePeriod.get(tenant_pk(tenant_id), UsagePeriod.sk_for(period), consistent_read=True)
        return {"used": view.counters.get(admission.admitted_key(period, "basic_chat"), 0)
                - returns.released(period, "basic_chat"),
                "committed": view.counters.get(admission.committed_key(period), 0) - returns.refunded(period),
                "spent": int(aggregate.cost_micros), "requests": int(aggregate.requests)}

    def run(self) -> None:
        from chalicelib.models import UsageEvent, tenant_pk

        sec = "7 Ledger under DynamoDB contention"
        rows = []
        for level in self.levels:
            limit = 2 * level
            quota_id, quota_ctx = self.tenant(features={"basic_chat": limit})
            outcomes, costs, elapsed = self.drive(quota_ctx, level)
            got = self.standing(quota_id)
            exact = (outcomes["ok"] == limit == got["used"] == got["requests"]
                     and got["spent"] == got["committed"] == sum(costs))
            stray = sum(n for code, n in outcomes.items() if code not in ("ok", "feature_limit_reached"))
            self.report.add(sec, f"{level} in flight, quota {limit}: refusals not caused by the limit", [stray],
                            "requests", 0, "= 0", holds=lambda v: v == 0)
            self.report.add(sec, f"{level} in flight, quota {limit}: admitted = limit, ledger = answers", [exact],
                            "1 = exact", 0, "= 1", holds=lambda v: v == 1)
            rows.append([f"{level}", "quota", str(level * PER_THREAD), str(outcomes["ok"]),
                         ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()) if k != "ok") or "-",
                         f"used {got['used']}, requests {got['requests']}, spent {got['spent']} = "
                         f"committed {got['committed']} = answered {sum(costs)}", f"{elapsed:.1f}"])

            demand = level * PER_THREAD * 600
            budget = demand // 2
            budget_id, budget_ctx = self.tenant(features={"basic_chat": 100_000_000})
            from chalicelib import tenants

            tenants.update_tenant(budget_id, {"monthly_budget_usd": str(Decimal(budget) / 1_000_000),
                                              "budget_hard_limit": True})
            outcomes, costs, elapsed = self.drive(budget_ctx, level)
            got = self.standing(budget_id)
            within = got["spent"] <= budget and got["spent"] == got["committed"] == sum(costs) \
                and got["requests"] == outcomes["ok"]
            stray = sum(n for code, n in outcomes.items() if code not in ("ok", "budget_exceeded"))
            self.report.add(sec, f"{level} in flight, hard budget: refusals not caused by the budget", [stray],
                            "requests", 0, "= 0", holds=lambda v: v == 0)
            self.report.add(sec, f"{level} in flight, hard budget: spend <= budget, ledger = answers", [within],
                            "1 = exact", 0, "= 1", holds=lambda v: v == 1)
            rows.append([f"{level}", f"hard budget {budget} micro-USD", str(level * PER_THREAD), str(outcomes["ok"]),
                         ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()) if k != "ok") or "-",
                         f"requests {got['requests']}, spent {got['spent']} = committed {got['committed']} = "
                         f"answered {sum(costs)}", f"{elapsed:.1f}"])
        self.report.table("Ledger under DynamoDB contention (one tenant, 4 warm instances)",
                          ["in flight", "tenant", "asked", "200", "refused", "ledger after the stream", "s"], rows)
        self._write_units(quota_id)

    def _write_units(self, tenant_id: str) -> None:
        """Write units per request, per item, from the items' sizes as this run left them."""
        from chalicelib.metering.aggregator import CHUNK
        from chalicelib.models import (Admission, FeatureUsage, Reconciliation, UsageEvent, UsagePeriod,
                                       tenant_pk)
        from chalicelib.periods import current_period

        pk, period = tenant_pk(tenant_id), current_period()

        def size(model, sk) -> int:
            item = model.get(pk, sk, consistent_read=True)
            raw = item.serialize()
            raw.update({"pk": {"S": pk}, "sk": {"S": sk}})
            return item_size(raw)

        event = next(iter(UsageEvent.query(pk, UsageEvent.sk.startswith("EVENT#"), limit=1)))
        sizes = {"admission": size(Admission, Admission.SK), "event": size(UsageEvent, event.sk),
                 "reconciliation": size(Reconciliation, Reconciliation.SK),
                 "month": size(UsagePeriod, UsagePeriod.sk_for(period)),
                 "feature": size(FeatureUsage, FeatureUsage.sk_for(period, "basic_chat"))}
        per_request = [
            ["admission item (hot: every request)", "UpdateItem", sizes["admission"], write_units(sizes["admission"]),
             f"{write_units(sizes['admission']):.2f}"],
            ["usage event (its own item)", "PutItem", sizes["event"], write_units(sizes["event"]),
             f"{write_units(sizes['event']):.2f}"],
            ["usage event, aggregated stamp", "in TransactWriteItems", sizes["event"],
             write_units(sizes["event"], True), f"{write_units(sizes['event'], True):.2f}"],
        ]
        for name, key in (("reconciliation item", "reconciliation"), ("month totals", "month"),
                          ("feature totals", "feature")):
            units = write_units(sizes[key], True)
            per_request.append([f"{name} (once per batch of up to {CHUNK})", "in TransactWriteItems", sizes[key],
                                units, f"{units / CHUNK:.3f} (full batch) .. {units:.2f} (batch of 1)"])
        self.report.table("Write units per request, by item (sizes from this run)",
                          ["item", "operation", "bytes", "WCU per write", "WCU per request"],
                          [[str(c) for c in row] for row in per_request])
        self.report.add("7 Ledger under DynamoDB contention", "admission item size (hot item, 1 WCU if <= 1,024)",
                        [sizes["admission"]], "bytes", 0, "<= 1024", holds=lambda v: v <= 1024)
        hot = write_units(sizes["admission"])
        self.report.add("7 Ledger under DynamoDB contention",
                        "computed per-tenant ceiling: 1,000 WCU/s per item / WCU per request on the hottest item",
                        [1000 / hot], "req/s", 0, ">= 1000", holds=lambda v: v >= 1000)


@contextlib.contextmanager
def traced_as_deployed() -> Iterator[Callable[[bool], None]]:
    """Tracing as the deployed API handler has it (active tracing: a trace header per invocation), not
    sampled unless the yielded function says so. X-Ray's default rule samples the first request of each
    second and 5 % of the rest, so the median request is an unsampled one. Sampled records go to the
    SDK's UDP emitter, to a daemon address where none listens, as cheap as Lambda's local daemon."""
    from unittest import mock

    from chalicelib import observability

    def sample(sampled: bool) -> None:
        os.environ[observability.TRACE_HEADER] = TRACE_HEADER + ("1" if sampled else "0")

    with mock.patch.dict(os.environ, {"LAMBDA_TASK_ROOT": os.environ.get("LAMBDA_TASK_ROOT") or "/var/task"}):
        sample(False)  # patch.dict restores the environment as it was, this too
        if not observability.tracing_enabled():
            raise RuntimeError("tracing is off in this environment (POWERTOOLS_TRACE_DISABLED or a local marker)")
        observability.tracer()  # as the API handler's first sampled request builds it
        yield sample


def measure_latency(report: Any, gateway_factory: Any, ctx: Any, call: Any, samples: int = 200,
                    rounds: int = LATENCY_ROUNDS) -> None:
    """The synchronous part of a warm AI request: its DynamoDB calls and the app's own time, measured
    locally without the model call, then with each call at DynamoDB's latency for its kind.

    `rounds` rounds of `samples` calls: the median of one round moves by a few tenths of a millisecond
    from run to run on the same machine, so the target is held by the slowest round as well as by all of
    them together."""
    from dev.bench.probes import DynamoProbe

    from chalicelib.ai.client import ModelReply, Usage

    class Instant:
        """The model edge answering at once, so only our own time is left."""

        def complete(self, model_call, api_key, own_key):
            return ModelReply("ok", model_call.model, "end_turn", Usage(20, 10), None, 0)

    gateway = gateway_factory(model_client=Instant())
    per_round: List[List[float]] = []
    shapes: Counter = Counter()
    sampled_ms: List[float] = []

    def timed(probe: Any, into: List[float]) -> Tuple[str, ...]:
        probe.reset()
        started = time.perf_counter()
        gateway.run(ctx, "basic_chat", call)
        total = time.perf_counter() - started
        into.append((total - probe.seconds) * 1000)
        return tuple(sorted(probe.calls.elements()))

    # One probe for the whole run: registering a botocore handler empties the client's event lookup cache,
    # so a probe per call would make every call look its handlers up afresh, which no production call does.
    with traced_as_deployed() as sample, DynamoProbe(this_thread=True) as probe:
        for _ in range(WARM_UP_CALLS):  # a warm instance has served a few requests: its paths are specialised
            gateway.run(ctx, "basic_chat", call)
        for _ in range(rounds):
            app_ms: List[float] = []
            for _ in range(samples):
                shapes[timed(probe, app_ms)] += 1
            per_round.append(app_ms)
        sample(True)
        for _ in range(samples):
            timed(probe, sampled_ms)
    # The usual request (the tenant cache reloads every few seconds, which adds a read to a few).
    usual = shapes.most_common(1)[0][0]
    per_call = Counter(usual)
    dynamo_ms = sum(PUBLISHED_MS.get(op, 5.0) * n for op, n in per_call.items())
    pooled = [ms for app_ms in per_round for ms in app_ms]
    round_p50s = [statistics.median(app_ms) for app_ms in per_round]
    n = len(pooled)
    published = ", ".join(f"{op} {PUBLISHED_MS.get(op, 5.0):g} ms" for op in sorted(per_call))
    sec = "8 Latency estimate in production"
    report.add(sec, f"warm AI request, app time excluding DynamoDB and the model, p50 ({rounds} rounds of "
                    f"{samples})", pooled, "ms", 2)
    report.add(sec, f"app time p50 of each round (median, fastest and slowest of {rounds} rounds)", round_p50s,
               "ms", 2)
    report.add(sec, "app time p50 of a request X-Ray samples (1 a second and 5 % of the rest; reference only)",
               sampled_ms, "ms", 2)
    report.add(sec, f"DynamoDB calls on the synchronous path, usual request ({shapes[usual]} of {n})",
               [sum(per_call.values())], "calls", 1, "<= 2", holds=lambda v: v <= 2)
    report.add(sec, f"estimated added latency p50 = app p50 + calls x published latency ({published})",
               [statistics.median(pooled) + dynamo_ms], "ms", 1, "<= 12", holds=lambda v: v <= 12)
    report.add(sec, "estimated added latency, slowest round = its app p50 + calls x published latency",
               [max(round_p50s) + dynamo_ms], "ms", 1, "<= 12", holds=lambda v: v <= 12)
