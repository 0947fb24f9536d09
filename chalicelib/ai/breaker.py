"""A circuit breaker per model on the Anthropic route of pool calls, shared by every warm instance.

    closed     pool calls go to Anthropic (with one retry), then to Bedrock (chalicelib/ai/failover.py)
    open       pool calls go straight to Bedrock, for `open_seconds` (30 s, doubling after each failed
               probe up to 300 s)
    half-open  once `open_until` has passed: each instance lets one pool call at a time, at most one
               per PROBE_SECONDS, try Anthropic first (a probe); a success closes the breaker, a failure
               opens it again for twice as long; the other calls keep going to Bedrock

An instance opens the breaker when it has seen FAILURES_TO_OPEN retryable upstream failures (529,
5xx, a timeout before the first byte) of a model's pool calls within FAILURE_WINDOW_SECONDS with no
success between them. The state is one small item per model in the table (pk `UPSTREAM`, sk
`BREAKER#<model>`), written only when it changes (a conditional put on its version, so of two
instances deciding at once one write wins and the other reads it) and read at most once per
CACHE_SECONDS per model per instance. Bound: every warm instance routes by a state at most
CACHE_SECONDS (2 s) plus one read old; the usual request reads nothing (the state is cached), and an
instance pays one GetItem per model every 2 s only while it has traffic for that model.

The decisions are pure functions of the state as read and the clock; `Breakers` is the thin shell.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from chalicelib.logs import get_logger

log = get_logger("breaker")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
FAILURES_TO_OPEN = 5
FAILURE_WINDOW_SECONDS = 30.0
OPEN_SECONDS = 30
MAX_OPEN_SECONDS = 300
PROBE_SECONDS = 5.0
CACHE_SECONDS = 2.0

# Where a pool call goes first.
ANTHROPIC_FIRST, PROBE, BEDROCK_FIRST = "anthropic", "probe", "bedrock"


@dataclass(frozen=True)
class BreakerState:
    status: str = CLOSED  # as stored: closed or open (half-open is open with its time passed)
    open_until: float = 0.0  # epoch seconds
    open_seconds: int = 0  # how long the last opening lasted
    version: int = 0

    def phase(self, now: float) -> str:
        if self.status != OPEN:
            return CLOSED
        return OPEN if now < self.open_until else HALF_OPEN


def route(state: BreakerState, now: float, probing: bool, last_probe_at: float) -> str:
    """Where this instance sends a pool call first: Anthropic, Anthropic as a probe, or Bedrock."""
    phase = state.phase(now)
    if phase == CLOSED:
        return ANTHROPIC_FIRST
    if phase == HALF_OPEN and not probing and now - last_probe_at >= PROBE_SECONDS:
        return PROBE
    return BEDROCK_FIRST


def recent_failures(failures: List[float], now: float) -> List[float]:
    return [at for at in failures if now - at < FAILURE_WINDOW_SECONDS]


def after_failure(state: BreakerState, failures: List[float], now: float, probe: bool) -> Optional[BreakerState]:
    """The state to write after a failed Anthropic attempt, or None to write nothing. `failures` are
    this instance's recent ones, this one included."""
    if probe:
        longer = min(MAX_OPEN_SECONDS, max(OPEN_SECONDS, state.open_seconds * 2))
        return BreakerState(OPEN, now + longer, longer, state.version + 1)
    if state.phase(now) == CLOSED and len(recent_failures(failures, now)) >= FAILURES_TO_OPEN:
        return BreakerState(OPEN, now + OPEN_SECONDS, OPEN_SECONDS, state.version + 1)
    return None


def after_success(state: BreakerState) -> Optional[BreakerState]:
    """An Anthropic attempt succeeded: close the breaker if it is not closed."""
    if state.status == CLOSED:
        return None
    return BreakerState(CLOSED, 0.0, 0, state.version + 1)


