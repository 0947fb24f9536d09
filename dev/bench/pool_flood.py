"""`make bench`, section 9: one free tenant floods the platform pool while pro and enterprise tenants call at their
normal rate, against the stand-in enforcing an organisation limit.

The local stack as `make run` starts it (moto, the stand-in, the API over HTTP; on TESSERA_PORT, MOTO_PORT and
ANTHROPIC_STANDIN_PORT when set, else free ports), with STANDIN_ORG_LIMITS = TESSERA_POOL_CEILINGS = the limit
for MODEL: the pool configured at the organisation's limit, as docs/upstream.md tells an operator to. Tenants sign
up over HTTP and call POST /v1/messages with the official SDK (`max_retries=0`: every refusal is seen), none with
a key of its own. Every answer is as long as its max_tokens (the stand-in's `[[standin:fill]]`): what a call
reserves it uses, so the true-up gives nothing back and the output limit is met in earnest.

    free         one tenant, `flood_workers` threads calling back to back at the plan's max_tokens cap (2,048).
                 The plan's own 10 requests a minute and 300 a month would stop it long before the pool: an
                 operator override lifts both (PUT /admin/tenants/{id}/limits), so only the pool stands between
                 the flood and the organisation limit; it stands for every free tenant flooding at once.
    pro          three tenants, each one call every 5 s (12 a minute, max_tokens 512): a developer in a Claude
                 Code session, whose exchanges are about ten requests each; a fifth of pro's 60 a minute.
    enterprise   two tenants, each one call every 2 s (30 a minute, max_tokens 512): a team with a few such
                 sessions at once; 5 % of enterprise's 600 a minute.

The calls run from the start to the end of the first whole minute after it (60-120 s), so one pool minute is
measured whole. dev/bench/pool_flood_report.py adds up what each call met with the stand-in's own count of each
minute (GET /_standin/org-limits).

    .venv/bin/python -m dev.bench --only pool-flood          # this section, into docs/upstream.md
    .venv/bin/python -m dev.bench.pool_flood --org-limit R/I/O   # another limit, printed only
"""
from __future__ import annotations

import math
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from dev.bench import pool_flood_report as flood_report
from dev.bench.pool_flood_report import ANSWERED, Outcome
from dev.bench.report import md_table, section
from dev.bench.ttfb import call_json
from dev.stack import local_stack as stack
from dev.standin.reply import FILL  # every answer as long as its max_tokens: what a call reserves, it uses

if TYPE_CHECKING:
    from dev.bench.run import Bench

MODEL = "claude-haiku-4-5"  # the free plan's models are the small ones


@dataclass(frozen=True)
class FloodSettings:
    org_limit: Tuple[int, int, int]  # requests / input tokens / output tokens a minute, for MODEL
    period_seconds: Optional[float] = None  # None: from the start to the end of the first whole minute after it
    flood_workers: int = 4
    flood_max_tokens: int = 2048  # the free plan's max_tokens cap
    max_tokens: int = 512
    pro_tenants: int = 3
    pro_per_minute: float = 12
    enterprise_tenants: int = 2
    enterprise_per_minute: float = 30

    @property
    def limit(self) -> Dict[str, int]:
        return dict(zip(flood_report.DIMENSIONS, self.org_limit))

    @property
    def setting(self) -> str:
        return f"{MODEL}={'/'.join(str(n) for n in self.org_limit)}"


# The organisation limit for MODEL, a minute. The normal tenants ask 3 x 12 + 2 x 30 = 96 calls: 96 requests (30 %
# of 320), about 2,400 input tokens and 96 x 512 = 49,152 output tokens (31 % of 160,000). That is within what the
# pool's policy keeps from a flood that comes first in the minute: free borrows while the minute's total stays under
# 85 % less enterprise's unused 20 % reserve, so it can take 65 % at once and the paying plans keep 35 %. The flood
# alone asks for hundreds of calls of 2,048 output tokens a minute: several times each limit but input's.
BENCH = FloodSettings(org_limit=(320, 400_000, 160_000))


