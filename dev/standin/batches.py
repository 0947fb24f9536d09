"""The stand-in's Message Batches API (`/v1/messages/batches*`), with Anthropic's shapes.

A batch is `in_progress` for `STANDIN_BATCH_SECONDS` (default 2, read at each creation; not an
`ANTHROPIC_` name, which dev/stack/local_stack.py keeps from the processes it starts),
then `ended`, its requests answered as `/v1/messages` answers them, each result with its usage. A
request that fails validation, or whose last user turn holds `[[standin:500]]` (or 429 or 529), is
an `errored` result. Cancelling makes it `canceling`, then `ended` after the same time, every request
`canceled`. Batches belong to the key that created them (like a workspace): another key gets a 404.
Results are served at `results_url`, on the host the request came to.
"""
from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Callable, Dict, List, Optional

BATCH_SECONDS_ENV = "STANDIN_BATCH_SECONDS"
DEFAULT_BATCH_SECONDS = 2.0
KINDS = ("succeeded", "errored", "canceled", "expired")


def _iso(epoch: Optional[float]) -> Optional[str]:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


class Batch:
    def __init__(self, batch_id: str, owner: str, requests: List[dict], seconds: float) -> None:
        self.id, self.owner, self.requests = batch_id, owner, requests
        self.created = time.time()
        self.ends = self.created + seconds
        self.seconds = seconds
        self.cancel_initiated: Optional[float] = None
        self.ended: Optional[float] = None
        self.results: Optional[List[dict]] = None

    def view(self, base_url: str) -> dict:
        counts = {"processing": 0 if self.results is not None else len(self.requests),
                  **{kind: 0 for kind in KINDS}}
        for line in self.results or []:
            counts[line["result"]["type"]] += 1
        status = "ended" if self.results is not None else "canceling" if self.cancel_initiated else "in_progress"
        return {"id": self.id, "type": "message_batch", "processing_status": status, "request_counts": counts,
                "ended_at": _iso(self.ended), "created_at": _iso(self.created),
                "expires_at": _iso(self.created + timedelta(hours=24).total_seconds()),
                "cancel_initiated_at": _iso(self.cancel_initiated), "archived_at": None,
                "results_url": f"{base_url}/v1/messages/batches/{self.id}/results" if self.results is not None
                else None}


class BatchStore:
    """Every batch of the stand-in, behind one lock; a batch ends when it is next looked at after its time."""

    def __init__(self, answer: Callable[[dict], dict]) -> None:
        self._answer = answer  # a request's params -> its result ({"type": "succeeded", "message": ...} or errored)
        self._lock = threading.Lock()
        self._batches: Dict[str, Batch] = {}
        self._sequence = 0

    def create(self, owner: str, requests: List[dict]) -> Batch:
        seconds = float(os.environ.get(BATCH_SECONDS_ENV, DEFAULT_BATCH_SECONDS))
        with self._lock:
            self._sequence += 1
            batch = Batch(f"msgbatch_standin_{self._sequence:06d}{int(time.time() * 1000):x}", owner, requests,
                          seconds)
            self._batches[batch.id] = batch
            return batch

    def get(self, owner: str, batch_id: str) -> Optional[Batch]:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None or batch.owner != owner:
                return None
            if batch.results is None and time.time() >= batch.ends:
                self._end(batch)
            return batch

    def _end(self, batch: Batch) -> None:
        batch.ended = time.time()
        if batch.cancel_initiated is not None:
            batch.results = [{"custom_id": r["custom_id"], "result": {"type": "canceled"}} for r in batch.requests]
        else:
            batch.results = [{"custom_id": r["custom_id"], "result": self._answer(r["params"])}
                             for r in batch.requests]

    def cancel(self, owner: str, batch_id: str) -> Optional[Batch]:
        batch = self.get(owner, batch_id)
        with self._lock:
            if batch is not None and batch.results is None and batch.cancel_initiated is None:
                batch.cancel_initiated = time.time()
                batch.ends = batch.cancel_initiated + batch.seconds
            return batch

    def delete(self, owner: str, batch_id: str) -> Optional[Batch]:
        batch = self.get(owner, batch_id)
        with self._lock:
            if batch is not None and batch.results is not None:
                self._batches.pop(batch_id, None)
            return batch

    def listing(self, owner: str) -> List[Batch]:
        with self._lock:
            ids = [b.id for b in self._batches.values() if b.owner == owner]
        return [b for b in (self.get(owner, i) for i in reversed(ids)) if b is not None]
