"""Amazon Bedrock as a second route to the same models, through the SDK's own `AnthropicBedrock` client.

Only pool calls (the platform's key) ever come here (chalicelib/ai/failover.py): Bedrock is paid by
the platform's AWS account, through the function's role, so a tenant's own key never reaches it. The
request is the Messages API body as for Anthropic; the SDK moves the model into the URL
(`/model/{id}/invoke`, `/invoke-with-response-stream`), adds `anthropic_version`, signs with SigV4
and decodes the AWS event stream into the same events. The model id is mapped by pricing.BEDROCK.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, Iterator, Optional

from chalicelib import pricing
from chalicelib.ai.client import ModelCall, ModelClient
from chalicelib.settings import get_settings


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
