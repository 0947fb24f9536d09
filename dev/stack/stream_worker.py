"""The local stand-in for what Lambda does with the table's stream and the sweeper's schedule.

In AWS, an event source mapping reads the table's DynamoDB stream and invokes
`usage_aggregator` (app.py) with batches of records; EventBridge invokes
`reservation_sweeper` and `batch_sweep` every 10 minutes. Locally, `StreamPump` reads the same
stream from moto with the DynamoDB Streams API and hands the same records to
the same function (chalicelib.metering.aggregator.handle); `make run` runs it
as a process (`main`), the tests on a thread with `drain()` to wait until
every settled call is folded in. Same options for the endpoint as the app:
AWS_ENDPOINT_URL and the stage's TESSERA_TABLE_NAME.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]

BATCH = 1000  # the event source mapping's batch size in app.py
# Lambda polls each shard of a DynamoDB stream "at a base rate of 4 times per second" (AWS Lambda Developer
# Guide, "Using AWS Lambda with Amazon DynamoDB", Polling and batching streams). Polling faster bought
# nothing but CPU: at 20 polls a second an idle pump and its moto server used a third of a core.
POLL_SECONDS = 0.25
# Once the stream has been empty for IDLE_AFTER_SECONDS, the pump polls once a second until a record comes:
# a run of the suite keeps a dozen pumps (one per test process, one per local stack), mostly idle, and their
# empty reads were 22,000 GetRecords, with the describes below a sixth of moto's CPU. The first record after
# a quiet spell is folded within a second instead of a quarter; `drain()` does not wait for the loop.
IDLE_AFTER_SECONDS = 5.0
IDLE_POLL_SECONDS = 1.0
# The stream's shards are described again at most this often, and at once when the table changes or a read
# fails (real shards roll over every few hours; DescribeStream itself is limited to 10 calls a second).
SHARD_REFRESH_SECONDS = 10.0


def pause_after_empty_read(idle_for: float) -> float:
    """How long the pump waits after a read that found nothing, the stream having been empty `idle_for`
    seconds."""
    return POLL_SECONDS if idle_for < IDLE_AFTER_SECONDS else IDLE_POLL_SECONDS


class StreamPump:
    def __init__(self, endpoint: Optional[str] = None, table_name: Optional[str] = None,
                 region: Optional[str] = None, clock: Callable[[], float] = time.monotonic) -> None:
        import boto3

        from chalicelib.settings import get_settings

        self._table_name = table_name  # None: the table the app's settings name at each read
        options = {"region_name": region or get_settings().region}
        endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["endpoint_url"] = endpoint
        self.dynamodb = boto3.client("dynamodb", **options)
        self.streams = boto3.client("dynamodbstreams", **options)
        self.iterators: Dict[tuple, Optional[str]] = {}
        self._described: Optional[Tuple[str, str, float]] = None  # (table, stream ARN, when)
        self.lock = threading.Lock()
        self.folded = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._clock = clock

    @property
    def table_name(self) -> str:
        from chalicelib.settings import get_settings

        return self._table_name or get_settings().table_name

    def _refresh_shards(self, force: bool = False) -> str:
        """The current table's stream ARN, with an iterator for each of its shards (described again when the
        table changed, `force`, or SHARD_REFRESH_SECONDS after the last time)."""
        table, now = self.table_name, self._clock()
        if not force and self._described is not None and self._described[0] == table \
                and now - self._described[2] < SHARD_REFRESH_SECONDS:
            return self._described[1]
        arn = self.dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        for shard in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            if (arn, shard["ShardId"]) not in self.iterators:
                self.iterators[(arn, shard["ShardId"])] = self.streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        self._described = (table, arn, now)
        return arn

    def poll_once(self) -> int:
        """Read every shard of the current table's stream once and fold what it holds (the aggregator writes
        to the current table, so another table's records wait until it is current again; switch tables
        while holding `lock`). Returns the number of records read."""
        from chalicelib.metering import aggregator

        with self.lock:
            try:
                arn = self._refresh_shards()
                read = 0
                for shard, iterator in list(self.iterators.items()):
                    if iterator is None or shard[0] != arn:
                        continue
                    page = self.streams.get_records(ShardIterator=iterator, Limit=BATCH)
                    records = page.get("Records", [])
                    if records:
                        report = aggregator.handle(records)
                        self.folded += report.events
                    read += len(records)
                    self.iterators[shard] = page.get("NextShardIterator")
                return read
            except Exception:
                self._described = None  # the table may have been replaced: describe it again next time
                raise

    def skip_unread(self) -> None:
        """Leave every record of the current table's stream not yet folded unread for good (each shard's
        iterator moves to its end). Other tables' streams are not read while they are not current."""
        with self.lock:
            current = self._refresh_shards(force=True)
            for arn, shard in [key for key in self.iterators if key[0] == current]:
                self.iterators[(arn, shard)] = self.streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until the stream holds nothing unread (what the aggregator writes comes back once, as
        records it skips, so two empty reads in a row mean everything written so far is folded). A table
        deleted and made again under the same name has a new stream, found at the next describe (within
        SHARD_REFRESH_SECONDS): describing afresh on every drain would cost more moto time than the slower
        refresh saves, and no test makes a table again under its old name."""
        deadline = time.monotonic() + timeout
        empty = 0
        while empty < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("the usage stream did not drain")
            empty = empty + 1 if self.poll_once() == 0 else 0

    def start(self, wait: Optional[Callable[[float], object]] = None) -> "StreamPump":
        """Poll on a thread of its own until `stop()`; `wait(seconds)` is the pause between polls (the stop
        event's wait, which `stop()` cuts short)."""
        wait = wait or self._stop.wait

        def loop() -> None:
            empty_since: Optional[float] = None
            while not self._stop.is_set():
                try:
                    if self.poll_once():
                        empty_since = None
                        continue
                    now = self._clock()
                    empty_since = now if empty_since is None else empty_since
                    wait(pause_after_empty_read(now - empty_since))
                except Exception as error:  # a failed batch is read again, like Lambda's retry
                    print(f"stream worker: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
                    self._stop.wait(1.0)

        from chalicelib.metering import aggregator  # noqa: F401 (imported here, before the thread: a first import
        # racing another thread's through Powertools' circular imports can meet a half-initialised module)
        from dev.bench.probes import STREAM_THREAD

        self._thread = threading.Thread(target=loop, name=STREAM_THREAD, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def main() -> int:
    """`make run`'s worker: the stream consumer, and the sweepers (reservations, Message Batches) every
    SWEEP_SECONDS (60 locally)."""
    from chalicelib.jobs.batch_sweep import sweep_batches
    from chalicelib.metering import sweeper

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    pump = StreamPump().start()
    every = float(os.environ.get("TESSERA_SWEEP_SECONDS", "60"))
    while True:
        time.sleep(every)
        for name, sweep in (("sweeper", sweeper.sweep), ("batch sweep", sweep_batches)):
            try:
                sweep()
            except Exception as error:
                print(f"{name}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
    pump.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
