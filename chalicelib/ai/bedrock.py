"""Amazon Bedrock as a second route to the same models, through the SDK's own `AnthropicBedrock` client.

Only pool calls (the platform's key) ever come here (chalicelib/ai/failover.py): Bedrock is paid by
the platform's AWS account, through the function's role, so a tenant's own key never reaches it. The
request is the Messages API body as for Anthropic; the SDK moves the model into the URL
(`/model/{id}/invoke`, `/invoke-with-response-stream`), adds `anthropic_version`, signs with SigV4
and decodes the AWS event stream into the same events. The model id is mapped by pricing.BEDROCK.
"""
from __future__ import annotations

import json
import threading
from typing import Any, Dict, Iterator, Optional

from chalicelib import pricing
from chalicelib.ai.client import ModelCall, ModelClient, StreamEvent
from chalicelib.logs import get_logger
from chalicelib.settings import get_settings

log = get_logger("bedrock")

# A Bedrock response stream reports a failure after its first bytes as an exception frame, which the SDK's
# decoder turns into an `error` event named with Bedrock's own code. A caller of /v1 speaks Anthropic's
# Messages API, whose SDKs know Anthropic's error types only, and should not learn that Bedrock served: the
# event is renamed to the Anthropic type that means the same to the caller (a capacity problem it may retry
# later, a failure of the model service, or a request the model cannot take), with Anthropic's wording. A code
# not listed is an `api_error`. Bedrock's own message is logged, never sent (it names Bedrock's resources).
STREAM_ERRORS: Dict[str, str] = {
    "throttlingException": "overloaded_error",
    "serviceUnavailableException": "overloaded_error",
    "internalServerException": "api_error",
    "modelStreamErrorException": "api_error",
    "modelTimeoutException": "api_error",
    "validationException": "invalid_request_error",
}
# Anthropic's own error types (its Messages API's `error.type`): a Bedrock chunk that already carries one (the
# model's own error event, relayed) passes as it came.
ANTHROPIC_ERROR_TYPES = frozenset({
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error", "request_too_large",
    "rate_limit_error", "api_error", "overloaded_error", "billing_error", "timeout_error"})
STREAM_ERROR_MESSAGES = {
    "overloaded_error": "Overloaded",
    "api_error": "The model service failed while answering.",
    "invalid_request_error": "The model service could not take this request.",
}


def serves(call: ModelCall) -> bool:
    """Whether Bedrock can take this call: its model is mapped, and it does not ask for fast mode
    (which Bedrock does not offer and which would change what the call costs)."""
    return call.model in pricing.BEDROCK and call.params.get("speed") != "fast"


class BedrockModelClient(ModelClient):
    """The Messages API on Bedrock; the same plain values and domain errors as ModelClient."""

    provider = pricing.BEDROCK_PROVIDER
    REQUEST_ID_HEADER = "x-amzn-requestid"

    def __init__(self, transport: Any = None) -> None:
        super().__init__(transport)
        self._bedrock: Optional[Any] = None
        self._bedrock_lock = threading.Lock()

    def sdk(self, api_key: str) -> Any:
        """One client for the instance: credentials are the function's role (the SDK asks botocore)."""
        with self._bedrock_lock:
            if self._bedrock is None:
                from anthropic import AnthropicBedrock

                settings = get_settings()
                options: Dict[str, Any] = {"aws_region": settings.bedrock_region,
                                           "timeout": settings.anthropic_timeout_seconds, "max_retries": 0}
                if settings.bedrock_base_url:
                    options["base_url"] = settings.bedrock_base_url
                if self._transport is not None:
                    import httpx2

                    options["http_client"] = httpx2.Client(transport=self._transport)
                self._bedrock = AnthropicBedrock(**options)
            return self._bedrock

    @staticmethod
    def _request(call: ModelCall) -> Dict[str, Any]:
        request = ModelClient._request(call)
        request["model"] = pricing.BEDROCK[call.model].model_id
        return request

    @staticmethod
    def _raw_events(http_response: Any) -> Iterator[Any]:
        from anthropic.lib.bedrock._stream_decoder import AWSEventStreamDecoder

        return AWSEventStreamDecoder().iter_bytes(http_response.iter_bytes())

    def _events(self, http_response: Any) -> Iterator[StreamEvent]:
        for event in super()._events(http_response):
            yield as_anthropic_error(event) if event.event == "error" else event


def as_anthropic_error(event: StreamEvent) -> StreamEvent:
    """A Bedrock stream's `error` event as Anthropic's Messages API would have sent it (STREAM_ERRORS)."""
    try:
        code = str(json.loads(event.data)["error"]["type"])
    except (ValueError, KeyError, TypeError):
        code = "unknown"
    if code in ANTHROPIC_ERROR_TYPES:
        return event
    kind = STREAM_ERRORS.get(code[:1].lower() + code[1:], "api_error")
    log.warning("bedrock stream failed", extra={"fields": {"bedrock_error": code[:80], "sent_as": kind}})
    return StreamEvent("error", json.dumps({"type": "error", "error": {"type": kind,
                                                                       "message": STREAM_ERROR_MESSAGES[kind]}}))
