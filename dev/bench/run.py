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
import time
from pathlib import Path
from typing import List, Optional, Sequence

from dev.bench.cold_start import ColdStart
from dev.bench.concurrency import Concurrency
from dev.bench.document import write_markdown
from dev.bench.harness import FULL, MAX_TOKENS, PROMPT, QUICK, ROOT
from dev.bench.package_size import PackageSize
from dev.bench.report import section, load_average, machine
from dev.bench.round_trips import RoundTrips
from dev.bench.scaling import Scaling
from dev.bench.warm_path import WarmPath


class Bench(PackageSize, WarmPath, RoundTrips, ColdStart, Scaling, Concurrency):
    """Every section, run in order on one set-up (`run`) or a few alone (`run_only`)."""

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

    STEPS = ("package", "gateway overhead", "round trips", "profile", "concurrency", "latency estimate",
             "ledger contention", "scaling", "cold start", "import profile", "snapstart restore", "pool flood")

    def measure_restore(self) -> None:
        from dev.bench import restore_report as bench_restore  # dev/bench/restore_report.py: section 7

        bench_restore.measure(self)

    def measure_pool_flood(self) -> None:
        from dev.bench import pool_flood  # dev/bench/pool_flood.py: section 9, on a stack of its own

        pool_flood.measure(self)

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
            self.timed("pool flood", self.measure_pool_flood)
        finally:
            self.stop()
        self.elapsed = time.perf_counter() - started

    ON_THEIR_OWN = {"pool-flood"}  # sections that start what they need themselves

    def run_only(self, only: Sequence[str]) -> None:
        """Some sections alone (`--only ledger,latency`): a quicker measurement of what a change touched."""
        steps = {"concurrency": self.measure_concurrency, "latency": self.measure_latency_estimate,
                 "ledger": self.measure_ledger_contention, "round-trips": self.measure_round_trips,
                 "restore": self.measure_restore, "pool-flood": self.measure_pool_flood}
        unknown = [name for name in only if name not in steps]
        if unknown:
            raise SystemExit(f"--only takes {', '.join(steps)}; not {', '.join(unknown)}")
        started = time.perf_counter()
        try:
            if set(only) - self.ON_THEIR_OWN:
                self.timed("set-up", self.start)
            for name in only:
                self.timed(name, steps[name])
        finally:
            self.stop()
        self.elapsed = time.perf_counter() - started


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sample sizes: a smoke run, not a measurement")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--only", default="", help="comma-separated sections: concurrency, latency, ledger, "
                                                   "round-trips, restore, pool-flood (default: all)")
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

    if args.only not in ("restore", "pool-flood"):  # these alone rewrite only their own part of a file
        write_markdown(args.output, bench, info, sizes, args.quick)
    if any(row.section.startswith(bench_restore.SECTION) for row in bench.report.rows):
        bench_restore.write_section(args.output, bench.report, info)
    misses = [row for row in bench.report.rows if row.verdict == "MISS"]
    print(f"\nTargets: {sum(r.verdict == 'HOLD' for r in bench.report.rows)} HOLD, {len(misses)} MISS"
          + "".join(f"\n  MISS: {row.section}: {row.metric} = {row.cells()[2]} {row.unit} (target {row.target})"
                    for row in misses))
    written = "docs/upstream.md's pool flood figures" if args.only == "pool-flood" else args.output
    print(f"Wrote {written} in {bench.elapsed:.0f} s total.")
    return 0
