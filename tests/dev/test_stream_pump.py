"""The tests' usage-stream pump (dev/stack/stream_worker.py): an event the fold cannot read stays in the stream and
fails every drain, as Lambda retries a failed batch, until the pump is told to skip what it has not folded
(the mutation runner does, between mutants)."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.models import UsageEvent
from conftest import settle_usage

pytestmark = pytest.mark.usefixtures("own_table")  # the unreadable event must stay in a table of its own
MOMENT = datetime(2026, 11, 17, 9, 41, 23, tzinfo=timezone.utc)


def unreadable_event():
    # No sweep bucket and no period: what a broken writer (a mutant, say) could leave; the fold needs both.
    UsageEvent("TENANT#ten_unreadable", UsageEvent.sk_for("req_unreadable"), request_id="req_unreadable",
               principal_id="usr_x", principal_type="user", feature="basic_chat", model="claude-sonnet-4-6",
               status="ok", key_source="platform", created_at=MOMENT, expires_at=MOMENT + timedelta(days=1)).save()


def test_an_unreadable_event_fails_every_drain_until_the_pump_skips_it():
    settle_usage()
    unreadable_event()
    for _ in range(2):  # read again, not lost
        with pytest.raises(TypeError):
            settle_usage()
    import conftest

    conftest._pump.skip_unread()
    settle_usage()


def test_a_table_of_its_own_points_back_at_the_table_before_even_when_its_last_fold_fails(own_table):
    import os

    from conftest import table_of_its_own

    with pytest.raises(TypeError):
        with table_of_its_own() as inner:
            assert os.environ["TESSERA_TABLE_NAME"] == inner
            unreadable_event()
    assert os.environ["TESSERA_TABLE_NAME"] == own_table
    settle_usage()  # the unreadable event stayed in the dropped table's stream, which is no longer read


def test_the_stream_is_described_once_in_its_refresh_time_at_most_and_at_once_for_a_new_table():
    """Every poll used to describe the table and its stream again (three calls where one reads the records);
    at the pump's rate that alone kept a third of a core busy. (Fresh tables: this pump reads from the
    stream's start, and the module's own table holds an event no fold can read.)"""
    from dev.stack import stream_worker
    from conftest import table_of_its_own

    now = [1000.0]
    pump = stream_worker.StreamPump(clock=lambda: now[0])
    described = []
    pump.dynamodb.meta.events.register("before-parameter-build.dynamodb.DescribeTable",
                                       lambda params, **_: described.append(params["TableName"]))
    with table_of_its_own() as first:
        for _ in range(3):
            pump.poll_once()
        assert described == [first]
        with table_of_its_own() as second:
            pump.poll_once()
            assert described == [first, second]  # a new table's stream is read from the first poll
        pump.poll_once()
        assert described == [first, second, first]
        now[0] += stream_worker.SHARD_REFRESH_SECONDS - 0.001
        pump.poll_once()
        assert described == [first, second, first]
        now[0] += 0.001  # new shards are found within the refresh time
        pump.poll_once()
        assert described == [first, second, first, first]


def test_the_pump_polls_at_lambdas_rate_and_once_a_second_after_a_quiet_spell():
    from dev.stack.stream_worker import IDLE_AFTER_SECONDS, pause_after_empty_read

    assert pause_after_empty_read(0) == 0.25  # Lambda's documented 4 polls a second
    assert pause_after_empty_read(IDLE_AFTER_SECONDS - 0.01) == 0.25
    assert pause_after_empty_read(IDLE_AFTER_SECONDS) == pause_after_empty_read(3600) == 1.0


def test_a_running_pump_slows_to_the_idle_rate_once_the_stream_stays_empty():
    from dev.stack import stream_worker
    from conftest import table_of_its_own

    now = [0.0]  # the pump's clock moves only by the pauses it asks for
    pump = stream_worker.StreamPump(clock=lambda: now[0])
    pauses, done = [], threading.Event()

    def wait(seconds):
        pauses.append(seconds)
        now[0] += seconds
        if len(pauses) == 22:
            done.set()
            pump._stop.set()

    with table_of_its_own():
        pump.start(wait=wait)
        assert done.wait(60)
        pump.stop()
    assert pauses == [0.25] * 20 + [1.0, 1.0]  # Lambda's rate for five empty seconds, then once a second
