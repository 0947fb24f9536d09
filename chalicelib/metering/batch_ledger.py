"""Settling a Message Batch: one usage event per request, exactly once, at the batch price.

A batch is admitted at creation as one reservation of its N requests and the sum of their worst cases
at the batch price (admission.reserve with count=N). The batch item holds that reservation until the
batch is seen ended. Then every request gets one usage event in the ledger every call uses, keyed by
the batch id and its custom_id and written only if absent, so two observers settling at once, or a
settle that died half way and is run again, write each event once. The aggregator folds them as it
folds any call (a batch event is never counted in a sweep bucket, see aggregator.py):

    result      status          charged                    gives back
    succeeded   ok              its usage at batch price   worst case - cost
    errored     failed          nothing                    worst case, its admission
    canceled    failed          nothing                    worst case, its admission
    expired     failed          nothing                    worst case, its admission
    other/none  indeterminate   nothing (cost bound shown) worst case (its admission stays counted)

Anthropic bills only succeeded batch requests. A result type this code does not know yet, or a request
upstream gave no result for, is recorded as indeterminate: not charged, counted against the quota, its
worst case shown as exposure ("Calls that may have been billed" in the README), so nothing billed is
invisible and no hard budget is loosened by a guess.

The batch price. Anthropic's pricing page, section "Batch processing" (the page chalicelib/pricing.py
cites): the Batch API costs 50 % of the standard input and output prices, and the prompt-caching
multipliers apply on top of it. So a batch request costs half of what the same usage costs as a
message: ceil(exact / 2) micro-dollars. Rounding the standard cost up first changes nothing
(ceil(ceil(x) / 2) = ceil(x / 2) for every x), so it is pricing.cost_micros halved and rounded up.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from chalicelib import pricing
from chalicelib.ai.client import Usage
from chalicelib.metering import ledger
from chalicelib.metering.admission import Reservation

BATCH_PRICE_DIVISOR = 2  # "Batch processing": 50 % of standard prices

SUCCEEDED, ERRORED, CANCELED, EXPIRED = "succeeded", "errored", "canceled", "expired"
NOT_BILLED = (ERRORED, CANCELED, EXPIRED)


def batch_cost_micros(model: str, usage: Usage) -> int:
    standard = pricing.cost_micros(model, usage.input_tokens, usage.output_tokens, usage.cache_creation_tokens,
                                   usage.cache_read_tokens, usage.cache_creation_1h_tokens)
    return -(-standard // BATCH_PRICE_DIVISOR)


def batch_worst_case_micros(standard_worst_case_micros: int) -> int:
    """A request's worst case at the batch price, from its worst case as a message (an upper bound too)."""
    return -(-standard_worst_case_micros // BATCH_PRICE_DIVISOR)


@dataclass(frozen=True)
class Reserved:
    """One request of a batch as admitted: its model and worst case at the batch price."""

    model: str
    worst_case_micros: int


def encode_reservations(reserved: Mapping[str, Reserved]) -> str:
    return json.dumps({custom_id: [r.model, r.worst_case_micros] for custom_id, r in reserved.items()},
                      separators=(",", ":"))


def decode_reservations(raw: str) -> Dict[str, Reserved]:
    return {custom_id: Reserved(model, int(worst)) for custom_id, (model, worst) in json.loads(raw).items()}


@dataclass(frozen=True)
class Outcome:
    """What one request of a batch settles as."""

    custom_id: str
    kind: str  # succeeded, errored, canceled, expired, or what else upstream said ("missing" for none)
    status: str  # the ledger's status
    usage: Usage
    cost_micros: int


def outcomes(reserved: Mapping[str, Reserved], results: Optional[Iterable[Mapping[str, Any]]],
             default_kind: str = "missing") -> List[Outcome]:
    """Each reserved request's outcome from upstream's result lines (None: no results at all, every
    request settles as `default_kind`). Lines for custom_ids not reserved are ignored."""
    by_id: Dict[str, Mapping[str, Any]] = {}
    for line in results or []:
        custom_id = line.get("custom_id")
        if custom_id in reserved and isinstance(line.get("result"), Mapping):
            by_id[custom_id] = line["result"]
    out = []
    for custom_id, request in reserved.items():
        result = by_id.get(custom_id)
        kind = str(result.get("type")) if result is not None else default_kind
        if kind == SUCCEEDED and isinstance((result.get("message") or {}).get("usage"), Mapping):
            usage = Usage.from_api(result["message"]["usage"])
            out.append(Outcome(custom_id, kind, ledger.OK, usage, batch_cost_micros(request.model, usage)))
        elif kind in NOT_BILLED:
            out.append(Outcome(custom_id, kind, ledger.FAILED, Usage(), 0))
        else:
            out.append(Outcome(custom_id, kind, ledger.INDETERMINATE, Usage(), 0))
    return out


def counts(settled: Iterable[Outcome]) -> Dict[str, int]:
    """Anthropic's request_counts of an ended batch, from what was settled (unknown kinds as errored)."""
    tally = {"processing": 0, SUCCEEDED: 0, ERRORED: 0, CANCELED: 0, EXPIRED: 0}
    for outcome in settled:
        tally[outcome.kind if outcome.kind in tally and outcome.kind != "processing" else ERRORED] += 1
    return tally


def request_id(created_ms: int, batch_id: str, custom_id: str) -> str:
    """The request id of a batch request's event: the batch's creation time first (so the event sorts in
    the month the batch was admitted), then a digest of batch id and custom_id (the same on every run)."""
    digest = hashlib.sha256(f"{batch_id}\0{custom_id}".encode()).hexdigest()[:16]
    return f"req_{created_ms:012x}{digest}"


@dataclass(frozen=True)
class BatchOwner:
    """Whose batch it is and what it was admitted as: what every event of it carries."""

    tenant_id: str
    batch_id: str
    feature: str
    principal_id: str
    principal_type: str
    own_key: bool
    period: str
    bucket: int
    created_at: Any  # datetime
    upstream_id: Optional[str]


def record(owner: BatchOwner, reserved: Mapping[str, Reserved], settled: Iterable[Outcome]) -> Tuple[int, int]:
    """Write each outcome's event (only if absent). Returns (events written now, total cost in micros)."""
    created_ms = int(owner.created_at.timestamp() * 1000)
    written = total = 0
    for outcome in settled:
        request = reserved[outcome.custom_id]
        reservation = Reservation(owner.tenant_id, request_id(created_ms, owner.batch_id, outcome.custom_id),
                                  owner.feature, owner.period, owner.bucket, request.worst_case_micros,
                                  owner.created_at)
        usage = outcome.usage
        settlement = ledger.Settlement(
            principal_id=owner.principal_id, principal_type=owner.principal_type, model=request.model,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_creation_tokens=usage.cache_creation_tokens, cache_read_tokens=usage.cache_read_tokens,
            cost_micros=outcome.cost_micros, own_key=owner.own_key, status=outcome.status,
            upstream_request_id=owner.upstream_id)
        written += ledger.record(reservation, settlement, batch_id=owner.batch_id, custom_id=outcome.custom_id)
        if outcome.cost_micros > request.worst_case_micros:
            ledger.log.error("cost above its reservation", extra={"fields": {
                "batch_id": owner.batch_id, "custom_id": outcome.custom_id, "cost_micros": outcome.cost_micros,
                "worst_case_micros": request.worst_case_micros}})
        total += outcome.cost_micros
    return written, total
