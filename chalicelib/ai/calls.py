"""The AI routes a caller may stream, POST /v1/messages and POST /ai/chat: parsed and answered in one
place for both functions that run them.

    BUFFERED   app.py on chalice's Lambda proxy integration, which sends a response whole: a streamed
               call is read to its end within the upstream timeout and sent as one text/event-stream
               body, before the handler's own 28 s timeout.
    STREAMING  the streaming function (chalicelib/stream_host, behind the Lambda Web Adapter and an
               API Gateway integration with responseTransferMode STREAM): each event is written as
               upstream sends it, and any call, streamed or whole, may run until just before Lambda's
               15 minutes. A whole call is streamed from upstream too, so the upstream timeout bounds
               each read rather than the whole call (chalicelib.ai.streaming.run_assembled).

Both take the same steps through the gateway (prepare, admit, call, settle); only how the answer leaves
differs. Idempotency-Key works on both (`respond_once`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from chalice.app import Request, Response

from chalicelib import idempotency
from chalicelib.ai import features, messages_api, streaming
from chalicelib.ai.gateway import FeatureCall, Gateway, GatewayResult
from chalicelib.errors import TesseraError
from chalicelib.tenancy import TenantContext
from chalicelib.web import body

AI_BODY_BYTES = 1024 * 1024

# Lambda's longest run; the streaming function's timeout. A call's events stop this much earlier, so the
# call is settled (one usage event, the reservation returned) before Lambda ends the invocation.
STREAM_FUNCTION_TIMEOUT_SECONDS = 900
SETTLE_MARGIN_SECONDS = 15


@dataclass(frozen=True)
class Host:
    streams: bool
    deadline_seconds: Optional[float]  # how long a call may run; None: within the upstream timeout
    idempotency_lease_seconds: int  # the function's timeout: a claim older than this belongs to a dead call


BUFFERED = Host(streams=False, deadline_seconds=None, idempotency_lease_seconds=idempotency.LEASE_SECONDS)
STREAMING = Host(streams=True, deadline_seconds=STREAM_FUNCTION_TIMEOUT_SECONDS - SETTLE_MARGIN_SECONDS,
                 idempotency_lease_seconds=STREAM_FUNCTION_TIMEOUT_SECONDS)


def _messages_whole(result: GatewayResult) -> Response:
    return Response(body=messages_api.response(result),
                    headers={**messages_api.headers(result.request_id, result.cost_micros), **result.brownout_headers})


def _chat_whole(result: GatewayResult) -> Response:
    return Response(body=result.as_response(), headers=result.brownout_headers)


def anthropic_error(error: TesseraError) -> Response:
    return Response(body=messages_api.error_body(error), status_code=error.status,
                    headers={"Content-Type": "application/json", **error.headers})


@dataclass(frozen=True)
class StreamableRoute:
    path: str
    feature: str
    parse: Callable[[Dict[str, Any], Mapping[str, str]], Tuple[FeatureCall, bool]]  # (body, request headers)
    body_bytes: int
    whole: Callable[[GatewayResult], Response]
    render_error: Optional[Callable[[TesseraError], Response]]  # None: the envelope (chalicelib.web)


def _messages_call(body_: Dict[str, Any], headers: Mapping[str, str]) -> Tuple[FeatureCall, bool]:
    return messages_api.parse(body_, messages_api.parse_betas(headers))


def _chat_call(body_: Dict[str, Any], headers: Mapping[str, str]) -> Tuple[FeatureCall, bool]:
    return features.chat(body_)


MESSAGES = StreamableRoute("/v1/messages", messages_api.FEATURE, _messages_call, messages_api.BODY_BYTES,
                           _messages_whole, anthropic_error)
CHAT = StreamableRoute("/ai/chat", "basic_chat", _chat_call, AI_BODY_BYTES, _chat_whole, None)
STREAMABLE = {route.path: route for route in (MESSAGES, CHAT)}


def event_stream(body: Any, streamed: streaming.StreamedCall) -> Response:
    """Anthropic's event stream: `body` is the text (sent whole) or an iterator of its bytes (as produced).
    The cost header is there only when the body is whole: a streamed answer's cost is known at its end,
    and `GET /usage/events` has it by the request id sent first."""
    return Response(body=body, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                        **messages_api.headers(streamed.request_id, streamed.cost_micros),
                                        **streamed.prepared.brownout_headers})


def answer(route: StreamableRoute, gateway: Gateway, ctx: TenantContext, request: Request,
           host: Host) -> Response:
    call, stream = route.parse(body(request, route.body_bytes), request.headers)
    if stream and host.streams:
        streamed = streaming.open_stream(gateway, ctx, route.feature, call, host.deadline_seconds)
        return event_stream(iter(streamed), streamed)
    if stream:
        return event_stream(*streaming.run_whole(gateway, ctx, route.feature, call))
    if host.streams:
        return route.whole(streaming.run_assembled(gateway, ctx, route.feature, call, host.deadline_seconds))
    return route.whole(gateway.run(ctx, route.feature, call))


def respond_once(request: Request, tenant_id: str, respond: Callable[[], Any],
                 lease_seconds: int = idempotency.LEASE_SECONDS) -> Response:
    """Answer a retry carrying the same Idempotency-Key with the first call's response (billed once)."""
    fingerprint = idempotency.fingerprint(request.method, request.context.get("resourcePath", ""),
                                          repr(sorted((request.uri_params or {}).items())).encode()
                                          + b"\0" + (request.raw_body or b""))

    def call() -> idempotency.Response:
        result = respond()
        if isinstance(result, Response):
            return result.status_code, result.body, dict(result.headers or {})
        return 200, result, {}

    status, body, headers = idempotency.run_once(idempotency.tenant_scope(tenant_id),
                                                 request.headers.get("idempotency-key"), fingerprint, call,
                                                 lease_seconds)
    return Response(body=body, status_code=status, headers=headers)


def idempotent_view(request_of: Callable[[], Request], tenant_id_of: Callable[[], str],
                    lease_seconds: int = idempotency.LEASE_SECONDS) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator form of `respond_once` for a host that finds its request and tenant by calling."""
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def once(*args: Any, **kwargs: Any) -> Response:
            return respond_once(request_of(), tenant_id_of(), lambda: view(*args, **kwargs), lease_seconds)
        return once
    return decorate
