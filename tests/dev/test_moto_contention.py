"""dev/stack/moto_server.py's contention mode conflicts the way DynamoDB does, with real threads against a real server.

The server runs with latencies far above what any request costs here (read 100 ms, write 150 ms, a
transaction 1.5 s), so "two calls overlap" is a matter of starting them together, not of luck. Timing
is only asserted as a lower bound, or against a serial run many times slower.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Callable, List

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from dev.stack import local_stack as stack 

LATENCY_MS = {"read": 100, "write": 150, "transact": 1500}
TABLE = "contention"


def connect(endpoint: str):
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=stack.REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=64,
                                      read_timeout=30))


def start_server(**options):
    port = stack.free_port()
    process = stack.start_moto(port, **options)
    endpoint = f"http://127.0.0.1:{port}"
    connect(endpoint).create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    return process, endpoint


@pytest.fixture(scope="module")
def contended():
    process, endpoint = start_server(contention=True, latency_ms=LATENCY_MS)
    yield endpoint
    stack.terminate(process)


@pytest.fixture(scope="module")
def uncontended():
    process, endpoint = start_server(contention=False)
    yield endpoint
    stack.terminate(process)


def key(name: str, sk: str = "x") -> dict:
    return {"pk": {"S": f"ITEM#{name}"}, "sk": {"S": sk}}


def fresh() -> str:
    return uuid.uuid4().hex[:10]


def add(name: str, condition: bool = False) -> dict:
    update = {"TableName": TABLE, "Key": key(name), "UpdateExpression": "ADD n :one",
              "ExpressionAttributeValues": {":one": {"N": "1"}}}
    if condition:
        update["ConditionExpression"] = "attribute_not_exists(n) OR n < :cap"
        update["ExpressionAttributeValues"][":cap"] = {"N": "1000000"}
    return update


def counter(ddb, name: str):
    item = ddb.get_item(TableName=TABLE, Key=key(name), ConsistentRead=True).get("Item")
    return int(item["n"]["N"]) if item else None


def code(error: ClientError) -> str:
    return error.response["Error"]["Code"]


def reasons(error: ClientError) -> List[str]:
    return [r["Code"] for r in error.response["CancellationReasons"]]


def together(calls: List[Callable[[], object]]) -> List[object]:
    """Run the calls on threads released at the same instant; each result is its return value or error."""
    results: List[object] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = calls[index]()
        except Exception as error:  # collected and asserted on by the test
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def in_background(call: Callable[[], object]) -> Callable[[], object]:
    """Start `call` on a thread; the returned function waits for it and gives its result or raises its error."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()

    def wait() -> object:
        thread.join(timeout=120)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return wait


def hold(ddb, name: str) -> Callable[[], object]:
    """A transaction on `name` (and one private item) in flight; it holds `name` for the next ~1.2 s."""
    finished = in_background(lambda: ddb.transact_write_items(
        TransactItems=[{"Update": add(name)}, {"Update": add(fresh())}]))
    time.sleep(0.3)  # well past its arrival, well before its 1.5 s latency ends
    return finished


# --- transactions against transactions ----------------------------------------------------------

def test_two_overlapping_transactions_on_one_item_conflict_exactly_once(contended):
    ddb = connect(contended)
    shared, own = fresh(), [fresh(), fresh()]
    results = together([lambda o=o: ddb.transact_write_items(TransactItems=[{"Update": add(o)},
                                                                             {"Update": add(shared)}])
                        for o in own])
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1, results
    assert code(errors[0]) == "TransactionCanceledException"
    assert reasons(errors[0]) == ["None", "TransactionConflict"]
    assert errors[0].response["Error"]["Message"].endswith("[None, TransactionConflict]")
    assert counter(ddb, shared) == 1
    assert sorted(counter(ddb, o) or 0 for o in own) == [0, 1]  # the cancelled one wrote nothing


def test_many_transactions_on_one_item_only_the_first_commits(contended):
    ddb = connect(contended)
    shared, threads = fresh(), 16
    results = together([lambda: ddb.transact_write_items(TransactItems=[{"Update": add(shared)}])] * threads)
    conflicts = [r for r in results if isinstance(r, ClientError) and reasons(r) == ["TransactionConflict"]]
    committed = [r for r in results if isinstance(r, dict)]
    print(f"{threads} transactions on one item at once: {len(committed)} committed, {len(conflicts)} conflicted")
    assert len(committed) + len(conflicts) == threads, results
    assert len(committed) >= 1 and len(conflicts) >= threads // 2
    assert counter(ddb, shared) == len(committed)


