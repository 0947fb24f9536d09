"""The one wrapper around the official `anthropic` SDK.

It takes plain values (model, messages, system, limits, the key to use),
returns plain values, and turns the SDK's exceptions into domain errors. The
SDK is imported here only, on first use, so the authorizer never pays for it.
Clients are cached per key (by digest) for the warm Lambda; a key is always
passed explicitly, because `api_key=None` would make the SDK fall back to the
process environment.

The request body goes upstream as given: the SDK's `create()` names only some
of the Messages API's fields (not `temperature`, `top_p` or `top_k`), so all
but the required three travel in `extra_body`, which the SDK merges into the
JSON unchanged. The client's `anthropic-beta` header goes upstream as given too (messages_api.py
checks each beta against docs/api-contract.md's table first).
"""
from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union

from chalicelib.errors import BadRequest, ConfigurationError, TesseraError, TooManyRequests, UpstreamError
from chalicelib.logs import get_logger
from chalicelib.settings import get_settings

log = get_logger("ai")

System = Union[str, List[Dict[str, Any]], None]


@dataclass(frozen=True)
class ModelCall:
    model: str
    max_tokens: int
    temperature: Optional[float]
    messages: List[Dict[str, Any]]
    system: System = None
    # Every other Messages API field, passed through unchanged (tools, thinking, top_p, stop_sequences...).
    params: Mapping[str, Any] = field(default_factory=dict)
    betas: Tuple[str, ...] = ()  # the `anthropic-beta` header's values, forwarded as sent

    def headers(self) -> Dict[str, str]:
        """The upstream request's extra headers."""
        return {"anthropic-beta": ",".join(self.betas)} if self.betas else {}

    def billed_fast(self, usage: "Usage") -> bool:
        """Whether the call is billed at fast-mode rates: as the usage reports it, else as it was asked."""
        return (usage.speed or self.params.get("speed")) == "fast"

    def body(self) -> Dict[str, Any]:
        """The JSON body of the upstream request."""
        body: Dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens, "messages": self.messages}
        if self.system:
            body["system"] = self.system
        if self.temperature is not None:
            body["temperature"] = self.temperature
        body.update(self.params)
        return body

    def count_body(self) -> Dict[str, Any]:
        """What `count_tokens` accepts: the body without the sampling and output fields it refuses."""
        return {k: v for k, v in self.body().items() if k not in _NOT_COUNTED}


_NOT_COUNTED = {"max_tokens", "temperature", "top_p", "top_k", "stop_sequences", "metadata", "service_tier",
                "stream", "speed", "inference_geo"}


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_1h_tokens: int = 0  # the part of cache_creation_tokens written at the 1-hour rate
    speed: Optional[str] = None  # "fast" or "standard" when upstream reports it

    def as_dict(self) -> dict:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cache_creation_input_tokens": self.cache_creation_tokens,
                "cache_read_input_tokens": self.cache_read_tokens,
                "total_tokens": self.input_tokens + self.output_tokens}

    @classmethod
    def from_api(cls, usage: Mapping[str, Any], previous: Optional["Usage"] = None) -> "Usage":
        """Usage from the API's JSON; fields it leaves out or sends as null keep their `previous` value
        (a stream's message_delta repeats only what changed)."""
        base = previous or cls()
        split = usage.get("cache_creation") if isinstance(usage.get("cache_creation"), Mapping) else {}

        def pick(value: Any, fallback: int) -> int:
            return int(value) if isinstance(value, int) and not isinstance(value, bool) else fallback

        return cls(input_tokens=pick(usage.get("input_tokens"), base.input_tokens),
                   output_tokens=pick(usage.get("output_tokens"), base.output_tokens),
                   cache_creation_tokens=pick(usage.get("cache_creation_input_tokens"), base.cache_creation_tokens),
                   cache_read_tokens=pick(usage.get("cache_read_input_tokens"), base.cache_read_tokens),
                   cache_creation_1h_tokens=pick(split.get("ephemeral_1h_input_tokens"),
                                                 base.cache_creation_1h_tokens),
                   speed=usage["speed"] if isinstance(usage.get("speed"), str) else base.speed)


@dataclass(frozen=True)
class ModelReply:
    text: str
    model: str
    stop_reason: Optional[str]
    usage: Usage
    upstream_request_id: Optional[str]
    latency_ms: int
    raw: Any = field(repr=False, default=None)

    def message(self) -> Dict[str, Any]:
        """The upstream message exactly as received: every field it set, unknown ones included."""
        return self.raw.to_dict(mode="json") if self.raw is not None else {}


def rate_limit_headers(headers: Mapping[str, str]) -> Dict[str, str]:
    return {name.lower(): value for name, value in headers.items()
            if name.lower().startswith("anthropic-ratelimit-")}


