"""Measuring DynamoDB traffic through botocore's event hooks (for tests and the benchmark).

`DynamoProbe` counts API calls by operation and the wall time spent inside
them, on the one client all of Tessera's models share.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any


STREAM_THREAD = "usage-stream"


class DynamoProbe:
    """`this_thread=True` counts only the calls of the thread that entered it (not, say, the usage
    stream's consumer running on another thread of the same process)."""

    def __init__(self, this_thread: bool = False) -> None:
        self._thread = threading.get_ident() if this_thread else None
        self.calls: Counter = Counter()
        self.seconds = 0.0
        self._started = threading.local()
        self._lock = threading.Lock()
        self._client: Any = None

    def counted(self) -> bool:
        """Calls of the usage stream's consumer (dev/stack/stream_worker.py's thread) belong to no request."""
        if threading.current_thread().name == STREAM_THREAD:
            return False
        return self._thread is None or threading.get_ident() == self._thread

    def _before(self, model: Any = None, **kwargs: Any) -> None:
        if not self.counted():
            return
        self._started.at = time.perf_counter()
        with self._lock:
            self.calls[model.name] += 1

    def _after(self, **kwargs: Any) -> None:
        started = getattr(self._started, "at", None)
        if started is not None:
            with self._lock:
                self.seconds += time.perf_counter() - started
            self._started.at = None

    def __enter__(self) -> "DynamoProbe":
        from chalicelib.models import table_connection

        self._client = table_connection().connection.client
        self._client.meta.events.register("before-call.dynamodb", self._before)
        self._client.meta.events.register("after-call.dynamodb", self._after)
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.meta.events.unregister("before-call.dynamodb", self._before)
        self._client.meta.events.unregister("after-call.dynamodb", self._after)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.seconds = 0.0