class BreakerStore:
    """The breaker items in the table, through the low-level client (one GetItem, one conditional PutItem)."""

    PK = "UPSTREAM"

    def __init__(self, partition: str = PK) -> None:
        self.partition = partition  # another partition: breakers of their own (tests that open them)

    def _key(self, model: str) -> dict:
        return {"pk": {"S": self.partition}, "sk": {"S": f"BREAKER#{model}"}}

    @staticmethod
    def _table() -> Tuple[Any, str]:
        """The table's one botocore client (chalicelib/models.py table_connection) and the table's name."""
        from chalicelib.models import table_connection

        connection = table_connection()
        return connection.connection.client, connection.table_name

    def read(self, model: str) -> BreakerState:
        dynamodb, table = self._table()
        item = dynamodb.get_item(TableName=table, Key=self._key(model), ConsistentRead=True).get("Item")
        if not item:
            return BreakerState()
        return BreakerState(item["status"]["S"], float(item["open_until"]["N"]), int(item["open_seconds"]["N"]),
                            int(item["version"]["N"]))

    def write(self, model: str, new: BreakerState) -> bool:
        """Write `new` if the stored version is still the one it follows; False when another instance wrote
        first (its state then stands)."""
        dynamodb, table = self._table()
        item = {**self._key(model), "status": {"S": new.status}, "open_until": {"N": repr(new.open_until)},
                "open_seconds": {"N": str(new.open_seconds)}, "version": {"N": str(new.version)},
                "updated_at": {"N": repr(time.time())}}
        try:
            dynamodb.put_item(TableName=table, Item=item,
                              ConditionExpression="attribute_not_exists(pk) OR version = :seen",
                              ExpressionAttributeValues={":seen": {"N": str(new.version - 1)}})
        except dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def clear(self, model: str) -> None:
        """Forget a model's breaker (operators and tests: it reads as closed)."""
        dynamodb, table = self._table()
        dynamodb.delete_item(TableName=table, Key=self._key(model))


class Breakers:
    """This instance's view of every model's breaker: the cached state, its own recent failures and probes."""

    def __init__(self, store: Optional[BreakerStore] = None, clock: Callable[[], float] = time.time,
                 cache_seconds: float = CACHE_SECONDS) -> None:
        self.store = store or BreakerStore()
        self._clock, self._cache_seconds = clock, cache_seconds
        self._states: Dict[str, Tuple[float, BreakerState]] = {}
        self._failures: Dict[str, List[float]] = {}
        self._probes: Dict[str, Tuple[bool, float]] = {}  # model -> (probe in flight, when it started)
        self._lock = threading.Lock()

    def state(self, model: str) -> BreakerState:
        now = time.monotonic()
        with self._lock:
            hit = self._states.get(model)
        if hit and hit[0] > now:
            return hit[1]
        try:
            state = self.store.read(model)
        except Exception as error:  # the table unreachable: keep the last state seen rather than fail calls
            log.warning("breaker state not read", extra={"fields": {"model": model, "error": type(error).__name__}})
            state = hit[1] if hit else BreakerState()
        self._keep(model, state)
        return state

    def forget(self, model: Optional[str] = None) -> None:
        """Drop this instance's view of a model's breaker (of every model's, given none): cached state,
        failures, probe."""
        with self._lock:
            for kept in (self._states, self._failures, self._probes):
                if model is None:
                    kept.clear()
                else:
                    kept.pop(model, None)

    def _keep(self, model: str, state: BreakerState) -> None:
        with self._lock:
            self._states[model] = (time.monotonic() + self._cache_seconds, state)

    def route(self, model: str) -> Tuple[str, str]:
        """Where a pool call of `model` goes first, and the breaker's phase; a PROBE is this instance's one
        probe until it ends."""
        state = self.state(model)
        now = self._clock()
        with self._lock:
            probing, last = self._probes.get(model, (False, 0.0))
            first = route(state, now, probing, last)
            if first == PROBE:
                self._probes[model] = (True, now)
        return first, state.phase(now)

    def failed(self, model: str, probe: bool) -> None:
        now = self._clock()
        with self._lock:
            failures = recent_failures(self._failures.get(model, []), now) + [now]
            self._failures[model] = failures
            if probe:
                self._probes[model] = (False, self._probes.get(model, (False, now))[1])
            cached = self._states.get(model)
        state = cached[1] if cached else BreakerState()
        self._change(model, state, after_failure(state, failures, now, probe))

    def succeeded(self, model: str, probe: bool) -> None:
        with self._lock:
            self._failures.pop(model, None)
            if probe:
                self._probes[model] = (False, self._probes.get(model, (False, 0.0))[1])
            cached = self._states.get(model)
        if cached is not None:
            self._change(model, cached[1], after_success(cached[1]))

    def _change(self, model: str, old: BreakerState, new: Optional[BreakerState]) -> None:
        if new is None:
            return
        try:
            written = self.store.write(model, new)
        except Exception as error:
            log.warning("breaker state not written", extra={"fields": {"model": model, "error": type(error).__name__}})
            written = False
        if written:
            log.warning("breaker changed", extra={"fields": {"model": model, "from": old.status, "to": new.status,
                                                             "open_seconds": new.open_seconds}})
            self._keep(model, new)
        else:  # another instance wrote first: read what it wrote next time
            with self._lock:
                self._states.pop(model, None)
                self._failures.pop(model, None)
