"""This instance's leases on the platform pool: the shell around chalicelib/metering/pool.py's decision.

Every pool call (the platform's key, never a tenant's own) reserves one request, its input bound and its
max_tokens against its model's minute before it goes upstream, and is trued up after. The minute's shared
state is one item per model and minute (pk `POOL#<model>`, sk `MINUTE#<epoch>`, a counter per plan and
dimension, a version). An instance does not write it per call: it leases a slice of the minute for a plan
(what the call lacks, or a slice that doubles with each renewal in the minute, up to LEASE_SHARE of each
ceiling) with one BatchGetItem (the minute item and the plans' pool shares, chalicelib/plan_models.py)
and one conditional UpdateItem checked by `pool.decide` against the item as read (the version proves it
fresh), and admits from the lease in memory until it runs out. So the usual call adds no DynamoDB round
trip; the call that renews a lease adds two.

Bound: the item never grants more than the ceilings (every grant is decided on the current item), so the
pool's reservations stay under its ceilings whatever the number of instances. A lease's unused part is not
given back to the item before its minute ends (unless upstream reports a lower ceiling): at worst each
warm instance holds its last slice per plan and model idle (at most LEASE_SHARE of a ceiling, and only
four times a call's ask for an instance that renewed once), which can only refuse early, never admit past a
ceiling. A call's true-up returns its unused input bound and output to this instance's lease.
"""
from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from chalicelib.errors import TooManyRequests
from chalicelib.logs import get_logger
from chalicelib.metering import pool
from chalicelib.metering.pool import DIMENSIONS, Amounts, Window
from chalicelib.observability import PoolStanding
from chalicelib.plan_models import PLAN_PARTITION, POOL_SHARES_SK
from chalicelib.store import RETRY, batch_get

log = get_logger("pool")

LEASE_SHARE = Decimal("0.05")  # the most a renewal takes of each ceiling: 20 renewals a minute at full use
# Another instance's renewal in between: wait RETRY's jittered pause, read again, decide again (chalicelib/store.py).
TAKE_ATTEMPTS = RETRY.attempts
SUFFIXES = {f"_{d}": d for d in DIMENSIONS}  # the minute item's counters: `<plan>_<dimension>`


def top_up(available: Amounts, ask: Amounts, ceiling: Amounts, calls: int = 4,
           share: Decimal = LEASE_SHARE) -> Amounts:
    """What a lease renewal asks the item for: nothing where the lease still covers the call, else the
    larger of what the call lacks and a slice for `calls` calls like it, at most a share of the ceiling.
    `calls` doubles with each renewal in the minute (slow start): a busy instance renews a few times a
    minute, an idle one holds little, so the instances' idle slack stays small however many there are."""
    values = {}
    for dimension in DIMENSIONS:
        lacking = ask.get(dimension) - available.get(dimension)
        slice_ = min(ask.get(dimension) * calls, math.floor(share * ceiling.get(dimension)))
        values[dimension] = 0 if lacking <= 0 else max(lacking, slice_)
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


def _by_plan(item: Mapping[str, Any]) -> Dict[str, Amounts]:
    """The minute item's counters by plan, whatever the plans (operators create them)."""
    counters: Dict[str, Dict[str, int]] = {}
    for name, value in item.items():
        for suffix, dimension in SUFFIXES.items():
            if name.endswith(suffix) and "N" in value:
                counters.setdefault(name[:-len(suffix)], {})[dimension] = int(value["N"])
    return {plan: Amounts(**values) for plan, values in counters.items()}


def _shares(item: Mapping[str, Any]) -> Dict[str, pool.Share]:
    return {plan: pool.Share(int(share), int(reserved))
            for plan, (share, reserved) in json.loads(item["shares"]["S"]).items()}


@dataclass(frozen=True)
class PoolTicket:
    """One call's reservation in this instance's lease: what settles it after the call, and the model's
    minute as this instance knew it then (`reserved`: the item's total as read at this instance's last
    renewal, plus its grants since; `ceiling`: the ceiling in force), which the call's metrics report."""

    model: str
    plan: str
    window_start: float
    ask: Amounts
    reserved: Amounts = Amounts()
    ceiling: Amounts = Amounts()

    def standing(self) -> PoolStanding:
        return PoolStanding({d: self.reserved.get(d) for d in DIMENSIONS},
                            {d: self.ceiling.get(d) for d in DIMENSIONS})


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
        window, version, _ = self.read_with_shares(model, start)
        return window, version

    def read_with_shares(self, model: str, start: float) -> Tuple[Window, int, Optional[pool.Shares]]:
        """The minute item (its reservations by plan, its version) and every plan's pool share, in one
        consistent BatchGetItem: the catalog's summary item (chalicelib/plan_models.py), None when there is
        none (the built-in plans' shares hold)."""
        dynamodb, table = self._table()
        minute, summary = self._key(model, start), {"pk": {"S": PLAN_PARTITION}, "sk": {"S": POOL_SHARES_SK}}
        found = batch_get(dynamodb, table, [minute, summary], consistent=True)
        item = next((i for i in found if i["sk"]["S"] == minute["sk"]["S"]), {})
        shares = next((_shares(i) for i in found if i["sk"]["S"] == POOL_SHARES_SK), None)
        return Window(start, _by_plan(item)), int(item.get("version", {}).get("N", 0)), shares

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

    def give_back(self, model: str, start: float, plan: str, amounts: Amounts) -> None:
        """Return a lease's unused part. Unconditional and leaving the version alone: a renewal decided on a
        read from before it only saw the pool fuller than it is."""
        dynamodb, table = self._table()
        dynamodb.update_item(
            TableName=table, Key=self._key(model, start),
            UpdateExpression="ADD " + ", ".join(f"#{d} :{d}" for d in DIMENSIONS),
            ConditionExpression="attribute_exists(version)",
            ExpressionAttributeNames={f"#{d}": f"{plan}_{d}" for d in DIMENSIONS},
            ExpressionAttributeValues={f":{d}": {"N": str(-amounts.get(d))} for d in DIMENSIONS})


