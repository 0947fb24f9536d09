"""`make bench`, section 4: what grows with a tenant's usage events."""
from __future__ import annotations

import secrets
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Dict, List, Tuple

from dev.bench.harness import MODEL, READS, BenchBase
from dev.bench.report import section


class Scaling(BenchBase):
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
