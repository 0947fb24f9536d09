"""Transactions DynamoDB cancels for a conflicting transaction are retried; other failures are not."""
import pytest
from pynamodb.exceptions import CancellationReason, TransactWriteError, VerboseClientError

from chalicelib.store import conflicted, retry_conflicts


def cancelled(*codes):
    reasons = [CancellationReason(code=c) if c else None for c in codes]
    cause = VerboseClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}},
                               "TransactWriteItems", cancellation_reasons=reasons)
    return TransactWriteError("cancelled", cause=cause)


class Flaky:
    def __init__(self, *failures):
        self.failures = list(failures)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "written"


def test_a_conflict_is_retried_until_the_write_goes_through():
    write = Flaky(cancelled("TransactionConflict", None), cancelled(None, "TransactionConflict"))
    assert retry_conflicts(write, sleep=lambda s: None) == "written"
    assert write.calls == 3


def test_a_failed_condition_is_not_retried():
    write = Flaky(cancelled("ConditionalCheckFailed", "TransactionConflict"))
    with pytest.raises(TransactWriteError):
        retry_conflicts(write, sleep=lambda s: None)
    assert write.calls == 1


def test_retries_are_bounded():
    write = Flaky(*[cancelled("TransactionConflict")] * 10)
    with pytest.raises(TransactWriteError) as caught:
        retry_conflicts(write, attempts=4, sleep=lambda s: None)
    assert conflicted(caught.value) and write.calls == 4
