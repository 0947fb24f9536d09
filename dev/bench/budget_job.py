"""The budget job at scale: seed N budgeted tenants straight into DynamoDB and time `check_budgets` over them.

    .venv/bin/python -m dev.bench.budget_job [--tenants 10000] [--alerting-every 100]

It starts its own moto server (dev/stack/moto_server.py) on a free loopback port, creates what `make run` creates,
and writes each tenant's profile (listed in its gsi2 segment), one owner and the month's aggregate with
batch writes (no sign-up, no argon2). Every `--alerting-every`-th tenant has spent 60 % of its budget (one
alert, at 50 %); the others 30 % (none). Then three runs of the real job:

1. the alerting run;
2. the same again: every alert is already sent, so it only reads (the hourly steady state);
3. the steady run with the production number of worker threads.

For each: wall time, time inside DynamoDB calls, the job's own CPU time (this process; moto runs in
another), DynamoDB calls by operation and calls per tenant. moto serves one request at a time and
each of its Queries walks the whole table (about 2 to 4 s at 30,000 items on a loaded 2-core machine), so
local wall time measures moto, not DynamoDB, and threads cannot speed it up: runs 1 and 2 use one thread,
and the DynamoDB client waits as long as moto needs (a queued request would outwait the production client's
5 s read timeout). docs/scaling.md ("Budget job") turns the call counts into production time with
DynamoDB's published limits. The seeding helpers are shared with tests/integration/test_budget_job.py.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]

from dev.stack import local_stack as stack  # noqa: E402

READS = ("Query", "BatchGetItem", "GetItem", "Scan")
BUDGET_MICROS = 100 * 1_000_000  # $100


def tenant_ids(count: int, prefix: str = "ten_bench", segment: Optional[str] = None) -> List[str]:
    """`count` tenant ids; with `segment`, only ids whose budget segment is that one."""
    from chalicelib.models import budget_segment

    ids: List[str] = []
    n = 0
    while len(ids) < count:
        candidate = f"{prefix}{n:07d}"
        n += 1
        if segment is None or budget_segment(candidate) == segment:
            ids.append(candidate)
    return ids


def seed_tenants(ids: Sequence[str], period: str, spent_micros: Callable[[int], int],
                 budget_micros: int = BUDGET_MICROS, thresholds: Iterable[int] = (50, 80, 100),
                 name: Callable[[int], str] = lambda i: f"Budget Tenant {i:06d} Ltd", owners: bool = True) -> None:
    """Write what sign-up plus `PATCH /tenant {"monthly_budget_usd": ...}` and settled usage would leave:
    the profile in its gsi2 segment, an owner (unless `owners` is false) and the month's aggregate with
    `spent_micros(i)` spent (none when 0)."""
    from chalicelib.models import TENANT_LIST_PARTITION, Tenant, UsagePeriod, User, budget_segment, tenant_pk

    now = datetime.now(timezone.utc)
    with Tenant.batch_write() as batch:
        for i, tid in enumerate(ids):
            pk = tenant_pk(tid)
            batch.save(Tenant(pk, Tenant.SK, tenant_id=tid, name=name(i), slug=f"b-{tid[-12:]}", plan="pro",
                              status="active", created_at=now, owner_count=1, monthly_budget_micros=budget_micros,
                              budget_alert_thresholds=set(thresholds), budget_hard_limit=False,
                              gsi1pk=TENANT_LIST_PARTITION, gsi1sk=f"{now.isoformat()}#{tid}",
                              gsi2pk=budget_segment(tid), gsi2sk=tid))
            if owners:
                batch.save(User(pk, User.sk_for(f"usr_{tid[-12:]}"), user_id=f"usr_{tid[-12:]}",
                                email=f"owner@{tid[-12:]}.example.com", password_hash="not-a-login",
                                role="owner", created_at=now))
            spent = spent_micros(i)
            if spent:
                batch.save(UsagePeriod(pk, UsagePeriod.sk_for(period), period=period, requests=1,
                                       cost_micros=spent, pool_requests=1,
                                       pool_cost_micros=spent))


def item_bytes(raw: Dict[str, Any]) -> int:
    """An item's size by DynamoDB's rules: attribute name lengths plus value sizes (UTF-8 for strings,
    about one byte per two digits plus one for numbers, 1 for booleans and nulls, 3 plus contents for maps)."""
    def value(v: Dict[str, Any]) -> int:
        (kind, x), = v.items()
        if kind in ("S", "B"):
            return len(x.encode("utf-8") if kind == "S" else x)
        if kind == "N":
            return (len(x.lstrip("-").replace(".", "")) + 1) // 2 + 1
        if kind in ("NS", "SS"):
            return sum(value({kind[0]: e}) for e in x)
        if kind in ("BOOL", "NULL"):
            return 1
        if kind == "M":
            return 3 + sum(len(k.encode("utf-8")) + value(e) for k, e in x.items())
        if kind == "L":
            return 3 + sum(1 + value(e) for e in x)
        raise ValueError(kind)

    return sum(len(k.encode("utf-8")) + value(v) for k, v in raw.items())


def measure(label: str, workers: int, tenants: int) -> Dict[str, Any]:
    from dev.bench.probes import DynamoProbe

    from chalicelib.jobs.budget_check import check_budgets

    with DynamoProbe() as probe:
        started, cpu = time.perf_counter(), time.process_time()
        report = check_budgets(workers=workers)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    reads = sum(n for op, n in probe.calls.items() if op in READS)
    result = {"run": label, "workers": workers, "wall_s": round(wall, 2),
              "in_dynamodb_s": round(probe.seconds, 2), "job_cpu_s": round(cpu, 2), "tenants_checked": report.tenants_checked,
              "alerts_sent": len(report.alerts_sent), "segments_failed": report.segments_failed,
              "dynamodb_calls": dict(sorted(probe.calls.items())), "dynamodb_calls_total": probe.total,
              "reads_per_tenant": round(reads / tenants, 4), "calls_per_tenant": round(probe.total / tenants, 4)}
    print(json.dumps(result), flush=True)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--alerting-every", type=int, default=100)
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))  # so `finally` stops moto
    port = stack.free_port()
    moto = stack.start_moto(port)
    try:
        stack.bootstrap(f"http://127.0.0.1:{port}", stack.stage_environment("local"))
        os.environ.update(stack.stage_environment("local"))
        os.environ.update(stack.aws_environment(port))
        from chalicelib import models
        from chalicelib.jobs.budget_check import WORKERS
        from chalicelib.logs import get_logger

        models._Meta.read_timeout_seconds = 600  # moto, not DynamoDB, decides how long a call takes here
        get_logger().setLevel(logging.WARNING)  # one line per alert sent would drown the figures
        from chalicelib.models import Tenant, UsagePeriod, budget_segment, tenant_pk
        from chalicelib.periods import current_period

        period = current_period()
        ids = tenant_ids(args.tenants)
        started = time.perf_counter()
        seed_tenants(ids, period, lambda i: BUDGET_MICROS * (60 if i % args.alerting_every == 0 else 30) // 100)
        seeded = time.perf_counter() - started
        sizes = {"tenant_item_bytes": item_bytes(Tenant.get(tenant_pk(ids[1]), Tenant.SK).serialize()),
                 "aggregate_item_bytes": item_bytes(
                     UsagePeriod.get(tenant_pk(ids[1]), UsagePeriod.sk_for(period)).serialize())}
        per_segment: Dict[str, int] = {}
        for tid in ids:
            per_segment[budget_segment(tid)] = per_segment.get(budget_segment(tid), 0) + 1
        print(json.dumps({"tenants": args.tenants, "seeded_in_s": round(seeded, 1), **sizes,
                          "tenants_per_segment": {"min": min(per_segment.values()),
                                                  "max": max(per_segment.values())}}), flush=True)
        measure("alerting", 1, args.tenants)
        measure("steady", 1, args.tenants)
        measure("steady, production threads", WORKERS, args.tenants)
    finally:
        stack.terminate(moto)
    return 0


if __name__ == "__main__":
    sys.exit(main())
