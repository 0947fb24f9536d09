"""Offboarding at scale, scaled down: export and purge one tenant of N items and time both.

    .venv/bin/python -m dev.bench.offboarding [--items 10000]

It starts its own moto server (dev/stack/moto_server.py) on a free loopback port in a table of its own, signs
one tenant up, writes N usage-event-sized items into its partition with batch writes, then:

1. exports the tenant (the real export: partition query, JSON Lines, S3 put);
2. deletes it with no grace period and runs the real purge job to the end.

For each: wall time, this process's own CPU time (moto runs in another), items per second, and the
DynamoDB calls by operation. docs/data-model.md
("Offboarding") turns the purge's per-page cost into the time for 1,000,000 items with DynamoDB's
published limits; moto serves one request at a time and walks the whole table on each query, so the
local figure is an upper bound on the code's own time, not a forecast of DynamoDB's.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[2]

from dev.stack import local_stack as stack  # noqa: E402


def seed(tenant_id: str, count: int) -> int:
    """`count` items shaped like usage events (about 300 bytes each); returns one item's size in bytes."""
    from chalicelib import offboarding

    item = lambda n: {"pk": {"S": f"TENANT#{tenant_id}"}, "sk": {"S": f"EVENT#req_bench{n:010d}"},  # noqa: E731
                      "feature": {"S": "basic_chat"}, "model": {"S": "claude-sonnet-4-6"}, "status": {"S": "ok"},
                      "input_tokens": {"N": "1200"}, "output_tokens": {"N": "340"}, "cost_micros": {"N": "8700"},
                      "principal_id": {"S": "usr_0123456789abcdef0123"}, "created_at": {"S": "2026-12-01T00:00:00Z"},
                      "upstream_request_id": {"S": "msg_0123456789abcdef0123456789"}}
    offboarding._batch_write([{"PutRequest": {"Item": item(n)}} for n in range(count)])
    return len(json.dumps(item(0)))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))  # so `finally` stops moto
    port = stack.free_port()
    moto = stack.start_moto(port)
    try:
        env = {**stack.stage_environment("local"), "TESSERA_TABLE_NAME": f"tessera-bench-offboarding-{port}",
               "TESSERA_DELETION_GRACE_SECONDS": "0"}
        stack.bootstrap(f"http://127.0.0.1:{port}", env)
        os.environ.update(env)
        os.environ.update(stack.aws_environment(port))
        from chalicelib import audit, offboarding, tenants
        from chalicelib.logs import get_logger
        from chalicelib.models import _Meta, table_connection

        _Meta.read_timeout_seconds = 600
        get_logger().setLevel(logging.WARNING)
        calls: Counter = Counter()
        table_connection().connection.client.meta.events.register(
            "before-call.dynamodb.*", lambda model, **kwargs: calls.update([model.name]))
        created = tenants.sign_up({"company_name": "Bench", "slug": f"bench-{port}",
                                   "email": "owner@bench.example.com", "password": "correct-horse-battery"})
        tenant_id = created["tenant_id"]
        started = time.perf_counter()
        item_size = seed(tenant_id, args.items)
        print(json.dumps({"items": args.items, "item_json_bytes": item_size,
                          "seeded_in_s": round(time.perf_counter() - started, 1)}), flush=True)

        operator = audit.Actor("operator", "bench")
        calls.clear()
        started, cpu = time.perf_counter(), time.process_time()
        export = offboarding.export_tenant(tenant_id, operator)
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(json.dumps({"export": {"items": export["items"], "bytes": export["bytes"], "seconds": round(took, 2),
                                     "own_cpu_seconds": round(cpu, 2),
                                     "items_per_s": round(export["items"] / took), "calls": dict(calls)}}),
              flush=True)

        offboarding.request_deletion(tenant_id, {"confirm": f"bench-{port}"}, operator)
        calls.clear()
        started, cpu = time.perf_counter(), time.process_time()
        report = offboarding.purge_due(lambda: 600_000)
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
        pages = calls["Query"] - 2  # one query lists the deletions, the last finds the partition empty
        print(json.dumps({"purge": {**report, "seconds": round(took, 2), "own_cpu_seconds": round(cpu, 2), "items_per_s": round(report["deleted"] / took),
                                    "pages": pages, "ms_per_page": round(1000 * took / max(1, pages), 1),
                                    "calls": dict(calls)}}), flush=True)
    finally:
        stack.terminate(moto)
    return 0


if __name__ == "__main__":
    sys.exit(main())
