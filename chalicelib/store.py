"""Store helpers the services share: reads across item types, transactions and why they failed,
updates of items that must exist, and page cursors that stay inside the caller's partition."""
from __future__ import annotations

import functools
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, TypeVar

from pynamodb.models import Model

from chalicelib.models import _Item

ItemRef = Tuple[Type[Model], str, str]
T = TypeVar("T")


BATCH_GET_KEYS = 100  # DynamoDB's most keys per BatchGetItem


def get_items(refs: Sequence[ItemRef], consistent: bool = False) -> List[Optional[Model]]:
    """Fetch items of different models in one round trip (more only past 100 keys, or if DynamoDB defers keys)."""
    wanted = {(pk, sk): model for model, pk, sk in refs}
    connection = _Item._get_connection()
    keys = [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in wanted]
    found = {}
    for raw in batch_get(connection.connection.client, connection.table_name, keys, consistent):
        key = (raw["pk"]["S"], raw["sk"]["S"])
        found[key] = wanted[key].from_raw_data(raw)
    return [found.get((pk, sk)) for _, pk, sk in refs]


def batch_get(client: Any, table: str, keys: Sequence[Dict[str, Any]], consistent: bool = False,
              policy: Optional["RetryPolicy"] = None) -> List[dict]:
    """The items of `keys` that exist, as DynamoDB's attribute maps, asked 100 keys at a time. Keys DynamoDB
    leaves unprocessed (a partition past its read capacity: throttling) are asked again after THROTTLED's pause
    (or `policy`'s); once its attempts are spent with keys still left, RuntimeError: an answer with items
    missing would read as items absent."""
    policy = policy or THROTTLED
    found: List[dict] = []
    pending, deferred = list(keys), 0
    while pending:
        batch, pending = pending[:BATCH_GET_KEYS], pending[BATCH_GET_KEYS:]
        request = {"Keys": batch, **({"ConsistentRead": True} if consistent else {})}
        answer = client.batch_get_item(RequestItems={table: request})
        found += answer.get("Responses", {}).get(table, [])
        unprocessed = answer.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
        if unprocessed:
            deferred += 1
            if deferred >= policy.attempts:
                raise RuntimeError(f"DynamoDB left {len(unprocessed)} keys unprocessed {deferred} times")
            policy.wait(deferred)
            pending += unprocessed
    return found


def transaction(client_request_token: Optional[str] = None):
    """A TransactWrite on the shared table connection (one round trip on commit)."""
    from pynamodb.transactions import TransactWrite

    return TransactWrite(connection=_Item._get_connection().connection, client_request_token=client_request_token)


# --- the one retry policy: writes DynamoDB refused because another was writing the same item ---------------
#
# botocore retries what it knows (throttling, 5xx, TransactionInProgressException), configured once on the
# client (chalicelib/models.py, chalicelib/aws.py). It does not retry a transaction cancelled for
# TransactionConflict, nor a single write refused with TransactionConflictException: those pass through to
# us, and every loop that retries a write takes its attempts and pauses from RETRY. Its backoff is botocore's
# own for DynamoDB (standard mode: full jitter over 25 ms doubling per attempt), capped at 200 ms because a
# conflicting transaction holds an item for one round trip, not for seconds (docs/data-model.md, "Retries").
# A failed condition is an outcome, never retried as such: a loop that re-reads and decides again says so.


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int  # in all, the first one included
    base_seconds: float
    cap_seconds: float

    def pause(self, attempt: int, draw: Callable[[], float] = random.random) -> float:
        """The wait after failed attempt number `attempt` (from 1): draw() x min(cap, base x 2^(attempt-1))."""
        return draw() * min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1))

    def wait(self, attempt: int, sleep: Callable[[float], None] = time.sleep) -> None:
        """Pause after failed attempt `attempt`; none after the last, which is the caller's to give up on."""
        if attempt < self.attempts:
            sleep(self.pause(attempt))


RETRY = RetryPolicy(attempts=6, base_seconds=0.025, cap_seconds=0.2)
# The same backoff for work DynamoDB throttled rather than raced: items a BatchWriteItem left unprocessed (a
# partition past its 1,000 writes a second), keys a BatchGetItem left unprocessed (`batch_get`) and a
# budget-job segment that failed whole. Throttling lasts as long
# as the load does, not one round trip: 50 ms doubling to a 5 s cap, 8 attempts, at most 6.35 s of pauses.
THROTTLED = RetryPolicy(attempts=8, base_seconds=0.05, cap_seconds=5.0)


