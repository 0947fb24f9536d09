"""Streamed calls: Anthropic's event stream, from an upstream call that is itself streamed.

    open_stream: prepare and admit (gateway steps), then open the upstream stream; any refusal or
                 upstream error raises here, before the first byte, so the route can answer 4xx/5xx
    iterate:     each upstream event is passed on as received (message_start ... message_stop, text,
                 tool-input and thinking deltas, ping, error) while its usage is tallied
    close:       record the exact final usage once (gateway.finish), or the failure (gateway.fail) if
                 upstream never started a message; on message_stop this happens before that last event
                 is sent, so a caller holding the whole stream finds its usage event recorded

A client that goes away mid-stream closes the iterator; the upstream stream is then read to its
end without sending anything, so what upstream bills is what is recorded. A stream that does not
end (upstream broke, or the host's deadline came first) is settled with max_tokens as its output:
its real output is unknown and a hard budget must not be under-recorded.
"""
from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager
from typing import Iterator, Optional, Tuple

from chalicelib.ai.client import MessageAssembly, StreamEvent, Usage
from chalicelib.ai.failover import Served
from chalicelib.ai.gateway import FeatureCall, Gateway, GatewayResult, PreparedCall
from chalicelib.errors import TesseraError, UpstreamError
from chalicelib.logs import get_logger
from chalicelib.metering.admission import Reservation
from chalicelib.settings import get_settings
from chalicelib.tenancy import TenantContext

log = get_logger("streaming")


def sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode("utf-8")


def error_event(kind: str, message: str) -> bytes:
    return sse("error", json.dumps({"type": "error", "error": {"type": kind, "message": message}}))


