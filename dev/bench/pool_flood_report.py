"""`make bench`, section 9: what the pool flood's recorded outcomes add up to (pure), and its block in docs/upstream.md.

dev/bench/pool_flood.py runs the flood and records one `Outcome` per call and the stand-in's count of each minute
(GET /_standin/org-limits); `summarise` turns them into the figures the pool is held to: per plan, calls attempted,
answered, refused by the pool (`429 pool_share_exhausted`, before upstream) and other errors; how many of
upstream's own 429s (`upstream_rate_limited`, passed on) reached a tenant and how many the stand-in sent at all;
and each minute's use of the organisation limit per dimension against what the flood alone asked for.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from dev.bench.report import replace_block

SECTION = "9 Pool flood"
DIMENSIONS = ("requests", "input_tokens", "output_tokens")
PLANS = ("enterprise", "pro", "free")
# the targets: the least success rate of a plan's tenants at their normal rate, in per cent
THRESHOLDS = {"enterprise": 99.0, "pro": 95.0}
BEGIN, END = "<!-- bench_pool_flood: begin -->", "<!-- bench_pool_flood: end -->"

ANSWERED, POOL_REFUSED, UPSTREAM_429 = "answered", "pool_share_exhausted", "upstream_rate_limited"


@dataclass(frozen=True)
class Outcome:
    """One call as its tenant saw it: `kind` is ANSWERED, POOL_REFUSED, UPSTREAM_429 or another error's
    `status code`; `started` the wall-clock second it was sent; `input_tokens` what upstream billed (answered)."""

    plan: str
    tenant: str
    started: float
    kind: str
    max_tokens: int
    input_tokens: int = 0


def kind_of(status: int, body: object) -> str:
    """How the tenant's SDK saw an error: our pool's refusal and upstream's passed-on 429 carry their own code in
    Anthropic's error shape (`error.code`); anything else is named by status and code (or type)."""
    error = body.get("error") if isinstance(body, dict) else None
    code = (error.get("code") or error.get("type")) if isinstance(error, dict) else None
    if status == 429 and code in (POOL_REFUSED, UPSTREAM_429):
        return code
    return f"{status} {code or 'error'}"


@dataclass
class PlanFigures:
    plan: str
    tenants: int = 0
    attempted: int = 0
    answered: int = 0
    pool_refused: int = 0
    upstream_429: int = 0
    other: Counter = field(default_factory=Counter)

    @property
    def success_rate(self) -> float:
        return 100.0 * self.answered / self.attempted if self.attempted else 0.0

    @property
    def threshold(self) -> Optional[float]:
        return THRESHOLDS.get(self.plan)

    @property
    def holds(self) -> Optional[bool]:
        return None if self.threshold is None else self.attempted > 0 and self.success_rate >= self.threshold


@dataclass
class MinuteFigures:
    """One wall-clock minute of the model: what the flood asked for, what upstream admitted and refused."""

    minute: int
    flood_asked: Dict[str, int]
    admitted: Dict[str, int]
    refused_requests: int
    seconds_measured: float


@dataclass
class Summary:
    plans: Dict[str, PlanFigures]
    minutes: List[MinuteFigures]
    limit: Dict[str, int]
    upstream_429_to_tenants: int
    upstream_429_sent: int

    def peak(self, dimension: str) -> int:
        return max((m.admitted.get(dimension, 0) for m in self.minutes), default=0)

    def flood_exceeds_limit(self) -> bool:
        """The flood alone asked for more than the limit in some dimension of some whole minute measured: without
        that, the run would prove nothing about the pool."""
        return any(m.flood_asked[d] > self.limit[d] for m in self.minutes if m.seconds_measured >= 59
                   for d in DIMENSIONS)

    def verdicts(self) -> List[Tuple[str, bool]]:
        checks = [(f"{plan} success rate >= {figures.threshold:g} %", bool(figures.holds))
                  for plan, figures in self.plans.items() if figures.threshold is not None]
        checks.append(("no upstream 429 reached a tenant", self.upstream_429_to_tenants == 0))
        checks.append(("no upstream 429 at all (the stand-in refused nothing)", self.upstream_429_sent == 0))
        checks += [(f"peak {d} per minute <= organisation limit", self.peak(d) <= self.limit[d]) for d in DIMENSIONS]
        checks.append(("the flood alone asked for more than the limit in a whole minute", self.flood_exceeds_limit()))
        return checks

    @property
    def passed(self) -> bool:
        return all(ok for _, ok in self.verdicts())


