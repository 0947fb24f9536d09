"""The one wrapper around the official `anthropic` SDK.

It takes plain values (model, messages, system, limits, the key to use),
returns plain values, and turns the SDK's exceptions into domain errors. The
SDK is imported here only, on first use, so the authorizer never pays for it.
Clients are cached per key (by digest) for the warm Lambda; a key is always
passed explicitly, because `api_key=None` would make the SDK fall back to the
process environment.
"""
from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from chalicelib.errors import BadRequest, ConfigurationError, TesseraError, TooManyRequests, UpstreamError
from chalicelib.logs import get_logger
from chalicelib.settings import get_settings

log = get_logger("ai")


@dataclass(frozen=True)
class ModelCall:
    model: str
    max_tokens: int
    temperature: Optional[float]
    messages: List[Dict[str, Any]]
    system: Optional[str] = None
    stop_sequences: Optional[List[str]] = None
    metadata: Optional[Dict[str, Any]] = None


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0

    def as_dict(self) -> dict:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cache_creation_input_tokens": self.cache_creation_tokens,
                "cache_read_input_tokens": self.cache_read_tokens,
                "total_tokens": self.input_tokens + self.output_tokens}


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
        """The upstream message in the Messages API's JSON shape (only /v1/messages needs it)."""
        return self.raw.model_dump(mode="json", exclude_none=True) if self.raw is not None else {}


class TenantKeyRejected(TesseraError):
    status = 400
    code = "tenant_api_key_invalid"


class ModelClient:
    """Calls the Messages API with a given key; `transport` is for tests at the network edge."""

    def __init__(self, transport: Any = None) -> None:
        self._transport = transport
        self._clients: Dict[str, Any] = {}
        self._lock = threading.Lock()

    def _client(self, api_key: str) -> Any:
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

    def complete(self, call: ModelCall, api_key: str, own_key: bool) -> ModelReply:
        import anthropic

        params: Dict[str, Any] = {"model": call.model, "max_tokens": call.max_tokens, "messages": call.messages}
        if call.system:
            params["system"] = call.system
        if call.stop_sequences:
            params["stop_sequences"] = call.stop_sequences
        if call.metadata:
            params["metadata"] = call.metadata
        extra = {"temperature": call.temperature} if call.temperature is not None else None
        started = time.perf_counter()
        try:
            message = self._client(api_key).messages.create(**params, extra_body=extra)
        except anthropic.APIStatusError as error:
            raise _map_status_error(error, own_key) from None
        except anthropic.APITimeoutError:
            raise UpstreamError("The model did not answer in time. Try again.", status=504,
                                code="upstream_timeout") from None
        except anthropic.APIConnectionError:
            raise UpstreamError("The model service could not be reached. Try again.", status=503,
                                code="upstream_unavailable") from None
        latency_ms = int((time.perf_counter() - started) * 1000)
        usage = message.usage
        return ModelReply(
            text="".join(getattr(block, "text", "") for block in message.content),
            model=message.model,
            stop_reason=message.stop_reason,
            usage=Usage(input_tokens=usage.input_tokens or 0, output_tokens=usage.output_tokens or 0,
                        cache_creation_tokens=getattr(usage, "cache_creation_input_tokens", None) or 0,
                        cache_read_tokens=getattr(usage, "cache_read_input_tokens", None) or 0),
            upstream_request_id=getattr(message, "_request_id", None),
            latency_ms=latency_ms,
            raw=message,
        )


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
        return UpstreamError("The model service is overloaded. Try again shortly.", status=status,
                             code=_OVERLOADED[status])
    return UpstreamError(f"The model service failed (HTTP {status}). Try again.")


# Overload is passed on as what it is (Anthropic's own 529, or a 503); any other upstream 5xx is a 502.
_OVERLOADED = {529: "upstream_overloaded", 503: "upstream_unavailable"}