class FloodRun:
    """The stack, the tenants, the callers and what they met."""

    def __init__(self, settings: FloodSettings, ports: Optional[Tuple[int, int, int]] = None) -> None:
        self.settings = settings
        self.ports = ports
        self.running: Optional[stack.LocalStack] = None
        self.outcomes: List[Outcome] = []
        self._lock = threading.Lock()
        self.started = self.ended = 0.0

    def start(self) -> "FloodRun":
        variables = {"TESSERA_POOL_CEILINGS": self.settings.setting, "STANDIN_ORG_LIMITS": self.settings.setting}
        stage = stack.stage_environment("local")
        saved = {name: os.environ.get(name) for name in list(variables) + list(stage)}
        os.environ.update(variables)
        for name in stage:  # a developer's shell: the stack applies its stage itself
            os.environ.pop(name, None)
        try:
            ports = self.ports or chosen_ports()
            self.running = stack.LocalStack(*ports).start()
        finally:
            for name, value in saved.items():
                os.environ.pop(name, None)
                if value is not None:
                    os.environ[name] = value
        return self

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()

    def tenant(self, plan: str, flood: bool = False) -> str:
        """A new tenant's API key, on `plan`; the flood's has its own limits lifted by an operator."""
        api, operator = self.running.api_url, stack.operator_token(self.running.env)
        slug = f"flood-{plan}-{random.randrange(16 ** 8):08x}"
        email, password = f"o@{slug}.example.com", "correct-horse-battery"
        created = call_json(api + "/tenants", "POST", {"company_name": "Pool flood", "slug": slug, "email": email,
                                                      "password": password})
        if plan != "free":
            call_json(f"{api}/admin/tenants/{created['tenant_id']}/plan", "PUT", {"plan": plan}, operator)
        if flood:
            call_json(f"{api}/admin/tenants/{created['tenant_id']}/limits", "PUT",
                      {"requests_per_minute": 100_000, "features": {"basic_chat": 100_000_000}}, operator)
        token = call_json(api + "/auth/login", "POST", {"tenant": slug, "email": email,
                                                        "password": password})["access_token"]
        return call_json(api + "/api-keys", "POST", {"name": "pool flood"}, token)["key"]

    def one_call(self, client, plan: str, tenant: str, max_tokens: int) -> None:
        import anthropic

        started = time.time()
        try:
            message = client.messages.create(model=MODEL, max_tokens=max_tokens, messages=[
                {"role": "user", "content": f"pool flood: a question from a {plan} tenant {FILL}"}])
            outcome = Outcome(plan, tenant, started, ANSWERED, max_tokens, message.usage.input_tokens)
        except anthropic.APIStatusError as error:
            outcome = Outcome(plan, tenant, started, flood_report.kind_of(error.status_code, error.body), max_tokens)
        except anthropic.APIError as error:  # no answer at all (connection, timeout)
            outcome = Outcome(plan, tenant, started, type(error).__name__, max_tokens)
        with self._lock:
            self.outcomes.append(outcome)

    def flood(self, key: str, until: float) -> None:
        with self.client(key) as client:
            while time.time() < until:
                self.one_call(client, "free", "free-0", self.settings.flood_max_tokens)

    def steady(self, key: str, tenant: str, plan: str, per_minute: float, until: float) -> None:
        """One call every 60 / per_minute seconds from a random phase; a late call starts at once, never two."""
        interval = 60.0 / per_minute
        due = time.time() + random.uniform(0, interval)
        with self.client(key) as client:
            while due < until:
                time.sleep(max(0.0, due - time.time()))
                self.one_call(client, plan, tenant, self.settings.max_tokens)
                due += interval

    def client(self, key: str):
        import anthropic

        return anthropic.Anthropic(base_url=self.running.api_url, api_key=key, max_retries=0, timeout=60)

    def run(self) -> flood_report.Summary:
        s = self.settings
        flood_key = self.tenant("free", flood=True)
        callers = [(self.flood, (flood_key,)) for _ in range(s.flood_workers)]
        callers += [(self.steady, (self.tenant("pro"), f"pro-{n}", "pro", s.pro_per_minute))
                    for n in range(s.pro_tenants)]
        callers += [(self.steady, (self.tenant("enterprise"), f"enterprise-{n}", "enterprise", s.enterprise_per_minute))
                    for n in range(s.enterprise_tenants)]
        self.started = time.time()
        until = self.started + s.period_seconds if s.period_seconds else (math.floor(self.started / 60) + 2) * 60
        threads = [threading.Thread(target=target, args=args + (until,), daemon=True) for target, args in callers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.ended = time.time()
        counted = call_json(f"{self.running.standin_url}/_standin/org-limits", "GET", {})
        return flood_report.summarise(self.outcomes, counted["minutes"], s.limit, MODEL, self.started, self.ended)


def flooded(settings: FloodSettings) -> Tuple[FloodRun, flood_report.Summary]:
    """Start the stack, flood it, stop it."""
    run = FloodRun(settings)
    try:
        run.start()
        return run, run.run()
    finally:
        run.stop()


def chosen_ports() -> Tuple[int, int, int]:
    """The API's, moto's and the stand-in's ports: as `make run` takes them from the environment, else free ones."""
    return tuple(int(os.environ.get(name) or stack.free_port()) for name in stack.DEFAULT_PORTS)


def measure(bench: "Bench", settings: FloodSettings = BENCH) -> flood_report.Summary:
    """The section: run the flood on a stack of its own, add its rows and tables to the bench's report and write
    its block into docs/upstream.md."""
    section(f"{flood_report.SECTION}: one free tenant floods {MODEL}'s pool, pro and enterprise at their normal rate")
    began = time.perf_counter()
    run, summary = flooded(settings)
    wall = time.perf_counter() - began
    print(flood_report.text(summary), flush=True)
    report = bench.report
    for figures in summary.plans.values():
        if figures.threshold is not None:
            report.add(flood_report.SECTION, f"{figures.plan} tenants' success rate", [figures.success_rate], "%", 2,
                       f">= {figures.threshold:g} %", holds=lambda v, t=figures.threshold: v >= t)
    report.add(flood_report.SECTION, "upstream 429s that reached a tenant", [summary.upstream_429_to_tenants],
               "calls", 0, "= 0", holds=lambda v: v == 0)
    for dimension in flood_report.DIMENSIONS:
        report.add(flood_report.SECTION, f"peak {dimension} upstream admitted in a minute", [summary.peak(dimension)],
                   dimension.split("_")[-1], 0, f"<= {summary.limit[dimension]:,}",
                   holds=lambda v, cap=summary.limit[dimension]: v <= cap)
    report.add(flood_report.SECTION, "section wall time (stack start to stop)", [wall], "s", 0)
    markdown = document(summary, settings, run, wall)
    report.table(f"{flood_report.SECTION}: calls by plan", *flood_report.plan_table(summary))
    report.table(f"{flood_report.SECTION}: the organisation limit by minute", *flood_report.minute_table(summary))
    flood_report.write_block(stack.ROOT / "docs" / "upstream.md", markdown)
    report.note("**Pool flood** (section 9): its own local stack over HTTP, the stand-in enforcing an organisation "
                "limit; who calls, how fast and why, and the figures by minute: docs/upstream.md, \"Measured: a "
                "free tenant's flood\" (dev/bench/pool_flood.py).")
    return summary


def document(summary: flood_report.Summary, s: FloodSettings, run: FloodRun, wall: float) -> str:
    """The section's block in docs/upstream.md."""
    verdicts = "\n".join(f"- {'HOLD' if ok else 'MISS'}: {name}" for name, ok in summary.verdicts())
    return "\n".join([
        f"Measured by `make bench` (dev/bench/pool_flood.py, section 9), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(run.started))}: "
        f"{run.ended - run.started:.0f} s of calls to {MODEL}, {wall:.0f} s with the stack's start and stop. "
        f"Organisation limit and pool ceiling `{s.setting}` (requests / input / output tokens a minute). One free "
        f"tenant (its own limits lifted) floods with {s.flood_workers} callers back to back at max_tokens "
        f"{s.flood_max_tokens:,}; {s.pro_tenants} pro tenants at {s.pro_per_minute:g} calls a minute each and "
        f"{s.enterprise_tenants} enterprise tenants at {s.enterprise_per_minute:g}, max_tokens {s.max_tokens:,}.",
        "", md_table(*flood_report.plan_table(summary)), "",
        "Each minute of the model as the stand-in counted it (output trued up to what each answer wrote: here all "
        "of its max_tokens), against the limit, and what the flood alone asked for (its calls sent that minute; "
        "input at what one answered flood call was billed)" + (
            ". A minute with 0 s measured holds a call sent as the period ended:"
            if any(m.seconds_measured < 1 for m in summary.minutes) else ":"), "",
        md_table(*flood_report.minute_table(summary)), "", verdicts, "",
        f"The targets (enterprise ≥ 99 %, pro ≥ 95 %, no upstream 429, use under the limit): **{'PASS' if summary.passed else 'FAIL'}**."])


def main(argv: Optional[List[str]] = None) -> int:
    """The section at another organisation limit, printed and not written to the docs."""
    import argparse

    parser = argparse.ArgumentParser(description="make bench's pool flood at another organisation limit")
    parser.add_argument("--org-limit", default="/".join(str(n) for n in BENCH.org_limit),
                        help="requests/input_tokens/output_tokens a minute for " + MODEL)
    args = parser.parse_args(argv)
    _, summary = flooded(FloodSettings(org_limit=tuple(int(n) for n in args.org_limit.split("/"))))
    print(flood_report.text(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