def conflicted(error: Exception) -> bool:
    """Whether DynamoDB refused a write only because another one was writing the same item at that moment:
    a transaction cancelled for TransactionConflict alone, a single write refused with
    TransactionConflictException, or TransactionInProgressException; raised by PynamoDB or by botocore."""
    response = getattr(error, "response", None) or {}
    code = getattr(error, "cause_response_code", None) or response.get("Error", {}).get("Code")
    if code in ("TransactionConflictException", "TransactionInProgressException"):
        return True
    reasons = getattr(error, "cancellation_reasons", None)  # PynamoDB's; botocore's are in the response
    codes = ({r.code for r in reasons if r is not None} if reasons else
             {r.get("Code") for r in response.get("CancellationReasons") or []}) - {None, "None"}
    return bool(codes) and codes <= {"TransactionConflict"}


def retry_conflicts(write: Callable[[], T], sleep: Callable[[float], None] = time.sleep) -> T:
    """Run an idempotent write, again after RETRY's pause while DynamoDB refuses it for a conflicting write
    (`conflicted`), at most RETRY.attempts times in all. Other failures pass through at once."""
    for attempt in range(1, RETRY.attempts + 1):
        try:
            return write()
        except Exception as error:
            if attempt == RETRY.attempts or not conflicted(error):
                raise
            sleep(RETRY.pause(attempt))
    raise AssertionError("unreachable")


class UpdateText:
    """One UpdateItem's expressions written as text, with a placeholder per name and per number.

    For the hottest write of a request (admission's): building it from PynamoDB update actions and
    conditions took about 0.4 ms of the 2.7 ms a warm AI request spent outside DynamoDB calls
    (docs/performance.md, section 8); every other update uses PynamoDB's actions.
    `name("counters", key)` gives a path, `number(n)` a value, and `add`, `remove` and `require`
    collect the SET, REMOVE and condition clauses."""

    def __init__(self) -> None:
        self.names: Dict[str, str] = {}
        self.values: Dict[str, dict] = {}
        self._placeholders: Dict[str, str] = {}
        self._numbers: Dict[int, str] = {}
        self._sets: List[str] = []
        self._removes: List[str] = []
        self._conditions: List[str] = []

    def name(self, *path: str) -> str:
        parts = []
        for part in path:
            placeholder = self._placeholders.get(part)
            if placeholder is None:
                placeholder = self._placeholders[part] = f"#{len(self._placeholders)}"
                self.names[placeholder] = part
            parts.append(placeholder)
        return ".".join(parts)

    def number(self, value: int) -> str:
        placeholder = self._numbers.get(value)
        if placeholder is None:
            placeholder = self._numbers[value] = f":{len(self._numbers)}"
            self.values[placeholder] = {"N": str(int(value))}
        return placeholder

    def add(self, path: str, amount: int) -> None:
        """path = path + amount, counting a missing path as 0."""
        self._sets.append(f"{path} = if_not_exists({path}, {self.number(0)}) + {self.number(amount)}")

    def remove(self, path: str) -> None:
        self._removes.append(path)

    def require(self, condition: str) -> None:
        self._conditions.append(f"({condition})")

    def request(self) -> dict:
        update = " ".join(f"{verb} {', '.join(clauses)}" for verb, clauses in (
            ("SET", self._sets), ("REMOVE", self._removes)) if clauses)
        request = {"UpdateExpression": update, "ExpressionAttributeNames": self.names}
        if self.values:
            request["ExpressionAttributeValues"] = self.values
        if self._conditions:
            request["ConditionExpression"] = " AND ".join(self._conditions)
        return request


def update_or_explain(model: Type[Model], pk: str, sk: str, update: UpdateText) -> Tuple[bool, Optional[dict]]:
    """One conditional UpdateItem that returns the item either way: (True, the item after the update) or
    (False, the item as it was when the condition failed; None if it does not exist). The failure needs
    no second read to say why (ReturnValuesOnConditionCheckFailure). It goes straight to the botocore
    client of the table's one connection; other failures raise botocore's ClientError."""
    from botocore.exceptions import ClientError

    table = model._get_connection()
    try:
        answer = table.connection.client.update_item(
            TableName=table.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}}, **update.request(),
            ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        return False, error.response.get("Item")
    return True, answer.get("Attributes")