def test_transactions_on_disjoint_items_never_conflict_and_hold_in_parallel(contended):
    ddb = connect(contended)
    names, threads = [fresh() for _ in range(8)], 8
    started = time.monotonic()
    results = together([lambda n=n: ddb.transact_write_items(TransactItems=[{"Update": add(n)},
                                                                             {"Update": add(n + "-b")}])
                        for n in names])
    elapsed = time.monotonic() - started
    print(f"{threads} disjoint transactions at once: {elapsed:.2f} s (one alone: 1.5 s)")
    assert all(isinstance(r, dict) for r in results), results
    assert [counter(ddb, n) for n in names] == [1] * threads
    # One at a time they would take 8 x 1.5 s = 12 s: their latencies overlap, outside moto's lock.
    assert 1.5 <= elapsed < 6


def test_a_cancelled_transaction_holds_none_of_its_items(contended):
    ddb = connect(contended)
    shared, bystander = fresh(), fresh()
    finished = hold(ddb, shared)
    cancelled = in_background(lambda: ddb.transact_write_items(
        TransactItems=[{"Update": add(bystander)}, {"Update": add(shared)}]))
    time.sleep(0.2)
    ddb.update_item(**add(bystander))  # while the cancelled one is still taking its latency
    with pytest.raises(ClientError) as refused:
        cancelled()
    assert reasons(refused.value) == ["None", "TransactionConflict"]
    finished()
    assert (counter(ddb, bystander), counter(ddb, shared)) == (1, 1)


# --- single-item calls against a transaction -----------------------------------------------------

def test_put_update_and_delete_on_a_held_item_fail_with_transaction_conflict(contended):
    ddb = connect(contended)
    shared = fresh()
    finished = hold(ddb, shared)
    writes = [lambda: ddb.put_item(TableName=TABLE, Item={**key(shared), "n": {"N": "100"}}),
              lambda: ddb.update_item(**add(shared)),
              lambda: ddb.delete_item(TableName=TABLE, Key=key(shared))]
    for write in writes:
        with pytest.raises(ClientError) as refused:
            write()
        assert code(refused.value) == "TransactionConflictException"
        assert refused.value.response["Error"]["Message"] == "Transaction is ongoing for the item"
    finished()
    assert counter(ddb, shared) == 1  # only the transaction's ADD landed
    ddb.update_item(**add(shared))  # and once it is done the item is free
    assert counter(ddb, shared) == 2


def test_reads_are_not_blocked_by_a_transaction_and_see_the_value_before_it(contended):
    ddb = connect(contended)
    shared = fresh()
    ddb.update_item(**add(shared))
    finished = hold(ddb, shared)
    assert counter(ddb, shared) == 1  # answered while the transaction still holds the item
    queried = ddb.query(TableName=TABLE, KeyConditionExpression="pk = :pk",
                        ExpressionAttributeValues={":pk": key(shared)["pk"]})
    assert [int(i["n"]["N"]) for i in queried["Items"]] == [1]
    finished()
    assert counter(ddb, shared) == 2


def test_transact_get_on_a_held_item_is_cancelled(contended):
    ddb = connect(contended)
    shared, other = fresh(), fresh()
    finished = hold(ddb, shared)
    with pytest.raises(ClientError) as cancelled:
        ddb.transact_get_items(TransactItems=[{"Get": {"TableName": TABLE, "Key": key(other)}},
                                              {"Get": {"TableName": TABLE, "Key": key(shared)}}])
    assert code(cancelled.value) == "TransactionCanceledException"
    assert reasons(cancelled.value) == ["None", "TransactionConflict"]
    finished()


def test_single_item_conditional_adds_on_one_item_never_conflict_and_count_exactly(contended):
    ddb = connect(contended)
    shared, threads, each = fresh(), 32, 5

    def adds() -> int:
        for _ in range(each):
            ddb.update_item(**add(shared, condition=True))
        return each

    started = time.monotonic()
    results = together([adds] * threads)
    elapsed = time.monotonic() - started
    print(f"{threads} threads x {each} conditional ADDs on one item: {elapsed:.2f} s, "
          f"{sum(isinstance(r, Exception) for r in results)} failed")
    assert results == [each] * threads
    assert counter(ddb, shared) == threads * each