class PoolLeases:
    """Per model: what this instance holds of the current minute (granted) and has reserved of it (used),
    by plan."""

    def __init__(self, ceilings: Mapping[str, Amounts], store: Optional[PoolStore] = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.ceilings = dict(ceilings)
        self.store = store or PoolStore()
        self._clock = clock
        self._granted: Dict[str, Window] = {}
        self._seen: Dict[str, Window] = {}  # the minute item as last read, with this instance's grants since
        self._corrected: Dict[str, Tuple[float, Amounts]] = {}  # until when, the ceiling upstream reported
        self._renewals: Dict[Tuple[str, str, float], int] = {}  # this minute's renewals by model and plan
        self._used: Dict[str, Window] = {}
        self._lock = threading.Lock()
        # One renewal at a time per instance: its threads then wait for it and use the lease it brings
        # rather than collide on the item's version with each other.
        self._renewing = threading.Lock()

    def configured(self, model: str) -> Amounts:
        return self.ceilings.get(model) or self.ceilings["*"]

    def ceiling(self, model: str) -> Amounts:
        """The configured ceiling, or lower for a minute after upstream's headers reported less."""
        with self._lock:
            corrected = self._corrected.get(model)
        if corrected is not None and corrected[0] > self._clock():
            return corrected[1]
        return self.configured(model)

    def observe(self, model: str, headers: Mapping[str, str]) -> None:
        """Lower the model's ceiling to what upstream's `anthropic-ratelimit-*` headers allow: its reported
        limit, less what the organisation used beyond this pool's reservations as last seen here (another
        consumer of the same organisation). Headers absent or malformed change nothing."""
        if not headers:
            return
        now = self._clock()
        with self._lock:
            reserved = pool.current(self._seen.get(model), now).total()
        ceiling, elsewhere = pool.corrected(self.configured(model), headers, reserved)
        lower = any(ceiling.get(d) < self.ceiling(model).get(d) for d in DIMENSIONS)
        with self._lock:
            self._corrected[model] = (now + pool.WINDOW_SECONDS, ceiling)
        if lower:  # leases sized against the higher ceiling: give them back, renew against the lower one
            self._release(model, now)
        if elsewhere and any(elsewhere.values()):
            log.info("pool ceiling corrected", extra={"fields": {"model": model, "used_elsewhere": elsewhere}})

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
        ceiling = self.ceiling(model)
        with self._lock:
            granted, used = self._current(model, now)
            if covers(granted.of(plan).minus(used.of(plan)), ask):
                self._used[model] = used.with_reserved(plan, ask)
                seen = pool.current(self._seen.get(model), now).total()
                return PoolTicket(model, plan, used.started_at, ask, seen, ceiling)
        return None

    def _renew(self, model: str, plan: str, ask: Amounts, now: float) -> PoolTicket:
        ceiling = self.ceiling(model)
        ticket = self._from_lease(model, plan, ask, now)  # the renewal waited for may cover it
        if ticket is not None:
            return ticket
        for attempt in range(1, TAKE_ATTEMPTS + 1):
            with self._lock:
                granted, used = self._current(model, now)
                available = granted.of(plan).minus(used.of(plan))
            shared, version, shares = self.store.read_with_shares(model, granted.started_at)
            renewals = self._renewals.get((model, plan, granted.started_at), 0)
            wanted = top_up(available, ask, ceiling, calls=2 ** (renewals + 2))
            decision = pool.decide(ceiling, shared, plan, wanted, now, shares)
            if not decision.admitted:  # the slice does not fit: what the call lacks may
                wanted = ask.minus(available)
                decision = pool.decide(ceiling, shared, plan, wanted, now, shares)
            if not decision.admitted:
                raise exhausted(model, plan, decision)
            if self.store.take(model, granted.started_at, plan, wanted, version):
                with self._lock:
                    self._renewals = {k: n for k, n in self._renewals.items() if k[2] == granted.started_at}
                    self._renewals[(model, plan, granted.started_at)] = renewals + 1
                    self._seen[model] = shared.with_reserved(plan, wanted)
                    held = self._granted.get(model)
                    if held is not None and held.started_at == granted.started_at:
                        self._granted[model] = held.with_reserved(plan, wanted)
                ticket = self._from_lease(model, plan, ask, now)
                if ticket is not None:
                    return ticket
            # else another instance renewed first (or this one's threads used the renewal): read again
            RETRY.wait(attempt)
        # Other instances renewed between each read and write: the pool is busy, not necessarily full
        raise exhausted(model, plan, pool.Decision(False, retry_after=1),
                        "The shared model capacity is busy renewing. Retry after 1 s.")

    def _release(self, model: str, now: float) -> None:
        with self._lock:
            granted, used = self._current(model, now)
            unused = {plan: granted.of(plan).minus(used.of(plan)) for plan in granted.by_plan}
            self._granted[model] = used
        for plan, amounts in unused.items():
            if any(amounts.get(d) for d in DIMENSIONS):
                try:
                    self.store.give_back(model, granted.started_at, plan, amounts)
                except Exception as error:  # noqa: BLE001 - kept counted: the pool only refuses earlier
                    log.warning("pool lease not given back", extra={"fields": {"model": model,
                                                                               "error": type(error).__name__}})

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