def summarise(outcomes: Iterable[Outcome], minutes: Sequence[Mapping], limit: Mapping[str, int], model: str,
              started: float, ended: float, flood_plan: str = "free") -> Summary:
    """The figures from the calls as recorded and the stand-in's count of the measured minutes (`minutes` as
    GET /_standin/org-limits lists them; rows of other models or outside [started, ended) are left out)."""
    outcomes = list(outcomes)
    plans: Dict[str, PlanFigures] = {}
    tenants: Dict[str, set] = {}
    for outcome in outcomes:
        figures = plans.setdefault(outcome.plan, PlanFigures(outcome.plan))
        tenants.setdefault(outcome.plan, set()).add(outcome.tenant)
        figures.attempted += 1
        if outcome.kind == ANSWERED:
            figures.answered += 1
        elif outcome.kind == POOL_REFUSED:
            figures.pool_refused += 1
        elif outcome.kind == UPSTREAM_429:
            figures.upstream_429 += 1
        else:
            figures.other[outcome.kind] += 1
    for plan, figures in plans.items():
        figures.tenants = len(tenants[plan])
    answered_input = [o.input_tokens for o in outcomes if o.plan == flood_plan and o.kind == ANSWERED]
    input_per_call = max(answered_input, default=0)  # the flood's prompts are alike: what one of them is billed
    rows = []
    for row in minutes:
        start = int(row["minute"])
        if row["model"] != model or start + 60 <= started or start >= ended:
            continue
        flood = [o for o in outcomes if o.plan == flood_plan and start <= o.started < start + 60]
        asked = {"requests": len(flood), "input_tokens": len(flood) * input_per_call,
                 "output_tokens": sum(o.max_tokens for o in flood)}
        rows.append(MinuteFigures(start, asked, {d: int(row["admitted"][d]) for d in DIMENSIONS},
                                  int(row["refused_requests"]), min(ended, start + 60) - max(started, start)))
    return Summary({p: plans[p] for p in sorted(plans, key=lambda p: PLANS.index(p) if p in PLANS else 9)},
                   sorted(rows, key=lambda m: m.minute), dict(limit),
                   sum(f.upstream_429 for f in plans.values()), sum(m.refused_requests for m in rows))


def plan_table(summary: Summary) -> Tuple[List[str], List[List[str]]]:
    header = ["Plan", "Tenants", "Attempted", "Answered", "Refused by the pool", "Upstream 429", "Other errors",
              "Success rate", "Threshold"]
    rows = []
    for figures in summary.plans.values():
        other = ", ".join(f"{n} x {kind}" for kind, n in sorted(figures.other.items())) or "0"
        verdict = "best effort" if figures.threshold is None else \
            f">= {figures.threshold:g} %: {'HOLD' if figures.holds else 'MISS'}"
        rows.append([figures.plan, str(figures.tenants), f"{figures.attempted:,}", f"{figures.answered:,}",
                     f"{figures.pool_refused:,}", str(figures.upstream_429), other, f"{figures.success_rate:.2f} %",
                     verdict])
    return header, rows


def minute_table(summary: Summary) -> Tuple[List[str], List[List[str]]]:
    header = ["Minute (UTC)", "Seconds measured"] + [f"{d}: admitted / limit (flood asked)" for d in DIMENSIONS] \
        + ["Upstream refused"]
    rows = []
    for m in summary.minutes:
        label = f"{m.minute // 3600 % 24:02d}:{m.minute // 60 % 60:02d}"
        rows.append([label, f"{m.seconds_measured:.0f}"]
                    + [f"{m.admitted[d]:,} / {summary.limit[d]:,} ({m.flood_asked[d]:,})" for d in DIMENSIONS]
                    + [str(m.refused_requests)])
    return header, rows


def text(summary: Summary) -> str:
    """The section's result as plain text: both tables and each check."""
    lines = []
    for header, rows in (plan_table(summary), minute_table(summary)):
        cells = [header] + rows
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells] + [""]
    lines += [f"{'HOLD' if ok else 'MISS'}  {name}" for name, ok in summary.verdicts()]
    lines.append(f"The targets (enterprise ≥ 99 %, pro ≥ 95 %, no upstream 429, use under the limit): {'PASS' if summary.passed else 'FAIL'}")
    return "\n".join(lines)


def write_block(path: Path, markdown: str) -> None:
    """Put the section's figures into `path` between its markers, replacing the previous run and nothing else."""
    replace_block(path, BEGIN, END, f"{BEGIN}\n{markdown.rstrip()}\n{END}\n")
