"""The one retry policy (chalicelib/store.py RETRY): which refusals it retries, how often, and how long it waits.

DynamoDB refuses a write for a conflicting one in three shapes, each raised by PynamoDB or by botocore: a
transaction cancelled for TransactionConflict, a single write refused with TransactionConflictException, and
TransactionInProgressException. A failed condition is an outcome and is never retried."""
import random

import pytest
from botocore.exceptions import ClientError
from pynamodb.exceptions import CancellationReason, TransactWriteError, UpdateError, VerboseClientError

from chalicelib.store import RETRY, RetryPolicy, conflicted, retry_conflicts


def cancelled(*codes):
    reasons = [CancellationReason(code=c) if c else None for c in codes]
    cause = VerboseClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}},
                               "TransactWriteItems", cancellation_reasons=reasons)
    return TransactWriteError("cancelled", cause=cause)


def botocore_cancelled(*codes):
    return ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                        "CancellationReasons": [{"Code": c} for c in codes]}, "TransactWriteItems")


def refused(code, operation="UpdateItem"):
    return ClientError({"Error": {"Code": code, "Message": "refused"}}, operation)


class Flaky:
    def __init__(self, *failures):
        self.failures = list(failures)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "written"


class Pauses(list):
    def __call__(self, seconds):
        self.append(seconds)


@pytest.mark.parametrize("error", [
    cancelled("TransactionConflict", None),
    cancelled("None", "TransactionConflict"),
    botocore_cancelled("None", "TransactionConflict"),
    refused("TransactionConflictException"),
    refused("TransactionInProgressException", "TransactWriteItems"),
    UpdateError("conflict", cause=VerboseClientError(
        {"Error": {"Code": "TransactionConflictException", "Message": "conflict"}}, "UpdateItem")),
])
def test_a_write_refused_for_a_conflicting_one_is_retryable(error):
    assert conflicted(error)


@pytest.mark.parametrize("error", [
    cancelled("ConditionalCheckFailed", "TransactionConflict"),
    botocore_cancelled("TransactionConflict", "ConditionalCheckFailed"),
    botocore_cancelled("None", "ValidationError"),
    refused("ConditionalCheckFailedException"),
    refused("ValidationException"),
    ValueError("not DynamoDB's"),
])
def test_a_failed_condition_or_any_other_refusal_is_not_retryable(error):
    assert not conflicted(error)


def test_a_conflict_is_retried_until_the_write_goes_through():
    write = Flaky(cancelled("TransactionConflict", None), botocore_cancelled("None", "TransactionConflict"))
    assert retry_conflicts(write, sleep=Pauses()) == "written"
    assert write.calls == 3


def test_a_failed_condition_is_not_retried():
    write = Flaky(cancelled("ConditionalCheckFailed", "TransactionConflict"))
    with pytest.raises(TransactWriteError):
        retry_conflicts(write, sleep=Pauses())
    assert write.calls == 1


def test_the_policy_makes_six_attempts_in_all_with_a_pause_between_each_two():
    write, pauses = Flaky(*[refused("TransactionConflictException")] * 10), Pauses()
    with pytest.raises(ClientError) as caught:
        retry_conflicts(write, sleep=pauses)
    assert conflicted(caught.value) and write.calls == RETRY.attempts == 6
    assert len(pauses) == 5
    assert all(0 <= pause < bound for pause, bound in zip(pauses, (0.025, 0.05, 0.1, 0.2, 0.2))), pauses


def test_each_pause_is_botocores_full_jitter_over_25_ms_doubling_capped_at_200_ms():
    assert RETRY == RetryPolicy(attempts=6, base_seconds=0.025, cap_seconds=0.2)
    highest = [RETRY.pause(attempt, draw=lambda: 1.0) for attempt in range(1, 7)]
    assert highest == [0.025, 0.05, 0.1, 0.2, 0.2, 0.2]
    assert [RETRY.pause(attempt, draw=lambda: 0.5) for attempt in (1, 2, 3)] == [0.0125, 0.025, 0.05]
    assert RETRY.pause(4, draw=lambda: 0.0) == 0.0


def test_pauses_are_spread_over_the_whole_interval_so_that_rivals_do_not_retry_in_step():
    draws = random.Random(7).random
    pauses = [RETRY.pause(3, draw=draws) for _ in range(2_000)]
    assert min(pauses) < 0.01 and max(pauses) > 0.09 and all(0 <= p < 0.1 for p in pauses)
    assert len(set(pauses)) == len(pauses)
    default = {RETRY.pause(1) for _ in range(50)}  # the process's own random draws
    assert len(default) == 50 and all(0 <= p < 0.025 for p in default)


def test_no_pause_follows_the_last_attempt():
    slept = []
    for attempt in range(1, RETRY.attempts + 1):
        RETRY.wait(attempt, sleep=slept.append)
    assert len(slept) == RETRY.attempts - 1 and all(0 <= pause < 0.2 for pause in slept)


def test_throttled_work_backs_off_for_seconds_not_milliseconds():
    from chalicelib.store import THROTTLED

    highest = [THROTTLED.pause(attempt, draw=lambda: 1.0) for attempt in range(1, THROTTLED.attempts)]
    assert highest == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2] and round(sum(highest), 9) == 6.35