class UpstreamNoAnswer(UpstreamError):
    """The request may have reached the model, but no answer came back (a read timeout, a dropped
    connection): the upstream may have billed it, so the ledger records it as indeterminate."""

    maybe_billed = True


def _never_sent(error: BaseException) -> bool:
    """Whether the SDK failed before the request left this process (no connection was made)."""
    import httpx2

    return isinstance(error.__cause__, (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout))


@dataclass(frozen=True)
class StreamEvent:
    """One server-sent event from upstream, as received."""

    event: str
    data: str

class MessageAssembly:
    """A whole message built from its stream's events, as the SDK's own stream helper builds it. An event
    or delta kind the SDK does not know yet is left out of the content (its usage still counts: the
    ledger reads usage from the events themselves, chalicelib/ai/streaming.py)."""

    def __init__(self) -> None:
        self._snapshot: Any = None
        self._json_buffers: Dict[int, bytes] = {}

    def add(self, event: StreamEvent) -> None:
        if event.event not in _ASSEMBLED:
            return
        import json

        from anthropic.lib.streaming._messages import accumulate_event

        self._snapshot = accumulate_event(event=json.loads(event.data), current_snapshot=self._snapshot,
                                          json_bufs=self._json_buffers)

    def reply(self, usage: Usage, upstream_request_id: Optional[str], latency_ms: int) -> ModelReply:
        message = self._snapshot
        return ModelReply(text="".join(getattr(block, "text", "") for block in message.content),
                          model=message.model, stop_reason=message.stop_reason, usage=usage,
                          upstream_request_id=upstream_request_id, latency_ms=latency_ms, raw=message)


_ASSEMBLED = {"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta"}


class TenantKeyRejected(TesseraError):
    status = 400
    code = "tenant_api_key_invalid"


