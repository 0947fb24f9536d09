"""`make bench` section 9 (dev/bench/pool_flood_report.py): the figures the pool is held to, from recorded
outcomes and the stand-in's count of each minute, with no stack and no flood."""
from __future__ import annotations

from dev.bench import pool_flood_report as flood
from dev.bench.pool_flood_report import ANSWERED, POOL_REFUSED, UPSTREAM_429, Outcome

MODEL = "claude-haiku-4-5"
MINUTE = 1_800_000_000  # on a minute
LIMIT = {"requests": 100, "input_tokens": 10_000, "output_tokens": 5_000}


def outcomes(plan, kinds, start=MINUTE + 10, max_tokens=512, tenant=None):
    return [Outcome(plan, tenant or f"{plan}-{n % 2}", start + n * 0.1, kind, max_tokens,
                    25 if kind == ANSWERED else 0) for n, kind in enumerate(kinds)]


def counted(minute, requests, output, refused=0, model=MODEL):
    return {"model": model, "minute": minute, "refused_requests": refused,
            "admitted": {"requests": requests, "input_tokens": requests * 25, "output_tokens": output}}


def run(calls, minutes, started=MINUTE - 30, ended=MINUTE + 70):
    return flood.summarise(calls, minutes, LIMIT, MODEL, started, ended)


def test_each_plan_counts_attempts_answers_pool_refusals_upstream_429s_and_other_errors():
    calls = (outcomes("enterprise", [ANSWERED] * 198 + [POOL_REFUSED, "500 api_error"])
             + outcomes("pro", [ANSWERED] * 19 + [POOL_REFUSED])
             + outcomes("free", [ANSWERED] * 3 + [POOL_REFUSED] * 40 + [UPSTREAM_429], max_tokens=2048, tenant="f"))
    summary = run(calls, [counted(MINUTE, 90, 4_000)])
    enterprise, pro, free = summary.plans["enterprise"], summary.plans["pro"], summary.plans["free"]
    assert (enterprise.tenants, enterprise.attempted, enterprise.answered, enterprise.pool_refused,
            dict(enterprise.other)) == (2, 200, 198, 1, {"500 api_error": 1})
    assert enterprise.success_rate == 99.0 and enterprise.holds  # 198 / 200 is exactly the threshold
    assert (pro.attempted, pro.answered, pro.pool_refused, pro.success_rate, pro.holds) == (20, 19, 1, 95.0, True)
    assert (free.tenants, free.attempted, free.pool_refused, free.upstream_429, free.holds) == (1, 44, 40, 1, None)
    assert summary.upstream_429_to_tenants == 1
    assert ("no upstream 429 reached a tenant", False) in summary.verdicts() and not summary.passed


def test_a_plan_below_its_threshold_misses_and_fails_the_run():
    calls = outcomes("enterprise", [ANSWERED] * 197 + [POOL_REFUSED] * 3) + outcomes("pro", [ANSWERED] * 20)
    summary = run(calls, [counted(MINUTE, 90, 4_000)])
    assert summary.plans["enterprise"].success_rate == 98.5
    assert ("enterprise success rate >= 99 %", False) in summary.verdicts()
    assert ("pro success rate >= 95 %", True) in summary.verdicts()
    assert "MISS  enterprise success rate >= 99 %" in flood.text(summary)


def test_peak_use_per_dimension_is_the_stand_ins_fullest_minute_against_the_limit():
    minutes = [counted(MINUTE - 60, 40, 2_000), counted(MINUTE, 90, 5_001), counted(MINUTE + 60, 10, 500),
               counted(MINUTE, 99, 9_999, model="claude-sonnet-4-6"),  # another model: not this pool
               counted(MINUTE - 600, 99, 9_999)]  # before the run
    summary = run(outcomes("enterprise", [ANSWERED] * 10), minutes)
    assert [m.minute for m in summary.minutes] == [MINUTE - 60, MINUTE, MINUTE + 60]
    assert (summary.peak("requests"), summary.peak("input_tokens"), summary.peak("output_tokens")) == (90, 2_250, 5_001)
    verdicts = dict(summary.verdicts())
    assert verdicts["peak requests per minute <= organisation limit"]
    assert not verdicts["peak output_tokens per minute <= organisation limit"]  # 5,001 > 5,000


def test_a_429_the_stand_in_sent_fails_the_run_even_when_no_tenant_saw_it():
    summary = run(outcomes("enterprise", [ANSWERED] * 10), [counted(MINUTE, 10, 500, refused=2)])
    assert (summary.upstream_429_to_tenants, summary.upstream_429_sent) == (0, 2)
    assert not dict(summary.verdicts())["no upstream 429 at all (the stand-in refused nothing)"]


def test_what_the_flood_asked_for_counts_its_calls_sent_in_each_whole_minute():
    flood_calls = (outcomes("free", [POOL_REFUSED] * 30, start=MINUTE - 20, max_tokens=2048, tenant="f")
                   + outcomes("free", [ANSWERED] + [POOL_REFUSED] * 99, start=MINUTE + 1, max_tokens=2048,
                              tenant="f"))
    minutes = [counted(MINUTE - 60, 5, 2_048), counted(MINUTE, 20, 4_000)]
    summary = run(flood_calls + outcomes("enterprise", [ANSWERED]), minutes)
    before, whole = summary.minutes
    assert (before.seconds_measured, before.flood_asked["requests"]) == (30, 30)
    assert whole.seconds_measured == 60
    assert whole.flood_asked == {"requests": 100, "input_tokens": 100 * 25, "output_tokens": 100 * 2048}
    assert summary.flood_exceeds_limit()  # 204,800 output tokens asked against 5,000, in the whole minute
    # the same flood in the partial minute only proves nothing
    assert not run(flood_calls[:30], minutes[:1]).flood_exceeds_limit()


def test_the_pool_refusal_and_upstreams_429_are_told_apart_by_their_code():
    assert flood.kind_of(429, {"type": "error", "error": {"type": "rate_limit_error", "code": POOL_REFUSED,
                                                          "message": "The free plan's share ..."}}) == POOL_REFUSED
    assert flood.kind_of(429, {"error": {"type": "rate_limit_error", "code": UPSTREAM_429}}) == UPSTREAM_429
    assert flood.kind_of(429, {"error": {"type": "rate_limit_error", "code": "rate_limited"}}) == "429 rate_limited"
    assert flood.kind_of(429, {"error": {"type": "rate_limit_error"}}) == "429 rate_limit_error"
    assert flood.kind_of(502, "<html>") == "502 error"


def test_the_block_in_the_docs_replaces_the_previous_run_and_nothing_else(tmp_path):
    doc = tmp_path / "upstream.md"
    doc.write_text(f"# Upstream\n\nbefore\n\n{flood.BEGIN}\nold figures\n{flood.END}\n\nafter\n")
    flood.write_block(doc, "new figures")
    assert doc.read_text() == f"# Upstream\n\nbefore\n\n{flood.BEGIN}\nnew figures\n{flood.END}\n\nafter\n"
