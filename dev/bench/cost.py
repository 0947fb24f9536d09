"""The infrastructure cost of a million AI calls, computed from the template's memory sizes and published prices.

`python -m dev.bench.cost` rewrites docs/cost.md; tests/dev/test_cost.py fails when the document no longer matches
.chalice/config.json (a memory size changed) or when the AI path costs more than TARGET_PER_MILLION_10S.
Every price is us-east-1, on-demand, as published at PRICES' sources; money is Decimal throughout.
"""
from __future__ import annotations

import json
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Dict, List, Tuple

from dev.deploy import stream_template  # the streaming function, which serves the AI routes

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "cost.md"
MILLION = Decimal(1_000_000)
TARGET_PER_MILLION_10S = Decimal(100)
DURATIONS_S = (1, 10, 60)

# (price, unit, source)
PRICES: Dict[str, Tuple[Decimal, str, str]] = {
    "lambda_gb_s": (Decimal("0.0000166667"), "per GB-second (x86)", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_request": (Decimal("0.20"), "per million requests", "https://aws.amazon.com/lambda/pricing/"),
    "snapstart_cache": (Decimal("0.0000015046"), "per GB-second cached, per published version (3 h minimum)",
                        "https://aws.amazon.com/lambda/pricing/"),
    "snapstart_restore": (Decimal("0.0001397998"), "per GB restored", "https://aws.amazon.com/lambda/pricing/"),
    "api_gateway": (Decimal("3.50"), "per million REST API calls (first 333 million a month)",
                    "https://aws.amazon.com/api-gateway/pricing/"),
    "dynamodb_write": (Decimal("0.625"), "per million write request units (on-demand)",
                       "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "dynamodb_read": (Decimal("0.125"), "per million read request units (on-demand)",
                      "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "logs_ingest": (Decimal("0.50"), "per GB ingested (standard log class)",
                    "https://aws.amazon.com/cloudwatch/pricing/"),
    "xray_trace": (Decimal("5.00"), "per million traces recorded", "https://aws.amazon.com/xray/pricing/"),
}

# What one AI call does, with where each count comes from.
AUTHORIZER_MS = 15        # REQUEST authorizer, decision-cache miss: 0.88 ms CPU at 1 vCPU (docs/performance.md
                          # "authorizer excl. DynamoDB") x 1769/512, plus one BatchGetItem (~10 ms): rounded up
AGGREGATOR_MS = 30        # the usage stream's fold, worst case one event per batch: two small transactions
WRITE_UNITS = (("admission: one conditional UpdateItem (~300 B)", Decimal(1)),
               ("usage event: one PutItem (~530 B)", Decimal(1)),
               ("fold: the event's aggregated stamp, in a transaction (2 units)", Decimal(2)),
               ("fold: reconciliation, month and feature items, 2 units each per batch (worst: a batch of 1)",
                Decimal(6)))
READ_UNITS = (("authorizer: tenant + user or key, strongly consistent (decision-cache miss)", Decimal(2)),
              ("gateway: tenant, settings, admission, reconciliation, eventually consistent (cache miss)",
               Decimal(2)))
LOG_BYTES = (("the app's log lines and EMF record for a warm POST /ai/chat (INFO; prod logs WARNING)", 979),
             ("Lambda's START, END and REPORT lines, API handler and authorizer (~450 B each)", 900),
             ("API Gateway's JSON access log line (14 fields, docs/observability.md)", 550),
             ("CloudWatch's 26 bytes per event, 9 events", 234))
XRAY_SHARE = Decimal(1)   # the default rule traces 1 request a second, then 5 %: at 1 million calls a month
                          # (0.4 a second) every call is traced; at 100 million, about 7.5 %.
RESTORES_PER_MILLION = 1000  # new execution environments per million calls (one per 1,000: an assumption)
SNAPSTART_MONTH_S = 30 * 24 * 3600
CALLS_PER_MONTH = MILLION  # the volume the monthly SnapStart cache is spread over


def memory_mb() -> Dict[str, int]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    default = int(config["lambda_memory_size"])
    sizes = {name: int(settings.get("lambda_memory_size", default))
             for name, settings in config["lambda_functions"].items()}
    return {**sizes, stream_template.FUNCTION: stream_template.MEMORY_MB}


def gb(mb: int) -> Decimal:
    return Decimal(mb) / Decimal(1024)


def usd(value: Decimal) -> str:
    return f"${value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


AI_FUNCTION = stream_template.FUNCTION  # POST /v1/messages and /ai/chat, streamed or whole (docs/streaming.md)


def items(seconds: int, ai_function: str = AI_FUNCTION) -> List[Tuple[str, str, Decimal]]:
    """(item, the sum, dollars per million calls) for calls of `seconds`."""
    mem = memory_mb()
    p = {k: v[0] for k, v in PRICES.items()}
    ai, auth, fold = mem[ai_function], mem["tenant_request_auth"], mem["usage_aggregator"]
    writes = sum(units for _, units in WRITE_UNITS)
    reads = sum(units for _, units in READ_UNITS)
    log_bytes = sum(size for _, size in LOG_BYTES)
    # SnapStart runs on both functions an AI call invokes: the authorizer and the streaming function. Their
    # caches and restores are the per-call SnapStart charges here.
    snap_gb = gb(auth) + gb(ai)
    return [
        (f"Lambda duration, AI path ({ai_function}, {ai} MB)",
         f"{ai}/1024 GB x {seconds} s x {p['lambda_gb_s']} x 10^6", gb(ai) * seconds * p["lambda_gb_s"] * MILLION),
        (f"Lambda duration, tenant authorizer ({auth} MB, {AUTHORIZER_MS} ms)",
         f"{auth}/1024 GB x {AUTHORIZER_MS / 1000} s x {p['lambda_gb_s']} x 10^6",
         gb(auth) * Decimal(AUTHORIZER_MS) / 1000 * p["lambda_gb_s"] * MILLION),
        (f"Lambda duration, usage fold ({fold} MB, {AGGREGATOR_MS} ms, batch of 1)",
         f"{fold}/1024 GB x {AGGREGATOR_MS / 1000} s x {p['lambda_gb_s']} x 10^6",
         gb(fold) * Decimal(AGGREGATOR_MS) / 1000 * p["lambda_gb_s"] * MILLION),
        ("Lambda requests (AI path, authorizer, fold)", f"3 x {p['lambda_request']}", 3 * p["lambda_request"]),
        ("API Gateway REST", f"1 x {p['api_gateway']}", p["api_gateway"]),
        ("DynamoDB writes", f"{writes} units x {p['dynamodb_write']}", writes * p["dynamodb_write"]),
        ("DynamoDB reads", f"{reads} units x {p['dynamodb_read']}", reads * p["dynamodb_read"]),
        ("CloudWatch Logs", f"{log_bytes:,} B x 10^6 / 10^9 x {p['logs_ingest']}",
         Decimal(log_bytes) * MILLION / Decimal(10**9) * p["logs_ingest"]),
        ("X-Ray", f"{XRAY_SHARE} x {p['xray_trace']}", XRAY_SHARE * p["xray_trace"]),
        (f"SnapStart cache (authorizer and AI path, {snap_gb:.2f} GB, a month over {CALLS_PER_MONTH:,} calls)",
         f"{snap_gb:.4f} GB x {SNAPSTART_MONTH_S:,} s x {p['snapstart_cache']}",
         snap_gb * SNAPSTART_MONTH_S * p["snapstart_cache"] * MILLION / CALLS_PER_MONTH),
        (f"SnapStart restores ({RESTORES_PER_MILLION:,} per million calls, authorizer and AI path)",
         f"{RESTORES_PER_MILLION} x {snap_gb:.4f} GB x {p['snapstart_restore']}",
         RESTORES_PER_MILLION * snap_gb * p["snapstart_restore"]),
    ]


def total(seconds: int) -> Decimal:
    return sum((dollars for _, _, dollars in items(seconds)), Decimal(0))


def document() -> str:
    mem = memory_mb()
    lines = ["# Cost per million AI calls", "",
             "Generated by `python -m dev.bench.cost` from `.chalice/config.json` (the template's memory sizes) and the "
             "prices below; do not edit by hand. us-east-1, on-demand, x86. The model's own price is the tenant's "
             "bill (chalicelib/pricing.py), not infrastructure, and is left out.", "",
             "## Per million AI calls", "",
             "A call of D seconds keeps the AI path's function busy D seconds: it waits on the model, and Lambda "
             "bills the wait. Everything else is per call, whatever its length.", ""]
    header = "| Item | Sum (10 s call) | " + " | ".join(f"{s} s calls" for s in DURATIONS_S) + " |"
    lines += [header, "|---|---|" + "---|" * len(DURATIONS_S)]
    tables = {s: items(s) for s in DURATIONS_S}
    for index, (item, sum_text, _) in enumerate(tables[10]):
        lines.append(f"| {item} | {sum_text} | " + " | ".join(usd(tables[s][index][2]) for s in DURATIONS_S) + " |")
    lines.append("| **Total** | | " + " | ".join(f"**{usd(total(s))}**" for s in DURATIONS_S) + " |")
    verdict = "holds" if total(10) <= TARGET_PER_MILLION_10S else "is missed"
    lines += ["", f"Target: the AI path at most {usd(TARGET_PER_MILLION_10S)} per million 10-second calls: "
              f"{usd(total(10))}, so it {verdict}. At 1,769 MB (one vCPU, before) Lambda duration alone was "
              f"{usd(gb(1769) * 10 * PRICES['lambda_gb_s'][0] * MILLION)}.", "",
              "## Prices", "", "| Price | Unit | Source |", "|---|---|---|"]
    lines += [f"| {price} | {unit} | {source} |" for price, unit, source in PRICES.values()]
    lines += ["", "## Counts per call", "", "| What | Units |", "|---|---|"]
    lines += [f"| write: {what} | {units} |" for what, units in WRITE_UNITS]
    lines += [f"| read: {what} | {units} |" for what, units in READ_UNITS]
    lines += [f"| log bytes: {what} | {size:,} |" for what, size in LOG_BYTES]
    lines += ["", "Write units from docs/performance.md (\"Write units per request\") and docs/scaling.md; the "
              "fold's per-batch writes are counted as if every batch held one event (the worst case: a batch of "
              "80 events of a tenant costs 0.075 units a call). Reads assume every cache misses (the "
              "authorizer's 30 s decision cache and the gateway's 5 s tenant cache usually hit). Stream reads by "
              "a Lambda trigger are free. The app's log bytes are `make bench`'s (dev/bench/restore.py counts what a "
              "warm POST /ai/chat writes at the local stage's INFO); the platform lines are typical sizes.",
              "", "## Memory per function", "", "| Function | MB | Why |", "|---|---|---|"]
    lines += [f"| {name} | {size:,} | {MEMORY_REASONS.get(name, '')} |" for name, size in sorted(mem.items())]
    other_gb = gb(mem["tenant_auth"]) + gb(mem["operator_auth"]) + gb(mem["api_handler"])
    other_caches = other_gb * SNAPSTART_MONTH_S * PRICES["snapstart_cache"][0]
    lines += ["", "SnapStart's charges: the cache is paid per published version for as long as it is active "
              "(a month is shown, spread over a million calls a month; at ten million it is a tenth per call), "
              "restores per new execution environment (one per 1,000 calls assumed). The API handler, tenant_auth "
              "and operator_auth run SnapStart too (no call to /v1/messages or /ai/chat invokes them): "
              f"{usd(other_caches)} a month more "
              "for their caches. Provisioned concurrency, which would remove restores, cannot be combined with "
              "SnapStart.", ""]
    return "\n".join(lines)


MEMORY_REASONS = {
    "api_handler": "Every route but the two AI ones the streaming function serves; its AI features "
                   "(/ai/summarize, /ai/code-review, ...) wait on the model too. SnapStart does the imports "
                   "before the snapshot, so CPU matters only for the first request after a restore: `make bench` "
                   "section 7 (docs/performance.md) measures it under a CPU quota of memory/1,769 at 1,769, "
                   "1,024, 512, 384 and 256 MB; at 384 MB the first POST /ai/chat reached the upstream in 498 ms "
                   "(median of 5, on a 2-core machine at load 6-10), leaving about half the second to Lambda's "
                   "own restore; 413 ms at 512 MB, 663 ms at 256 MB. A warm request's CPU (about 9 ms at one "
                   "vCPU) becomes about 40 ms; login's argon2 verify about 4.6 times slower than at one vCPU.",
    "tenant_request_auth": "Runs on every tenant request (its own 30 s decision cache; API Gateway caches nothing "
                           "for it) and is short, so its memory costs little: at 512 MB its first call after a "
                           "restore took 352 ms under the same load (`make bench` section 7), against 512 ms at "
                           "384 MB and 822 ms at 256 MB.",
    "tenant_auth": "As tenant_request_auth (the TOKEN authorizer, the same resolve path).",
    "operator_auth": "As tenant_auth, for operator routes.",
    "budget_check": "Hourly job, not on a request path: kept at one vCPU, where docs/scaling.md measures it.",
    "usage_aggregator": "The usage stream's fold, per batch: kept at one vCPU, where docs/scaling.md measures it; "
                        "not yet measured below it.",
    "reservation_sweeper": "Every 10 minutes, not on a request path: kept at one vCPU.",
    stream_template.FUNCTION: ("Serves POST /v1/messages and /ai/chat (dev/deploy/stream_template.py) and waits on the "
                               "model for the whole call: memory is paid per second of waiting, and 384 MB makes a "
                               "10-second call $62.50 a million instead of $166.67 at 1,024 and $287.92 at 1,769. "
                               "SnapStart pays the SDK's import before the snapshot; `make bench` section 7 times "
                               "its first POST /ai/chat after a restore, sent as the adapter sends it, under a CPU "
                               "quota of memory/1,769: at 384 MB it reached the upstream in 552 ms (median of 5, "
                               "load 3-5), leaving 448 ms of the second to Lambda's own restore; 374 ms at 512 MB, "
                               "735 ms at 256 MB."),
    "tenant_purge": "Every 15 minutes, not on a request path: pages of BatchWriteItem; kept at one vCPU.",
    "batch_sweep": ("Every 10 minutes, not on a request path: waits on upstream's batch reads, one per open batch, "
                    "so CPU does not bound it; Lambda's default size."),
}


def main() -> int:
    DOC.write_text(document())
    print(f"Wrote {DOC.relative_to(ROOT)}: {usd(total(10))} per million 10-second AI calls")
    return 0


if __name__ == "__main__":
    sys.exit(main())
