"""Idempotency-Key: a client's retry of the same request runs it once and answers with its first response.

Used by the AI routes (a retried call is admitted and billed once) and by sign-up (a retried sign-up makes
one tenant). The first request with a key claims it (a conditional put of a record in the key's scope: the
tenant's partition for an AI call, a partition of its own per key for a sign-up, which has no tenant yet);
the request runs; its response is stored on the record. For 24 hours the same key in the same scope with
the same request answers with that stored response (`Idempotent-Replayed: true`) without running it again.
While the first is still running the retry gets 409 `idempotency_in_progress` (retry after a second); the
same key with a different request gets 409 `idempotency_key_reused`. A first request that failed stores
nothing (its claim is released), so its retry runs anew; a claim whose handler died is taken over once its
lease (the handler's timeout) has passed. Keyed requests pay two more DynamoDB writes than unkeyed ones.

What counts as "the same request" is the caller's fingerprint: a digest of the AI call's method, route and
body (`fingerprint`), an HMAC keyed by the Idempotency-Key for a sign-up (chalicelib/tenants.py), whose body
holds a password.

A streamed answer (the streaming function writes it as produced) is stored once it has been sent whole;
a client that leaves before its end stores nothing, and its retry runs anew.
"""
from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from pynamodb.exceptions import PutError

from chalicelib.errors import BadRequest, Conflict
from chalicelib.logs import get_logger
from chalicelib.models import IdempotentCall, tenant_pk
from chalicelib.store import condition_failed

log = get_logger("idempotency")

TTL = timedelta(hours=24)
LEASE_SECONDS = 30  # the API handler's timeout: a running claim older than this belongs to a dead handler
MAX_KEY_LENGTH = 200
MAX_STORED_BYTES = 350_000  # DynamoDB items hold 400 KB

Response = Tuple[int, Any, Dict[str, str]]
Scope = Callable[[str], str]  # the digest of a key -> the partition its record lives in


def tenant_scope(tenant_id: str) -> Scope:
    """An AI call's key belongs to its tenant: its record lives in the tenant's partition."""
    return lambda _digest: tenant_pk(tenant_id)


def signup_scope(digest: str) -> str:
    """A sign-up has no tenant yet: each key gets a partition of its own, so sign-ups share no hot one."""
    return IdempotentCall.signup_pk(digest)


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join([method.encode(), path.encode(), body or b""])).hexdigest()


def _record(scope: Scope, key: str) -> IdempotentCall:
    digest = hashlib.sha256(key.encode()).hexdigest()
    return IdempotentCall(scope(digest), IdempotentCall.sk_for(digest))


def check_key(key: Optional[str]) -> Optional[str]:
    if key is None:
        return None
    if not (1 <= len(key) <= MAX_KEY_LENGTH) or not key.isprintable():
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
                         code="invalid_idempotency_key")
    return key


def run_once(scope: Scope, key: Optional[str], request_fingerprint: str, call: Callable[[], Response],
             lease_seconds: int = LEASE_SECONDS, stores_itself: bool = False) -> Response:
    """Run `call` once per (scope, key); a repeat answers with the first response. A body that is an
    iterator of bytes (a streamed answer) is stored when it has been iterated to its end. A call that
    raises releases the claim. Validate the request before: what fails here is run again on a retry.
    `stores_itself`: the call stores its response in its own transaction (`store_in`), so none is stored after."""
    if check_key(key) is None:
        return call()
    replay = _claim(scope, key, request_fingerprint, lease_seconds)
    if replay is not None:
        return replay
    try:
        status, body, headers = call()
    except BaseException:
        _release(scope, key)
        raise
    if isinstance(body, Iterator):
        return status, _stored_when_sent(scope, key, status, body, headers), headers
    if not stores_itself:
        _store(scope, key, status, body, headers)
    return status, body, headers


def _stored_when_sent(scope: Scope, key: str, status: int, chunks: Iterator[bytes],
                      headers: Dict[str, str]) -> Iterator[bytes]:
    sent: List[bytes] = []
    whole = False
    try:
        for chunk in chunks:
            sent.append(chunk)
            yield chunk
        whole = True
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # a client gone mid-stream: the call drains upstream and settles (chalicelib/ai/streaming.py)
        if whole:
            _store(scope, key, status, b"".join(sent).decode("utf-8"), headers)
        else:
            _release(scope, key)


def _claim(scope: Scope, key: str, request_fingerprint: str, lease_seconds: int) -> Optional[Response]:
    now = datetime.now(timezone.utc)
    record = _record(scope, key)
    record.fingerprint, record.state = request_fingerprint, "running"
    record.lease_until, record.expires_at = int(time.time()) + lease_seconds, TTL
    free = (IdempotentCall.pk.does_not_exist() | (IdempotentCall.expires_at < now)
            | ((IdempotentCall.state == "running") & (IdempotentCall.lease_until < int(time.time()))
               & (IdempotentCall.fingerprint == request_fingerprint)))
    try:
        record.save(condition=free)
        return None
    except PutError as error:
        if not condition_failed(error):
            raise
    existing = IdempotentCall.get(record.pk, record.sk, consistent_read=True)
    if existing.fingerprint != request_fingerprint:
        raise Conflict("This Idempotency-Key was used for a different request.", code="idempotency_key_reused")
    if existing.state != "done":
        raise Conflict("A request with this Idempotency-Key is still running; retry shortly.",
                       code="idempotency_in_progress", headers={"Retry-After": "1"})
    if existing.response is None:
        raise Conflict("The first response to this Idempotency-Key is too large to replay.",
                       code="idempotency_response_not_stored")
    headers = json.loads(existing.headers or "{}")
    headers["Idempotent-Replayed"] = "true"
    return int(existing.status_code), json.loads(existing.response), headers


def _done(status: int, body: Any, headers: Dict[str, str]) -> list:
    text = json.dumps(body, separators=(",", ":"))
    actions = [IdempotentCall.state.set("done"), IdempotentCall.status_code.set(status),
               IdempotentCall.headers.set(json.dumps(headers))]
    if len(text.encode()) <= MAX_STORED_BYTES:
        actions.append(IdempotentCall.response.set(text))
    return actions


def store_in(tx: Any, scope: Scope, key: str, request_fingerprint: str, status: int, body: Any,
             headers: Dict[str, str]) -> None:
    """Store the response inside the caller's transaction, for work that is one transaction (a sign-up, run with
    `run_once(..., stores_itself=True)`): the record is done exactly when the work is, so a retry replays even
    if the handler dies right after, or the commit's answer is lost after DynamoDB applied it. The claim must
    still be this one's."""
    tx.update(_record(scope, key), actions=_done(status, body, headers),
              condition=(IdempotentCall.state == "running") & (IdempotentCall.fingerprint == request_fingerprint))


def _store(scope: Scope, key: str, status: int, body: Any, headers: Dict[str, str]) -> None:
    record = _record(scope, key)
    try:
        record.update(actions=_done(status, body, headers))
    except Exception as error:  # the call is billed once either way; a retry would then run it again
        log.error("idempotent response not stored", extra={"fields": {"error": type(error).__name__}})


def _release(scope: Scope, key: str) -> None:
    try:
        _record(scope, key).delete(condition=IdempotentCall.state == "running")
    except Exception as error:
        log.warning("idempotency claim not released", extra={"fields": {"error": type(error).__name__}})