# --- PynamoDB sees what the app's code expects -------------------------------------------------

def test_pynamodb_raises_transact_write_error_with_a_transaction_conflict_reason(contended):
    from pynamodb.attributes import NumberAttribute, UnicodeAttribute
    from pynamodb.connection import Connection
    from pynamodb.exceptions import TransactWriteError
    from pynamodb.models import Model
    from pynamodb.transactions import TransactWrite

    from chalicelib.store import conflicted

    class Counter(Model):
        class Meta:
            table_name = TABLE
            host = contended
            region = stack.REGION
            max_retry_attempts = 0

        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        n = NumberAttribute(null=True)

    connection = Connection(host=contended, region=stack.REGION, max_retry_attempts=0)
    shared = Counter(f"ITEM#{fresh()}", "x")

    def increment(own: str) -> None:
        with TransactWrite(connection=connection) as transaction:
            transaction.update(Counter(f"ITEM#{own}", "x"), actions=[Counter.n.add(1)])
            transaction.update(shared, actions=[Counter.n.add(1)])

    results = together([lambda: increment(fresh()), lambda: increment(fresh())])
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], TransactWriteError), results
    assert [r.code if r else None for r in errors[0].cancellation_reasons] == [None, "TransactionConflict"]
    assert conflicted(errors[0])  # what chalicelib.store retries
    shared.refresh(consistent_read=True)
    assert shared.n == 1


# --- latency -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, call", [
    ("read", lambda ddb, name: ddb.get_item(TableName=TABLE, Key=key(name))),
    ("read", lambda ddb, name: ddb.batch_get_item(RequestItems={TABLE: {"Keys": [key(name)]}})),
    ("write", lambda ddb, name: ddb.put_item(TableName=TABLE, Item={**key(name), "n": {"N": "1"}})),
    ("write", lambda ddb, name: ddb.update_item(**add(name))),
    ("transact", lambda ddb, name: ddb.transact_write_items(TransactItems=[{"Update": add(name)}])),
])
def test_each_call_takes_at_least_its_kinds_latency(contended, kind, call):
    ddb = connect(contended)
    name = fresh()
    started = time.monotonic()
    call(ddb, name)
    assert time.monotonic() - started >= LATENCY_MS[kind] / 1000


# --- the mode off (the default): moto as before ------------------------------------------------

def test_without_contention_mode_overlapping_transactions_never_conflict(uncontended):
    ddb = connect(uncontended)
    shared, threads, each = fresh(), 8, 10

    def transactions() -> int:
        for _ in range(each):
            ddb.transact_write_items(TransactItems=[{"Update": add(shared)}, {"Update": add(fresh())}])
        return each

    assert together([transactions] * threads) == [each] * threads
    assert counter(ddb, shared) == threads * each


def test_contention_mode_and_its_latency_come_from_the_environment():
    # The server's environment is handed over, not set in os.environ: chalice's test client swaps os.environ
    # for a copy during each request, and a variable set meanwhile would be lost with the copy.
    shell = {**os.environ, "TESSERA_DDB_CONTENTION": "1", "TESSERA_DDB_LATENCY_MS_TRANSACT": "800"}
    process, endpoint = start_server(environ=shell)  # neither on nor off: as `make run` starts it
    try:
        ddb = connect(endpoint)
        shared = fresh()
        started = time.monotonic()
        results = together([lambda: ddb.transact_write_items(TransactItems=[{"Update": add(shared)}])] * 2)
        assert time.monotonic() - started >= 0.8
        conflicts = [r for r in results if isinstance(r, ClientError) and reasons(r) == ["TransactionConflict"]]
        assert len(conflicts) == 1 and sum(isinstance(r, dict) for r in results) == 1, results
    finally:
        stack.terminate(process)


def test_latency_options_are_refused_without_contention_mode():
    with pytest.raises(RuntimeError, match="exited with code 2"):
        stack.start_moto(stack.free_port(), contention=False, latency_ms={"transact": 12})
