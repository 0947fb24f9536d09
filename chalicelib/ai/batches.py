"""`/v1/messages/batches`: Anthropic's Message Batches API per tenant, so the official SDKs work unchanged.

Create. Every request is checked as `POST /v1/messages` checks one (messages_api.parse and the
gateway's prepare: the plan, the model allow-list, the max_tokens cap, the tenant's instructions, the
worst case); a bad one is a 400 naming its index and custom_id, and nothing is written. The batch is
then admitted in one conditional write on the admission item: N calls of `basic_chat` against the
month's quota and the sum of the requests' worst cases at the batch price against a hard budget (one
request against the per-minute rate). The batch item (in the tenant's partition) and its open mark are
written in one transaction before the upstream batch is created with the tenant's own key or the
platform pool's, so a batch is never upstream without a record that holds its reservation.

Observe. A batch is refreshed from upstream when the tenant retrieves, lists or reads it, and by the
`batch_sweep` schedule (every 10 minutes, chalicelib/jobs/batch_sweep.py) for batches nobody reads.
Whoever first sees it ended settles it (chalicelib/metering/batch_ledger.py: one event per request,
exactly once, at the batch price); the totals, `GET /usage` and the budget job count it from there.

Ids are Tessera's own (`msgbatch_<12 hex ms><12 hex>`), looked up in the caller's partition only, so
another tenant's batch id is a 404 like an unknown one. The upstream id and key never leave the item.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Tuple

from pynamodb.exceptions import UpdateError

from chalicelib import validation
from chalicelib.ai import messages_api
from chalicelib.ai.batch_client import BatchClient, UpstreamBatch
from chalicelib.ai.gateway import FeatureCall, Gateway, PreparedCall
from chalicelib.errors import BadRequest, Forbidden, NotFound, TesseraError, UpstreamError
from chalicelib.logs import get_logger
from chalicelib.metering import admission, batch_ledger, principal_admission
from chalicelib.models import tenant_pk
from chalicelib.records import MessageBatch, OpenBatch
from chalicelib.periods import isoformat
from chalicelib.secrets import platform_api_keys
from chalicelib.store import condition_failed, transaction
from chalicelib.tenancy import TenantContext

log = get_logger("batches")

FEATURE = messages_api.FEATURE
MAX_REQUESTS = 1000  # each is checked and bounded at creation, within one request's time and body
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
PROCESSING_HOURS = 24  # Anthropic ends every batch within 24 hours of its creation
UNSENT_SECONDS = 900  # a batch still without its upstream id after this was never confirmed upstream
DEFAULT_LIMIT, MAX_LIMIT = 20, 1000
CREATING, ENDED = "creating", "ended"


# --- creating -----------------------------------------------------------------------------------

def parse(body: Dict[str, Any]) -> List[Tuple[str, FeatureCall]]:
    """The batch's requests as (custom_id, call), each parsed as a `/v1/messages` body."""
    validation.fields(body, ("requests",), required=("requests",))
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise BadRequest("requests must be a non-empty list.", code="invalid_field")
    if len(requests) > MAX_REQUESTS:
        raise BadRequest(f"A batch holds at most {MAX_REQUESTS} requests here.", code="too_many_requests")
    parsed, seen = [], set()
    for index, entry in enumerate(requests):
        if not isinstance(entry, dict) or set(entry) != {"custom_id", "params"}:
            raise BadRequest(f"requests.{index} must have exactly custom_id and params.", code="invalid_field",
                             details={"index": index})
        custom_id, params = entry["custom_id"], entry["params"]
        if not isinstance(custom_id, str) or not CUSTOM_ID.fullmatch(custom_id):
            raise BadRequest(f"requests.{index}.custom_id must be 1 to 64 letters, digits, '-' or '_'.",
                             code="invalid_field", details={"index": index})
        if custom_id in seen:
            raise _naming(BadRequest("custom_id is used twice in this batch.", code="duplicate_custom_id"),
                          index, custom_id)
        seen.add(custom_id)
        if not isinstance(params, dict):
            raise _naming(BadRequest("params must be an object.", code="invalid_field"), index, custom_id)
        try:
            call, stream = messages_api.parse(params)
        except BadRequest as error:
            raise _naming(error, index, custom_id) from None
        if stream:
            raise _naming(BadRequest("stream is not available in a batch.", code="invalid_field"), index,
                          custom_id)
        parsed.append((custom_id, call))
    return parsed