class ModelClient:
    """Calls the Messages API with a given key; `transport` is for tests at the network edge."""

    def __init__(self, transport: Any = None) -> None:
        self._transport = transport
        self._clients: Dict[str, Any] = {}
        self._lock = threading.Lock()
        # Told (model, headers) of each pool call's `anthropic-ratelimit-*` headers, whole or streamed: the
        # gateway's pool corrects its ceilings from them (chalicelib/metering/pool_leases.py)
        self.pool_rate_limits: Optional[Callable[[str, Mapping[str, str]], None]] = None

    def _heard_rate_limits(self, model: str, own_key: bool, headers: Mapping[str, str]) -> None:
        if not own_key and self.pool_rate_limits is not None:
            self.pool_rate_limits(model, rate_limit_headers(headers))

    def sdk(self, api_key: str) -> Any:
        """The SDK's client for `api_key`, built once per key (anthropic is imported here, on first use)."""
        if not api_key:
            raise ConfigurationError("No Anthropic key is available for this request.")
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        with self._lock:
            cached = self._clients.get(digest)
            if cached is not None:
                return cached
        import anthropic

        settings = get_settings()
        options: Dict[str, Any] = {"api_key": api_key, "timeout": settings.anthropic_timeout_seconds,
                                   "max_retries": settings.anthropic_max_retries}
        if settings.anthropic_base_url:
            options["base_url"] = settings.anthropic_base_url
        if self._transport is not None:
            import httpx2

            options["http_client"] = httpx2.Client(transport=self._transport)
        created = anthropic.Anthropic(**options)
        with self._lock:
            return self._clients.setdefault(digest, created)

    @staticmethod
    def _request(call: ModelCall) -> Dict[str, Any]:
        body = call.body()
        required = {name: body.pop(name) for name in ("model", "max_tokens", "messages")}
        return {**required, "extra_body": body, "extra_headers": call.headers()}

    @contextlib.contextmanager
    def upstream_errors(self, own_key: bool) -> Iterator[None]:
        """The SDK's errors, raised inside, as domain errors (retryable where another attempt may answer)."""
        import anthropic

        try:
            yield
        except anthropic.APIStatusError as error:
            raise _map_status_error(error, own_key) from None
        except anthropic.APIConnectionError as error:  # APITimeoutError included
            if _never_sent(error):
                raise retryable(UpstreamError("The model service could not be reached. Try again.", status=503,
                                              code="upstream_unavailable")) from None
            if isinstance(error, anthropic.APITimeoutError):
                raise retryable(UpstreamNoAnswer("The model did not answer in time. Try again.", status=504,
                                                 code="upstream_timeout")) from None
            raise retryable(UpstreamNoAnswer("The model service dropped the connection before answering. "
                                             "Try again.", status=503, code="upstream_unavailable")) from None

    def complete(self, call: ModelCall, api_key: str, own_key: bool,
                 timeout: Optional[float] = None) -> ModelReply:
        """`timeout`: this attempt's, when less than the client's (what is left of the call's deadline)."""
        # The client is built (on an instance's first call, the SDK imported: seconds) before the clock
        # starts: latency_ms is the model's, in the usage event and the upstream_latency metric alike.
        messages, request = self.sdk(api_key).messages, self._request(call)
        if timeout is not None:
            request["timeout"] = timeout
        started = time.perf_counter()
        with self.upstream_errors(own_key):
            response = messages.with_raw_response.create(**request)
            message = response.parse()
        self._heard_rate_limits(call.model, own_key, response.headers)
        latency_ms = int((time.perf_counter() - started) * 1000)
        return ModelReply(
            text="".join(getattr(block, "text", "") for block in message.content),
            model=message.model,
            stop_reason=message.stop_reason,
            usage=Usage.from_api(message.usage.to_dict(mode="json")),
            upstream_request_id=getattr(message, "_request_id", None),
            latency_ms=latency_ms,
            raw=message,
        )

    def count_tokens(self, call: ModelCall, api_key: str, own_key: bool) -> int:
        """Upstream's count of the call's input tokens (a free endpoint, not billed as a message)."""
        body = call.count_body()
        required = {name: body.pop(name) for name in ("model", "messages")}
        with self.upstream_errors(own_key):
            counted = self.sdk(api_key).messages.count_tokens(**required, extra_body=body,
                                                                  extra_headers=call.headers())
        return int(counted.input_tokens)

    @contextlib.contextmanager
    def stream(self, call: ModelCall, api_key: str, own_key: bool,
               timeout: Optional[float] = None) -> Iterator[Tuple[Optional[str], Iterator[StreamEvent]]]:
        """Open a streamed call; yields (upstream request id, the events as received, pings and errors
        included). A failure before the first event raises the usual domain errors; one while reading
        raises UpstreamError."""
        request = self._request(call)
        if timeout is not None:
            request["timeout"] = timeout
        with self.upstream_errors(own_key):
            opened = self.sdk(api_key).messages.with_streaming_response.create(**request, stream=True)
            response = opened.__enter__()
        self._heard_rate_limits(call.model, own_key, response.headers)
        try:
            yield response.headers.get(self.REQUEST_ID_HEADER), self._events(response.http_response)
        finally:
            opened.__exit__(None, None, None)

    REQUEST_ID_HEADER = "request-id"

    @staticmethod
    def _raw_events(http_response: Any) -> Iterator[Any]:
        """The response's server-sent events, as the SDK parses them."""
        import anthropic

        return anthropic.Stream.raw_events(http_response)

    def _events(self, http_response: Any) -> Iterator[StreamEvent]:
        try:
            for sse in self._raw_events(http_response):
                if sse.event:
                    yield StreamEvent(sse.event, sse.data)
        except Exception as error:  # the connection broke or timed out mid-stream
            log.warning("upstream stream broke", extra={"fields": {"error": type(error).__name__}})
            raise UpstreamError("The model service stopped answering mid-stream.") from None


def _upstream_message(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
    return "The model service rejected the request."


def _map_status_error(error: Any, own_key: bool) -> TesseraError:
    status = error.status_code
    if status == 429:
        retry_after = error.response.headers.get("retry-after", "30")
        seconds = int(float(retry_after)) if retry_after.replace(".", "", 1).isdigit() else 30
        return TooManyRequests("The model service is rate limiting requests. Retry later.",
                               retry_after=seconds, code="upstream_rate_limited")
    if status in (401, 403):
        if own_key:
            return TenantKeyRejected("Anthropic rejected the tenant's own API key. Check or replace it.")
        log.error("platform key rejected by upstream", extra={"fields": {"status": status}})
        return UpstreamError("The model service refused the platform's request.")
    if status in (400, 404, 413, 422):
        return BadRequest(_upstream_message(error), code="upstream_invalid_request")
    if status in _OVERLOADED:
        return retryable(UpstreamError("The model service is overloaded. Try again shortly.", status=status,
                                       code=_OVERLOADED[status]))
    failed = UpstreamError(f"The model service failed (HTTP {status}). Try again.")
    return retryable(failed) if status >= 500 else failed


def retryable(error: UpstreamError) -> UpstreamError:
    """Mark an upstream failure that happened before the first byte of an answer and that another attempt
    may not meet (529, 5xx, a timeout or a dropped connection): chalicelib/ai/failover.py retries it."""
    error.retryable = True
    return error


# Overload is passed on as what it is (Anthropic's own 529, or a 503); any other upstream 5xx is a 502.
_OVERLOADED = {529: "upstream_overloaded", 503: "upstream_unavailable"}
