"""Anthropic's Message Batches API through the official SDK (`client.messages.batches`), as plain values.

It shares chalicelib/ai/client.py's cached clients and its mapping of SDK errors to domain errors, so
a batch call fails the way a message call does (a rejected own key, upstream rate limits, overload,
a request that may have reached upstream without an answer).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, Iterator, List, Optional, Tuple

from chalicelib.ai.client import ModelCall, ModelClient


@dataclass(frozen=True)
class UpstreamBatch:
    """What upstream says of a batch: its id, processing status, counts and times."""

    id: str
    processing_status: str
    request_counts: Dict[str, int]
    created_at: datetime
    expires_at: datetime
    ended_at: Optional[datetime]
    cancel_initiated_at: Optional[datetime]

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"

    @classmethod
    def of(cls, batch: Any) -> "UpstreamBatch":
        return cls(id=batch.id, processing_status=batch.processing_status,
                   request_counts=batch.request_counts.to_dict(mode="json"), created_at=batch.created_at,
                   expires_at=batch.expires_at, ended_at=batch.ended_at,
                   cancel_initiated_at=batch.cancel_initiated_at)


class BatchClient:
    """Create, retrieve, cancel, read the results of and delete upstream batches with a given key."""

    def __init__(self, model_client: ModelClient) -> None:
        self.model_client = model_client

    def _batches(self, api_key: str) -> Any:
        return self.model_client.sdk(api_key).messages.batches

    def create(self, requests: List[Tuple[str, ModelCall]], api_key: str, own_key: bool) -> UpstreamBatch:
        body = [{"custom_id": custom_id, "params": call.body()} for custom_id, call in requests]
        with self.model_client.upstream_errors(own_key):
            return UpstreamBatch.of(self._batches(api_key).create(requests=body))

    def retrieve(self, upstream_id: str, api_key: str, own_key: bool) -> UpstreamBatch:
        with self.model_client.upstream_errors(own_key):
            return UpstreamBatch.of(self._batches(api_key).retrieve(upstream_id))

    def cancel(self, upstream_id: str, api_key: str, own_key: bool) -> UpstreamBatch:
        with self.model_client.upstream_errors(own_key):
            return UpstreamBatch.of(self._batches(api_key).cancel(upstream_id))

    def results(self, upstream_id: str, api_key: str, own_key: bool) -> List[Dict[str, Any]]:
        """Every result line as upstream sent it (fields the SDK does not know included)."""
        with self.model_client.upstream_errors(own_key):
            return list(_lines(self._batches(api_key).results(upstream_id)))

    def delete(self, upstream_id: str, api_key: str, own_key: bool) -> None:
        with self.model_client.upstream_errors(own_key):
            self._batches(api_key).delete(upstream_id)


def _lines(decoder: Any) -> Iterator[Dict[str, Any]]:
    for entry in decoder:
        yield entry.to_dict(mode="json")