class StreamTally:
    """What the events so far say about the message: its usage, and whether it started and ended."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.started = False
        self.stopped = False
        self.failed = False

    def see(self, event: StreamEvent) -> None:
        if event.event == "message_start":
            self.started = True
            message = _json(event.data).get("message") or {}
            self.usage = Usage.from_api(message.get("usage") or {}, self.usage)
        elif event.event == "message_delta":
            self.usage = Usage.from_api(_json(event.data).get("usage") or {}, self.usage)
        elif event.event == "message_stop":
            self.stopped = True
        elif event.event == "error":
            self.failed = True


def _json(data: str) -> dict:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class StreamedCall:
    """An admitted call whose upstream stream is open. Iterate it once for the SSE bytes."""

    def __init__(self, gateway: Gateway, prepared: PreparedCall, reservation: Reservation,
                 upstream: AbstractContextManager, upstream_request_id: Optional[str],
                 events: Iterator[StreamEvent], deadline_seconds: Optional[float],
                 assembly: Optional[MessageAssembly] = None, served: Optional[Served] = None,
                 started_at: Optional[float] = None) -> None:
        self.gateway, self.prepared, self.reservation = gateway, prepared, reservation
        self.served = served  # who answered (chalicelib/ai/failover.py)
        self._upstream, self._events = upstream, events
        self.upstream_request_id = upstream_request_id
        self.tally = StreamTally()
        self.assembly = assembly
        # when the answering attempt began (its wait for the first event is the call's, as a whole call's is)
        self.started_at = time.monotonic() if started_at is None else started_at
        self._deadline = self.started_at + deadline_seconds if deadline_seconds else None
        self.cost_micros: Optional[int] = None
        self._closed = False
        self._error: Optional[BaseException] = None

    @property
    def request_id(self) -> str:
        return self.prepared.request_id

    def __iter__(self) -> Iterator[bytes]:
        try:
            for event in self._events:
                self.tally.see(event)
                if self.assembly is not None:
                    self.assembly.add(event)
                if event.event == "message_stop":
                    # settled before the caller reads the end: once it has message_stop, the call's usage
                    # event is recorded (GET /usage/events has it), as a whole answer's is when it arrives
                    self.close()
                    yield sse(event.event, event.data)
                    return
                yield sse(event.event, event.data)
                if self._past_deadline():
                    yield error_event("api_error", "The response took longer than this endpoint allows; "
                                                   "ask for fewer max_tokens.")
                    return
        except UpstreamError as error:
            self._error = error
            yield error_event("api_error", error.message)
        except GeneratorExit:
            self._drain()
            raise
        finally:
            self.close()

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline and not self.tally.stopped

    def _drain(self) -> None:
        """The client is gone: read upstream to its end, so its final usage is what gets recorded."""
        if self._closed:  # already settled (the client left on the last event)
            return
        try:
            for event in self._events:
                self.tally.see(event)
                if self._past_deadline():
                    return
        except UpstreamError:
            pass

    def close(self) -> None:
        """Settle or release, exactly once, and close the upstream connection."""
        if self._closed:
            return
        self._closed = True
        try:
            self._upstream.__exit__(None, None, None)
        except Exception as error:
            log.warning("upstream stream not closed cleanly", extra={"fields": {"error": type(error).__name__}})
        tally, prepared = self.tally, self.prepared
        if not tally.started:
            self.gateway.fail(prepared, self.reservation, self._error)
            return
        usage, status = tally.usage, "ok"
        if not tally.stopped:
            usage = Usage(input_tokens=usage.input_tokens,
                          output_tokens=max(usage.output_tokens, prepared.model_call.max_tokens),
                          cache_creation_tokens=usage.cache_creation_tokens,
                          cache_read_tokens=usage.cache_read_tokens,
                          cache_creation_1h_tokens=usage.cache_creation_1h_tokens)
            status = "incomplete"
        latency_ms = int((time.monotonic() - self.started_at) * 1000)
        self.cost_micros = self.gateway.finish(prepared, self.reservation, usage, latency_ms,
                                               self.upstream_request_id, status=status, served=self.served)


def open_stream(gateway: Gateway, ctx: TenantContext, feature: str, call: FeatureCall,
                deadline_seconds: Optional[float] = None, assemble: bool = False) -> StreamedCall:
    """Prepare, admit and open the upstream stream; raises domain errors before any byte is sent."""
    prepared = gateway.prepare(ctx, feature, call)
    reservation = gateway.admit(prepared)
    try:
        (upstream, upstream_request_id, events, started_at), served = gateway.failover.stream(
            prepared.model_call, prepared.api_key, prepared.own_key, deadline_seconds)
    except BaseException as error:
        gateway.fail(prepared, reservation, error)
        if not isinstance(error, TesseraError):
            log.error("upstream stream failed to open", extra={"fields": {"error": type(error).__name__}})
        raise
    return StreamedCall(gateway, prepared, reservation, upstream, upstream_request_id, events, deadline_seconds,
                        MessageAssembly() if assemble else None, served, started_at)


def run_whole(gateway: Gateway, ctx: TenantContext, feature: str, call: FeatureCall) -> Tuple[str, StreamedCall]:
    """For a host that sends a response whole (chalice's Lambda proxy integration): the stream read to
    its end as one text/event-stream body, within the upstream timeout so it settles before the
    handler's own timeout."""
    streamed = open_stream(gateway, ctx, feature, call, get_settings().anthropic_timeout_seconds)
    return b"".join(streamed).decode("utf-8"), streamed


def run_assembled(gateway: Gateway, ctx: TenantContext, feature: str, call: FeatureCall,
                  deadline_seconds: float) -> GatewayResult:
    """A whole answer for a host that may run as long as the call (the streaming function): upstream is
    streamed, so the upstream timeout bounds each read rather than the whole call, and the message is
    assembled from its events. Settled as every stream is; a stream that does not end is an error here,
    after it was settled at max_tokens."""
    streamed = open_stream(gateway, ctx, feature, call, deadline_seconds, assemble=True)
    for _ in streamed:
        pass
    tally = streamed.tally
    if not tally.stopped:
        if streamed._past_deadline():
            raise UpstreamError("The response took longer than this endpoint allows; ask for fewer max_tokens.",
                                status=504, code="upstream_timeout")
        raise UpstreamError("The model service stopped answering mid-stream. Try again.")
    latency_ms = int((time.monotonic() - streamed.started_at) * 1000)
    reply = streamed.assembly.reply(tally.usage, streamed.upstream_request_id, latency_ms)
    return GatewayResult(streamed.request_id, reply, streamed.cost_micros, streamed.prepared.requested_model,
                         streamed.prepared.model_call.model)
