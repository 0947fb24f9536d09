"""Measurements, not tests: `make bench` (`python -m dev.bench`) writes docs/performance.md.

    run.py           the run: every section in order on one set-up, or a few alone (`--only`)
    harness.py       constants, sizes, API Gateway's events, the in-process set-up every section stands on
    report.py        statistics, the result table, the machine
    document.py      docs/performance.md from a run
    package_size.py  section 6    warm_path.py     section 1 and the profile
    round_trips.py   section 2    cold_start.py    section 3 and the import profile
    scaling.py       section 4    concurrency.py   section 5
    ledger.py        sections 7 and 8: the ledger under DynamoDB's conflict semantics, the latency estimate
    restore.py, restore_report.py   SnapStart restores modelled here, and their section
    pool_flood.py, pool_flood_report.py   section 9: a free tenant floods the platform pool (docs/upstream.md)
    budget_job.py, offboarding.py, ttfb.py   the budget job, offboarding and streaming's first byte, at scale
    cost.py          docs/cost.md: the infrastructure cost of a million AI calls (`python -m dev.bench.cost`)
    probes.py        the DynamoDB probe, shared with the tests that count round trips
"""
