"""The upstream route of one call: Anthropic, a bounded retry, then Amazon Bedrock for pool calls.

    plan      which attempts a call may make, from the key it uses and its model's breaker
              (chalicelib/ai/breaker.py): a pure function
    attempt   each one opens the call (a whole answer, or a stream up to its first byte) within what is
              left of the call's deadline; a retryable failure (529, 5xx, a timeout or dropped connection
              before the first byte: client.retryable) moves on to the next attempt after a jittered
              pause, any other failure is the call's answer

The numbers (docs/upstream.md): one retry on Anthropic after a pause drawn uniformly from 0-0.5 s
(full jitter), an attempt started only while RETRY_FLOOR_SECONDS remain of the call's deadline, each
attempt's timeout cut to what remains. An own-key tenant's call never leaves Anthropic: Bedrock is
paid by the platform's AWS account. A call whose model Bedrock does not serve, or which asks for fast
mode, stays on Anthropic too. When every attempt fails, the caller gets Anthropic's error (what its
SDK knows how to retry), and each attempt is named in the usage event (`upstream_attempts`); a
timed-out attempt there is one Anthropic may have billed, at most the call's worst case.

A stream that breaks after its first byte is not retried: its bytes are already the caller's
(chalicelib/ai/streaming.py ends it with an `error` event and settles it at max_tokens).
"""
from __future__ import annotations

import itertools
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

from chalicelib import pricing
from chalicelib.ai import bedrock, breaker
from chalicelib.ai.client import (ModelCall, ModelClient, ModelReply, StreamEvent, UpstreamNoAnswer,
                                  retryable as marked_retryable)
from chalicelib.errors import TesseraError, UpstreamError
from chalicelib.logs import get_logger
from chalicelib.settings import get_settings

log = get_logger("failover")

ANTHROPIC, BEDROCK = pricing.ANTHROPIC, pricing.BEDROCK_PROVIDER
RETRIES = 1
BACKOFF_SECONDS = 0.5  # the most a retry waits: uniform in [0, BACKOFF_SECONDS)
RETRY_FLOOR_SECONDS = 1.0  # an attempt with less than this left of the deadline is not started


@dataclass(frozen=True)
class Attempt:
    provider: str
    probe: bool = False  # the one call testing a half-open breaker


def plan(own_key: bool, first: str, bedrock_serves: bool, failover_on: bool = True,
         retries: int = RETRIES) -> Tuple[Attempt, ...]:
    """The attempts a call may make, in order. `first` is the breaker's route for a pool call."""
    anthropic = tuple(Attempt(ANTHROPIC) for _ in range(1 + retries))
    if own_key or not (bedrock_serves and failover_on):
        return anthropic
    if first == breaker.BEDROCK_FIRST:  # Anthropic only as the last resort while the breaker is open
        return Attempt(BEDROCK), Attempt(ANTHROPIC)
    if first == breaker.PROBE:
        return Attempt(ANTHROPIC, probe=True), Attempt(BEDROCK)
    return anthropic + (Attempt(BEDROCK),)


def retryable(error: BaseException) -> bool:
    return getattr(error, "retryable", False) is True


@dataclass
class Served:
    """What answered a call: the provider, and every attempt's outcome (`anthropic:529`, `bedrock:ok`)."""

    provider: str
    attempts: List[str] = field(default_factory=list)
    breaker: str = breaker.CLOSED  # the model's breaker as this call found it
    unanswered: int = 0  # attempts that may have been billed without answering (timeouts, dropped connections)

    @property
    def failed_over(self) -> bool:
        return self.provider == BEDROCK and any(a.startswith(ANTHROPIC) for a in self.attempts)

    def trail(self) -> str:
        return ",".join(self.attempts)


def outcome(error: BaseException) -> str:
    if getattr(error, "code", "") == "upstream_timeout":
        return "timeout"
    if getattr(error, "maybe_billed", False):
        return "no_answer"  # the connection dropped after the request was sent
    return str(getattr(error, "status", 0) or type(error).__name__)