_MISSING = object()


@functools.lru_cache(maxsize=None)
def _schema(kind: Type[Model]) -> tuple:
    """Per attribute of a model: its name, stored name, type, serialiser, default and whether it may be null."""
    return tuple((name, a.attr_name, a.attr_type, a.serialize, a.default, a.null)
                 for name, a in kind.get_attributes().items())


def raw_item(kind: Type[Model], /, **values: Any) -> dict:
    """An item as DynamoDB JSON, each value serialised by its model attribute and defaults applied as the
    model applies them (the model stays the one schema), without building a model instance: for the
    usage event every request writes. A required attribute left out raises, as saving the model would."""
    item = {}
    for name, stored, kind_code, serialize, default, nullable in _schema(kind):
        value = values.pop(name, _MISSING)
        if value is _MISSING:
            value = default() if callable(default) else default
        if value is None:
            if not nullable:
                raise ValueError(f"{kind.__name__}.{name} cannot be None")
            continue
        # A NumberAttribute writes json.dumps(value), which for an int is str(value).
        item[stored] = {kind_code: str(value) if kind_code == "N" and type(value) is int else serialize(value)}
    if values:
        raise TypeError(f"{kind.__name__} has no attribute {sorted(values)[0]}")
    return item


def put_new(model: Type[Model], item: dict) -> bool:
    """PutItem only if no item has the key: False if one has. Other failures raise PutError, as a model's
    save does."""
    from botocore.exceptions import BotoCoreError, ClientError
    from pynamodb.exceptions import PutError

    table = model._get_connection()
    try:
        table.connection.client.put_item(TableName=table.table_name, Item=item,
                                         ConditionExpression="attribute_not_exists(#pk)",
                                         ExpressionAttributeNames={"#pk": "pk"})
    except (BotoCoreError, ClientError) as error:
        if isinstance(error, ClientError) and error.response.get("Error", {}).get(
                "Code") == "ConditionalCheckFailedException":
            return False
        raise PutError(f"Failed to put item: {error}", error) from error
    return True


def cancelled_because(error, index: int) -> bool:
    """Whether the transaction item at `index` failed its condition."""
    reasons = error.cancellation_reasons or []
    return index < len(reasons) and reasons[index] is not None and reasons[index].code == "ConditionalCheckFailed"


def update_existing(item: Model, actions: list, what: str) -> Model:
    """Update an item only if it exists; a missing one (or another tenant's) is a 404."""
    from pynamodb.exceptions import UpdateError

    from chalicelib.errors import NotFound

    try:
        item.update(actions=actions, condition=type(item).pk.exists())
    except UpdateError as error:
        if condition_failed(error):
            raise NotFound(f"{what} not found.") from None
        raise
    return item


def condition_failed(error: Exception) -> bool:
    """Whether a PynamoDB put/update/delete failed only because its condition did not hold."""
    return getattr(error, "cause_response_code", None) == "ConditionalCheckFailedException"


def encode_cursor(last_evaluated_key: Optional[dict]) -> Optional[str]:
    if not last_evaluated_key:
        return None
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(last_evaluated_key, sort_keys=True).encode()).decode().rstrip("=")


def decode_cursor(cursor: Optional[str], partition: str, attribute: str = "pk",
                  sk_prefix: str = "") -> Optional[dict]:
    """A page cursor back into DynamoDB's start key: string keys only, with a sort key of the listed kind,
    pointing into the caller's own partition."""
    if not cursor:
        return None
    import base64
    import binascii
    import json

    from chalicelib.errors import BadRequest

    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise BadRequest("The cursor is not valid.", code="invalid_cursor") from None
    strings = isinstance(key, dict) and {"pk", "sk", attribute} <= set(key) and all(
        isinstance(v, dict) and list(v) == ["S"] and isinstance(v["S"], str) for v in key.values())
    if not strings or key[attribute]["S"] != partition or not key["sk"]["S"].startswith(sk_prefix):
        raise BadRequest("The cursor is not valid.", code="invalid_cursor")
    return key