def _naming(error: TesseraError, index: int, custom_id: str) -> TesseraError:
    """The request's refusal, of the same kind and status, naming the request it is about."""
    return type(error)(f"requests.{index} (custom_id {custom_id!r}): {error.message}", code=error.code,
                       status=error.status, details={**error.details, "index": index, "custom_id": custom_id})


def _refuse_principal_budget(ctx: TenantContext) -> None:
    """A batch is admitted as a whole against the tenant and settled hours later, outside the per-call
    transaction a key's or user's hard budget is enforced in: rather than let a batch pass that budget, a
    principal with one is refused (one consistent read; batch creation is rare)."""
    terms = principal_admission.load_terms(ctx.tenant_id, ctx.principal_id)
    if terms is not None and terms.hard:
        raise Forbidden("This API key or user has a hard budget of its own, which Message Batches cannot hold to: "
                        "send the requests to /v1/messages, or make the budget soft.",
                        code="batches_with_principal_budget")


def create(gateway: Gateway, ctx: TenantContext, body: Dict[str, Any], base_url: str) -> Dict[str, Any]:
    requests = parse(body)
    prepared: List[PreparedCall] = []
    for index, (custom_id, call) in enumerate(requests):
        try:
            prepared.append(gateway.prepare(ctx, FEATURE, call))
        except (BadRequest, NotFound) as error:  # NotFound: a model the tenant may not use
            raise _naming(error, index, custom_id) from None
    first = prepared[0]
    _refuse_principal_budget(ctx)
    reserved = {custom_id: batch_ledger.Reserved(p.model_call.model,
                                                 batch_ledger.batch_worst_case_micros(p.worst_case_micros))
                for (custom_id, _), p in zip(requests, prepared)}
    worst = sum(r.worst_case_micros for r in reserved.values())
    now = datetime.now(timezone.utc)
    batch_id = f"msgbatch_{int(now.timestamp() * 1000):012x}{secrets.token_hex(6)}"
    tenant_id = ctx.tenant_id
    latest = [first.state]  # a refusal is confirmed against the plan read again too, as Gateway.admit does

    def load_view() -> Optional[admission.AdmissionView]:
        latest[0] = latest[0].fresh()
        return latest[0].view

    reservation, view = admission.reserve(
        tenant_id, batch_id, FEATURE, worst, first.state.view, first.state.returns,
        load_view=load_view, load_returns=lambda: admission.load_returns(tenant_id),
        now=now, count=len(requests), swept=False, plan_of=lambda name: latest[0].plan_of(name))
    gateway.cache.remember(tenant_id, view)
    item = MessageBatch(
        tenant_pk(tenant_id), MessageBatch.sk_for(batch_id), batch_id=batch_id, status=CREATING,
        principal_id=ctx.principal_id, principal_type=ctx.principal_type,
        key_source="tenant" if first.own_key else "platform", key_fingerprint=key_fingerprint(first.api_key),
        period=reservation.period, bucket=reservation.bucket, request_count=len(requests),
        worst_case_micros=worst, reservations=batch_ledger.encode_reservations(reserved), created_at=now,
        ends_by=now + timedelta(hours=PROCESSING_HOURS))
    with transaction() as tx:
        tx.save(item, condition=MessageBatch.pk.does_not_exist())
        tx.save(OpenBatch(OpenBatch.PARTITION, OpenBatch.sk_for(tenant_id, batch_id), tenant_id=tenant_id,
                          batch_id=batch_id))
    try:
        upstream = BatchClient(gateway.model_client).create(
            [(custom_id, p.model_call) for (custom_id, _), p in zip(requests, prepared)], first.api_key,
            first.own_key)
    except TesseraError as error:
        # Refused upstream: nothing ran, every request is given back. No answer: it may be running,
        # so every request is recorded as indeterminate (counted, not charged, its bound shown).
        _settle(item, None, "missing" if getattr(error, "maybe_billed", False) else batch_ledger.ERRORED)
        raise
    item.update(actions=[MessageBatch.upstream_id.set(upstream.id),
                         MessageBatch.status.set(upstream.processing_status),
                         MessageBatch.ends_by.set(upstream.expires_at),
                         MessageBatch.request_counts.set(upstream.request_counts)])
    return view_of(item, base_url)