class Failover:
    """Owns the two model clients and the breakers of one warm instance."""

    def __init__(self, anthropic: ModelClient, bedrock_client: Optional[ModelClient] = None,
                 breakers: Optional[breaker.Breakers] = None, rng: Optional[random.Random] = None,
                 sleep: Callable[[float], None] = time.sleep, attempt_timeout: Optional[float] = None) -> None:
        self.anthropic = anthropic
        self._bedrock = bedrock_client
        self.breakers = breakers or breaker.Breakers()
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._attempt_timeout = attempt_timeout  # tests: a shorter per-attempt timeout than the setting

    @property
    def bedrock(self) -> ModelClient:
        if self._bedrock is None:
            self._bedrock = bedrock.BedrockModelClient()
        return self._bedrock

    def client(self, provider: str) -> ModelClient:
        return self.anthropic if provider == ANTHROPIC else self.bedrock

    def attempts(self, call: ModelCall, own_key: bool) -> Tuple[Tuple[Attempt, ...], str]:
        serves, on = bedrock.serves(call), get_settings().bedrock_failover
        if own_key or not (serves and on):
            return plan(own_key, breaker.ANTHROPIC_FIRST, serves, on), breaker.CLOSED
        first, phase = self.breakers.route(call.model)
        return plan(own_key, first, serves, on), phase

    def run(self, call: ModelCall, own_key: bool, deadline_seconds: Optional[float],
            open_with: Callable[[ModelClient, Optional[float]], Any]) -> Tuple[Any, Served]:
        """Make the call's attempts in turn; `open_with(client, timeout)` makes one. Returns what the
        attempt that answered returned, and what served it."""
        settings = get_settings()
        budget = deadline_seconds if deadline_seconds else settings.anthropic_timeout_seconds
        ends = time.monotonic() + budget
        planned, phase = self.attempts(call, own_key)
        served = Served(ANTHROPIC, breaker=phase)
        anthropic_error: Optional[BaseException] = None
        last_error: Optional[BaseException] = None
        for index, attempt in enumerate(planned):
            if index and planned[index - 1].provider == attempt.provider:
                self._sleep(min(self._rng.uniform(0, BACKOFF_SECONDS), max(0.0, ends - time.monotonic())))
            left = ends - time.monotonic()
            if index and left < RETRY_FLOOR_SECONDS:
                break
            timeout = min(self._attempt_timeout or settings.anthropic_timeout_seconds, max(left, 0.001))
            pool_anthropic = attempt.provider == ANTHROPIC and not own_key
            try:
                opened = open_with(self.client(attempt.provider), timeout)
            except Exception as error:
                if attempt.provider == ANTHROPIC and not (isinstance(error, TesseraError) and retryable(error)):
                    if pool_anthropic:  # Anthropic answered (a 400, a 429): it is up
                        self.breakers.succeeded(call.model, attempt.probe)
                    # An earlier attempt that timed out may have been billed: the failed call's event
                    # must still count it (nothing billed upstream is invisible in the ledger).
                    served.attempts.append(f"{attempt.provider}:{outcome(error)}")
                    error.upstream_attempts = served.trail()
                    error.unanswered_attempts = served.unanswered
                    raise
                # Any failure of Bedrock's (a field it does not take, no model access, its client's
                # configuration) moves on as well: the caller is better served by the next attempt, or
                # by Anthropic's error.
                served.attempts.append(f"{attempt.provider}:{outcome(error)}")
                served.unanswered += int(getattr(error, "maybe_billed", False) is True)
                last_error = error
                if attempt.provider == ANTHROPIC:
                    anthropic_error = anthropic_error or error
                    if pool_anthropic:
                        self.breakers.failed(call.model, attempt.probe)
                log.warning("upstream attempt failed", extra={"fields": {
                    "provider": attempt.provider, "model": call.model, "outcome": outcome(error),
                    "attempt": index + 1, "of": len(planned)}})
                continue
            served.provider = attempt.provider
            served.attempts.append(f"{attempt.provider}:ok")
            if pool_anthropic:
                self.breakers.succeeded(call.model, attempt.probe)
            return opened, served
        error = anthropic_error or last_error
        assert error is not None
        error.upstream_attempts = served.trail()  # the failed call's usage event names them too
        error.unanswered_attempts = served.unanswered
        raise error

    def complete(self, call: ModelCall, api_key: str, own_key: bool,
                 deadline_seconds: Optional[float] = None) -> Tuple[ModelReply, Served]:
        return self.run(call, own_key, deadline_seconds,
                        lambda client, timeout: client.complete(call, api_key, own_key, timeout))

    def stream(self, call: ModelCall, api_key: str, own_key: bool, deadline_seconds: Optional[float] = None
               ) -> Tuple[Tuple[Any, Optional[str], Any, float], Served]:
        """Open the call's stream up to its first event: returns ((the open context, upstream request id, the
        events from the first, when the answering attempt began by time.monotonic), served)."""
        def open_one(client: ModelClient, timeout: Optional[float]) -> Tuple[Any, Optional[str], Any, float]:
            started = time.monotonic()
            upstream = client.stream(call, api_key, own_key, timeout)
            request_id, events = upstream.__enter__()
            try:
                first = next(events, None)
            except UpstreamError:  # the connection broke or timed out before the stream's first event
                first, refused = None, unanswered()
            else:
                refused = unanswered() if first is None else refused_at_first_event(first)
            if refused is not None:
                upstream.__exit__(None, None, None)
                raise refused
            return upstream, request_id, itertools.chain([first], events), started

        return self.run(call, own_key, deadline_seconds, open_one)


# An `error` event that comes first, before message_start, means the call was refused before anything was
# produced (Anthropic sends an overload this way after a 200 when it hits capacity once the stream is open):
# nothing has reached the caller yet, so it is an attempt that failed before the first byte, as a 529 is.
FIRST_EVENT_FAILURES = {"overloaded_error": (529, "upstream_overloaded"), "api_error": (502, "upstream_error")}


def refused_at_first_event(first: Optional[StreamEvent]) -> Optional[UpstreamError]:
    if first is None or first.event != "error":
        return None
    try:
        kind = json.loads(first.data)["error"]["type"]
    except (ValueError, KeyError, TypeError):
        return None
    if kind not in FIRST_EVENT_FAILURES:
        return None
    status, code = FIRST_EVENT_FAILURES[kind]
    return marked_retryable(UpstreamError("The model service is overloaded. Try again shortly." if status == 529
                                          else "The model service failed. Try again.", status=status, code=code))


def unanswered() -> UpstreamError:
    """A stream that ended, broke or timed out before its first event: nothing reached the caller, and the
    request was sent, so upstream may have billed it (the ledger counts the attempt's worst case as exposure
    if no other attempt answers), as for a whole call whose connection dropped."""
    return marked_retryable(UpstreamNoAnswer("The model service stopped before answering. Try again.", status=503,
                                             code="upstream_unavailable"))
