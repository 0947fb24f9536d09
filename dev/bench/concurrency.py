"""`make bench`, section 5: concurrent callers on one tenant, and the ledger exact afterwards."""
from __future__ import annotations

import threading
import time
from collections import Counter
from decimal import Decimal
from typing import Any, List, Tuple

from dev.bench.harness import ApiGateway, BenchBase, _silence_app_output, load_app_copy
from dev.bench.report import percentile, section


class Concurrency(BenchBase):
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
        apps = [ApiGateway(load_app_copy(i)) for i in range(s.threads)]
        _silence_app_output()
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