def key_fingerprint(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


# --- observing and settling ---------------------------------------------------------------------

def _key(gateway: Gateway, item: MessageBatch) -> Tuple[str, bool]:
    """The key the batch was created with: the tenant's own (if still set) or one of the pool's."""
    tenant_id = item.pk.removeprefix("TENANT#")
    candidates = []
    if item.key_source == "tenant":
        key, own = gateway.api_key_for(gateway.tenant_state(tenant_id))
        if own:
            candidates.append(key)
    else:
        candidates = platform_api_keys()
    for key in candidates:
        if key_fingerprint(key) == item.key_fingerprint:
            return key, item.key_source == "tenant"
    raise UpstreamError("The key this batch was created with is no longer configured, so upstream cannot be "
                        "asked about it.", status=409, code="batch_key_unavailable")


def observe(gateway: Gateway, item: MessageBatch) -> Tuple[MessageBatch, Optional[list]]:
    """Refresh an unsettled batch from upstream and settle it if it has ended. Returns the item and the
    result lines when this call read them."""
    if item.settled_at is not None:
        return item, None
    if item.upstream_id is None:
        if time.time() - item.created_at.timestamp() > UNSENT_SECONDS:
            _settle(item, None, "missing")  # its creation died before upstream answered: indeterminate
        return item, None
    client = BatchClient(gateway.model_client)
    key, own = _key(gateway, item)
    upstream = client.retrieve(item.upstream_id, key, own)
    if upstream.ended:
        results = client.results(item.upstream_id, key, own)
        _settle(item, results, upstream=upstream)
        return item, results
    if upstream.processing_status != item.status or upstream.request_counts != _counts(item):
        item.update(actions=[MessageBatch.status.set(upstream.processing_status),
                             MessageBatch.request_counts.set(upstream.request_counts),
                             MessageBatch.cancel_initiated_at.set(upstream.cancel_initiated_at)])
    return item, None


def _settle(item: MessageBatch, results: Optional[list], default_kind: str = "missing",
            upstream: Optional[UpstreamBatch] = None) -> None:
    reserved = batch_ledger.decode_reservations(item.reservations)
    settled = batch_ledger.outcomes(reserved, results, default_kind)
    owner = batch_ledger.BatchOwner(
        tenant_id=item.pk.removeprefix("TENANT#"), batch_id=item.batch_id, feature=FEATURE,
        principal_id=item.principal_id, principal_type=item.principal_type, own_key=item.key_source == "tenant",
        period=item.period, bucket=int(item.bucket), created_at=item.created_at, upstream_id=item.upstream_id)
    _, cost = batch_ledger.record(owner, reserved, settled)
    now = datetime.now(timezone.utc)
    counts = upstream.request_counts if upstream is not None else batch_ledger.counts(settled)
    try:
        item.update(actions=[MessageBatch.status.set(ENDED), MessageBatch.settled_at.set(now),
                             MessageBatch.ended_at.set(upstream.ended_at if upstream and upstream.ended_at else now),
                             MessageBatch.request_counts.set(counts), MessageBatch.cost_micros.set(cost)],
                    condition=MessageBatch.settled_at.does_not_exist())
    except UpdateError as error:
        if not condition_failed(error):
            raise
        item.refresh(consistent_read=True)  # another observer settled it a moment ago: the same events
    OpenBatch(OpenBatch.PARTITION, OpenBatch.sk_for(owner.tenant_id, item.batch_id)).delete()
    log.info("batch settled", extra={"fields": {"batch_id": item.batch_id, "cost_micros": cost,
                                                "requests": len(settled)}})


# --- the tenant's reads and changes -------------------------------------------------------------

def _load(tenant_id: str, batch_id: str) -> MessageBatch:
    try:
        return MessageBatch.get(tenant_pk(tenant_id), MessageBatch.sk_for(batch_id), consistent_read=True)
    except MessageBatch.DoesNotExist:
        raise NotFound(f"message_batch: {batch_id} was not found.", code="not_found") from None


def retrieve(gateway: Gateway, tenant_id: str, batch_id: str, base_url: str) -> Dict[str, Any]:
    item, _ = observe(gateway, _load(tenant_id, batch_id))
    return view_of(item, base_url)


def cancel(gateway: Gateway, tenant_id: str, batch_id: str, base_url: str) -> Dict[str, Any]:
    item = _load(tenant_id, batch_id)
    if item.settled_at is None and item.upstream_id is not None and item.status == "in_progress":
        key, own = _key(gateway, item)
        upstream = BatchClient(gateway.model_client).cancel(item.upstream_id, key, own)
        item.update(actions=[MessageBatch.status.set(upstream.processing_status),
                             MessageBatch.request_counts.set(upstream.request_counts),
                             MessageBatch.cancel_initiated_at.set(upstream.cancel_initiated_at
                                                                  or datetime.now(timezone.utc))])
    item, _ = observe(gateway, item)
    return view_of(item, base_url)


def results(gateway: Gateway, tenant_id: str, batch_id: str) -> List[Dict[str, Any]]:
    """The result lines of an ended batch (settled first if this is the first to see it end)."""
    item, lines = observe(gateway, _load(tenant_id, batch_id))
    if item.status != ENDED:
        raise BadRequest(f"message_batch: {batch_id} is still {_status(item)}; its results can be read once it "
                         "has ended.", code="batch_not_ended")
    if lines is not None:
        return lines
    if item.upstream_id is None:
        return [{"custom_id": custom_id, "result": {"type": "errored", "error": {"type": "error", "error": {
            "type": "api_error", "message": "The batch was not created upstream; nothing was processed."}}}}
            for custom_id in batch_ledger.decode_reservations(item.reservations)]
    key, own = _key(gateway, item)
    return BatchClient(gateway.model_client).results(item.upstream_id, key, own)


def delete(gateway: Gateway, tenant_id: str, batch_id: str) -> Dict[str, Any]:
    item, _ = observe(gateway, _load(tenant_id, batch_id))
    if item.status != ENDED:
        raise BadRequest(f"message_batch: {batch_id} is still {_status(item)}; cancel it and delete it once it "
                         "has ended.", code="batch_not_ended")
    if item.upstream_id is not None:
        key, own = _key(gateway, item)
        try:
            BatchClient(gateway.model_client).delete(item.upstream_id, key, own)
        except BadRequest:
            pass  # already gone upstream (a 404 there): ours goes too
    item.delete()
    return {"id": batch_id, "type": "message_batch_deleted"}


def list_batches(gateway: Gateway, tenant_id: str, limit: Optional[str], after_id: Optional[str],
                 before_id: Optional[str], base_url: str) -> Dict[str, Any]:
    """A page, newest first, as Anthropic pages: `after_id` the page after (older), `before_id` before."""
    if after_id and before_id:
        raise BadRequest("Send after_id or before_id, not both.", code="invalid_cursor")
    size = validation.page_size(limit, MAX_LIMIT, DEFAULT_LIMIT)
    pk = tenant_pk(tenant_id)
    cursor = after_id or before_id
    start = {"pk": {"S": pk}, "sk": {"S": MessageBatch.sk_for(cursor)}} if cursor else None
    older = before_id is None
    items = list(MessageBatch.query(pk, MessageBatch.sk.startswith("BATCH#"), scan_index_forward=not older,
                                    limit=size + 1, last_evaluated_key=start, consistent_read=True))
    has_more = len(items) > size
    items = items[:size]
    if not older:
        items.reverse()
    data = [view_of(_observed(gateway, item), base_url) for item in items]
    return {"data": data, "has_more": has_more, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


def _observed(gateway: Gateway, item: MessageBatch) -> MessageBatch:
    """A listed batch refreshed if upstream answers; as last seen if not (one batch never breaks a list)."""
    try:
        return observe(gateway, item)[0]
    except TesseraError as error:
        log.warning("batch not refreshed", extra={"fields": {"batch_id": item.batch_id, "code": error.code}})
        return item


# --- Anthropic's shape --------------------------------------------------------------------------

def _status(item: MessageBatch) -> str:
    return "in_progress" if item.status == CREATING else item.status


def _counts(item: MessageBatch) -> Dict[str, int]:
    counts = item.request_counts.as_dict() if item.request_counts else {}
    if not counts:
        counts = {"processing": int(item.request_count), "succeeded": 0, "errored": 0, "canceled": 0,
                  "expired": 0}
    return {k: int(v) for k, v in counts.items()}


def _time(moment: Optional[datetime]) -> Optional[str]:
    return isoformat(moment) if moment is not None else None


def view_of(item: MessageBatch, base_url: str) -> Dict[str, Any]:
    ended = item.status == ENDED
    return {"id": item.batch_id, "type": "message_batch", "processing_status": _status(item),
            "request_counts": _counts(item), "ended_at": _time(item.ended_at), "created_at": _time(item.created_at),
            "expires_at": _time(item.ends_by), "cancel_initiated_at": _time(item.cancel_initiated_at),
            "archived_at": None,
            "results_url": f"{base_url}/v1/messages/batches/{item.batch_id}/results" if ended else None}


def jsonl(lines: List[Dict[str, Any]]) -> str:
    """Result lines as JSON Lines, Anthropic's results format."""
    return "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
