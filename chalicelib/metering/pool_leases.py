"""This instance's leases on the platform pool: the shell around chalicelib/metering/pool.py's decision.

Every pool call (the platform's key, never a tenant's own) reserves one request, its input bound and its
max_tokens against its model's minute before it goes upstream, and is trued up after. The minute's shared
state is one item per model and minute (pk `POOL#<model>`, sk `MINUTE#<epoch>`, a counter per plan and
dimension, a version). An instance does not write it per call: it leases a slice of the minute for a plan
(at least LEASE_SHARE of each ceiling, or what the call lacks) with one GetItem and one conditional
UpdateItem checked by `pool.decide` against the item as read (the version proves it fresh), and admits
from the lease in memory until it runs out. So the usual call adds no DynamoDB round trip; the call that
renews a lease adds two.

Bound: the item never grants more than the ceilings (every grant is decided on the current item), so the
pool's reservations stay under its ceilings whatever the number of instances. A lease's unused part is not
given back to the item before its minute ends: at worst each warm instance holds one slice per plan and
model idle, which can only refuse early (by at most instances x LEASE_SHARE of a ceiling), never admit
past a ceiling. A call's true-up returns its unused input bound and output to this instance's lease.
"""
from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from chalicelib.errors import TooManyRequests
from chalicelib.logs import get_logger
from chalicelib.metering import pool
from chalicelib.metering.pool import DIMENSIONS, Amounts, Window

log = get_logger("pool")

LEASE_SHARE = Decimal("0.05")  # of each ceiling per renewal: 20 renewals per plan a minute at full use
TAKE_ATTEMPTS = 8  # another instance's renewal in between: wait a jittered moment, read again, decide again
BACKOFF_SECONDS = 0.01
PLANS = tuple(pool.GUARANTEED)


def top_up(available: Amounts, ask: Amounts, ceiling: Amounts, share: Decimal = LEASE_SHARE) -> Amounts:
    """What a lease renewal asks the item for: nothing where the lease still covers the call, else the
    larger of a slice of the ceiling and what the call lacks (never more than the ceiling)."""
    values = {}
    for dimension in DIMENSIONS:
        lacking = ask.get(dimension) - available.get(dimension)
        limit = ceiling.get(dimension)
        values[dimension] = 0 if lacking <= 0 else max(lacking, min(limit, math.floor(share * limit)))
    return Amounts(**values)


def covers(available: Amounts, ask: Amounts) -> bool:
    return all(available.get(d) >= ask.get(d) for d in DIMENSIONS)


def parse_ceilings(text: Optional[str]) -> Dict[str, Amounts]:
    """`model=requests/input/output;...` (TESSERA_POOL_CEILINGS), `*` for every other model."""
    ceilings = {}
    for entry in (text or "").split(";"):
        if entry.strip():
            model, numbers = entry.split("=", 1)
            ceilings[model.strip()] = Amounts(*(int(n) for n in numbers.split("/")))
    return ceilings


@dataclass(frozen=True)
class PoolTicket:
    """One call's reservation in this instance's lease: what settles it after the call."""

    model: str
    plan: str
    window_start: float
    ask: Amounts


