"""`make bench`, section 1: the warm gateway path against the bare SDK call, and a profile of where its CPU
goes."""
from __future__ import annotations

import cProfile
import importlib.util
import io
import logging
import pstats
import statistics
import sysconfig
import time
from collections import defaultdict
from typing import Any, Dict, List, Tuple

from dev.bench.harness import (
    ROOT, POOL_KEY, MODEL, COMPANY, PROMPT, MAX_TOKENS, SITE_PACKAGES, Sample, Tenant, BenchBase)
from dev.bench.report import percentile, section


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


class WarmPath(BenchBase):
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
