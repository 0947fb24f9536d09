"""`make bench`, section 2: DynamoDB round trips per entry point."""
from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import List, Tuple

from dev.bench.harness import ops, BenchBase
from dev.bench.report import section


class RoundTrips(BenchBase):
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