class PoolStore:
    """The pool's minute items in the table, through the low-level client (one GetItem, one UpdateItem)."""

    def __init__(self, partition: str = "POOL") -> None:
        self.partition = partition  # another partition: a pool of its own (tests)

    def _key(self, model: str, start: float) -> dict:
        return {"pk": {"S": f"{self.partition}#{model}"}, "sk": {"S": f"MINUTE#{int(start)}"}}

    @staticmethod
    def _table() -> Tuple[Any, str]:
        from chalicelib.models import table_connection

        connection = table_connection()
        return connection.connection.client, connection.table_name

    def read(self, model: str, start: float) -> Tuple[Window, int]:
        dynamodb, table = self._table()
        item = dynamodb.get_item(TableName=table, Key=self._key(model, start), ConsistentRead=True).get("Item") or {}
        by_plan = {plan: Amounts(*(int(item.get(f"{plan}_{d}", {}).get("N", 0)) for d in DIMENSIONS))
                   for plan in PLANS if any(f"{plan}_{d}" in item for d in DIMENSIONS)}
        return Window(start, by_plan), int(item.get("version", {}).get("N", 0))

    def take(self, model: str, start: float, plan: str, amounts: Amounts, seen_version: int) -> bool:
        """Add `amounts` to the plan's counters if the item is still at `seen_version`; False when another
        instance wrote first."""
        dynamodb, table = self._table()
        names = {f"#{d}": f"{plan}_{d}" for d in DIMENSIONS}
        values = {f":{d}": {"N": str(amounts.get(d))} for d in DIMENSIONS}
        values.update({":one": {"N": "1"}, ":expires": {"N": str(int(start) + 3600)}})
        condition = "attribute_not_exists(version)"
        if seen_version:
            condition, values[":seen"] = "version = :seen", {"N": str(seen_version)}
        try:
            dynamodb.update_item(
                TableName=table, Key=self._key(model, start),
                UpdateExpression="ADD " + ", ".join(f"#{d} :{d}" for d in DIMENSIONS) + ", version :one "
                                 "SET expires_at = :expires",
                ConditionExpression=condition, ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True


class PoolLeases:
    """Per model: what this instance holds of the current minute (granted) and has reserved of it (used),
    by plan."""

    def __init__(self, ceilings: Mapping[str, Amounts], store: Optional[PoolStore] = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.ceilings = dict(ceilings)
        self.store = store or PoolStore()
        self._clock = clock
        self._granted: Dict[str, Window] = {}
        self._used: Dict[str, Window] = {}
        self._lock = threading.Lock()
        # One renewal at a time per instance: its threads then wait for it and use the lease it brings
        # rather than collide on the item's version with each other.
        self._renewing = threading.Lock()

    def ceiling(self, model: str) -> Amounts:
        return self.ceilings.get(model) or self.ceilings["*"]

    def _current(self, model: str, now: float) -> Tuple[Window, Window]:
        granted = pool.current(self._granted.get(model), now)
        used = pool.current(self._used.get(model), now)
        self._granted[model], self._used[model] = granted, used
        return granted, used

    def reserve(self, model: str, plan: str, ask: Amounts) -> PoolTicket:
        """Reserve `ask` for a call of `plan`, from the lease when it covers it, else from a renewal;
        TooManyRequests (pool_share_exhausted) when the pool refuses the plan more this minute."""
        now = self._clock()
        ticket = self._from_lease(model, plan, ask, now)
        if ticket is not None:
            return ticket
        with self._renewing:
            return self._renew(model, plan, ask, now)

    def _from_lease(self, model: str, plan: str, ask: Amounts, now: float) -> Optional[PoolTicket]:
        with self._lock:
            granted, used = self._current(model, now)
            if covers(granted.of(plan).minus(used.of(plan)), ask):
                self._used[model] = used.with_reserved(plan, ask)
                return PoolTicket(model, plan, used.started_at, ask)
        return None

    def _renew(self, model: str, plan: str, ask: Amounts, now: float) -> PoolTicket:
        ceiling = self.ceiling(model)
        ticket = self._from_lease(model, plan, ask, now)  # the renewal waited for may cover it
        if ticket is not None:
            return ticket
        for attempt in range(TAKE_ATTEMPTS):
            with self._lock:
                granted, used = self._current(model, now)
                available = granted.of(plan).minus(used.of(plan))
            shared, version = self.store.read(model, granted.started_at)
            wanted = top_up(available, ask, ceiling)
            decision = pool.decide(ceiling, shared, plan, wanted, now)
            if not decision.admitted:  # the slice does not fit: what the call lacks may
                wanted = ask.minus(available)
                decision = pool.decide(ceiling, shared, plan, wanted, now)
            if not decision.admitted:
                raise exhausted(model, plan, decision)
            if self.store.take(model, granted.started_at, plan, wanted, version):
                with self._lock:
                    held = self._granted.get(model)
                    if held is not None and held.started_at == granted.started_at:
                        self._granted[model] = held.with_reserved(plan, wanted)
                ticket = self._from_lease(model, plan, ask, now)
                if ticket is not None:
                    return ticket
            # else another instance renewed first (or this one's threads used the renewal): read again
            time.sleep(random.uniform(0, BACKOFF_SECONDS * (attempt + 1)))
        # Other instances renewed between each read and write: the pool is busy, not necessarily full
        raise exhausted(model, plan, pool.Decision(False, retry_after=1),
                        "The shared model capacity is busy renewing. Retry after 1 s.")

    def settle(self, ticket: PoolTicket, used: Amounts) -> None:
        """True-up: what the call reserved and did not use goes back to this instance's lease."""
        with self._lock:
            window = self._used.get(ticket.model)
            if window is not None and window.started_at == ticket.window_start:
                self._used[ticket.model] = pool.settle(window, ticket.plan, ticket.ask, used)


def exhausted(model: str, plan: str, decision: pool.Decision, message: str = "") -> TooManyRequests:
    error = TooManyRequests(
        message or f"The {plan} plan's share of the shared {model} capacity is used up this minute. "
                   f"Retry after {decision.retry_after} s, or use your own API key.",
        retry_after=decision.retry_after, code="pool_share_exhausted",
        details={"model": model, "plan": plan, "limit": decision.dimension})
    error.headers["x-should-retry"] = "true"
    return error
