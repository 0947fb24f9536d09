"""Amazon Bedrock's runtime API for Claude, as the stand-in speaks it (dev/standin/server.py).

    POST /model/{modelId}/invoke                        the Messages body (no `model`, no `stream`,
                                                        `anthropic_version` required) -> the message JSON
    POST /model/{modelId}/invoke-with-response-stream   the same -> an AWS event stream
                                                        (application/vnd.amazon.eventstream): one binary
                                                        frame per Anthropic event, `:event-type chunk`,
                                                        payload {"bytes": base64(event JSON)}; message_stop
                                                        carries `amazon-bedrock-invocationMetrics`

This is what the SDK's `AnthropicBedrock` client sends and parses (anthropic/lib/bedrock/_client.py and
_stream_decoder.py, which hands each frame to botocore's EventStreamBuffer and EventStreamJSONParser).
A request must be signed (`Authorization: AWS4-HMAC-SHA256 Credential=...`) or carry a Bedrock API key
(`Authorization: Bearer ...`); the signature itself is not checked. Model ids: the inference profiles of
the base ids below (`global.`, `us.`, `eu.`, ... + base id); a bare base id gets Bedrock's 400 ("on-demand
throughput isn't supported"), as these models are served only through inference profiles. Errors have
Bedrock's shape: `{"message": ...}` with an `x-amzn-ErrorType` header.

Faults, for tests (Anthropic's own switches do not apply here, so a test can fail one and not the other):

* ``[[bedrock:429]]`` / ``[[bedrock:500]]`` / ``[[bedrock:503]]`` in the last user message -> that error
* ``[[bedrock:slow=SECONDS]]`` -> wait, then answer
* ``[[bedrock:stream_cut]]`` -> a stream closes its connection after its first delta
* ``[[bedrock:stream_exception=CODE]]`` -> after its first delta a stream sends an exception frame of that code
  (``modelStreamErrorException``, ``throttlingException``, ...) and ends, as Bedrock reports a failure mid-stream
* ``POST /_standin/bedrock/faults`` ``{"status": 429|500|503, "count": N, "delay_seconds": X}`` queues
  faults for the next N Bedrock requests; ``DELETE`` clears them

Requests are recorded with the others (``GET /_standin/requests``), marked ``"provider": "bedrock"``
with the ``model_id`` called and how the request was authenticated.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import threading
import time
from collections import deque
from typing import Callable, Iterator, Optional, Tuple

# Base model id -> the Anthropic model it serves ("Claude on Amazon Bedrock (Opus 4.6 and earlier)").
BASE_MODELS = {
    "anthropic.claude-opus-4-6-v1": "claude-opus-4-6",
    "anthropic.claude-sonnet-4-6": "claude-sonnet-4-6",
    "anthropic.claude-haiku-4-5-20251001-v1:0": "claude-haiku-4-5",
}
PROFILE_PREFIXES = ("global.", "us.", "eu.", "jp.", "apac.")
FAULTS = {429: "ThrottlingException", 500: "InternalServerException", 503: "ServiceUnavailableException"}
MAGIC_STATUS_RE = re.compile(r"\[\[bedrock:(429|500|503)\]\]")
MAGIC_SLOW_RE = re.compile(r"\[\[bedrock:slow=(\d+(?:\.\d*)?)\]\]")
MAGIC_EXCEPTION_RE = re.compile(r"\[\[bedrock:stream_exception=([A-Za-z]{1,60})\]\]")
MAX_SLEEP_SECONDS = 60.0
ROUTE_RE = re.compile(r"^/model/(?P<model>[^/]+)/(?P<action>invoke|invoke-with-response-stream)$")


class BedrockError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


class BedrockFaults:
    """Queued faults for Bedrock requests only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque = deque()

    def add(self, body: object) -> int:
        if not isinstance(body, dict):
            raise BedrockError(400, "ValidationException", "expected a JSON object")
        status, delay, count = body.get("status"), body.get("delay_seconds", 0), body.get("count", 1)
        if status is not None and status not in FAULTS:
            raise BedrockError(400, "ValidationException", f"status: must be one of {sorted(FAULTS)}")
        if not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_SLEEP_SECONDS:
            raise BedrockError(400, "ValidationException", "delay_seconds: a number from 0 to 60")
        if not isinstance(count, int) or not 1 <= count <= 1000:
            raise BedrockError(400, "ValidationException", "count: an integer from 1 to 1000")
        with self._lock:
            self._queue.extend({"status": status, "delay_seconds": float(delay)} for _ in range(count))
            return len(self._queue)

    def take(self) -> Optional[dict]:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def clear(self) -> int:
        with self._lock:
            cleared = len(self._queue)
            self._queue.clear()
            return cleared


def anthropic_model(model_id: str) -> str:
    """The Anthropic model an inference profile id serves; Bedrock's 400 for anything else."""
    for prefix in PROFILE_PREFIXES:
        if model_id.startswith(prefix) and model_id[len(prefix):] in BASE_MODELS:
            return BASE_MODELS[model_id[len(prefix):]]
    if model_id in BASE_MODELS:
        raise BedrockError(400, "ValidationException",
                           f"Invocation of model ID {model_id} with on-demand throughput isn't supported. Retry "
                           "your request with the ID or ARN of an inference profile that contains this model.")
    raise BedrockError(400, "ValidationException", "The provided model identifier is invalid.")


def authentication(authorization: str) -> Tuple[str, str]:
    """(how the request was authenticated, the credential to fingerprint): SigV4 or a Bedrock API key."""
    match = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/[^,]+/bedrock/aws4_request, ?SignedHeaders=[^,]+, ?"
                     r"Signature=[0-9a-f]{64}$", authorization.strip())
    if match:
        return "sigv4", match.group(1)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "bearer", token.strip()
    raise BedrockError(403, "AccessDeniedException", "Missing or malformed authentication: sign the request "
                                                     "with SigV4 for service bedrock, or send a Bedrock API key.")


def messages_body(raw: bytes, model: str) -> Tuple[dict, list]:
    """The Messages API body the stand-in answers, from Bedrock's: `model` comes from the path."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise BedrockError(400, "ValidationException", "Malformed input request: not JSON") from None
    if not isinstance(body, dict):
        raise BedrockError(400, "ValidationException", "Malformed input request: expected an object")
    if not isinstance(body.pop("anthropic_version", None), str):
        raise BedrockError(400, "ValidationException", "Malformed input request: anthropic_version is required")
    for field in ("model", "stream"):
        if field in body:
            raise BedrockError(400, "ValidationException",
                               f"Malformed input request: extraneous key [{field}] is not permitted")
    betas = body.pop("anthropic_beta", [])
    return {**body, "model": model}, betas if isinstance(betas, list) else []


def frame(payload: bytes, event_type: str = "chunk", message_type: str = "event") -> bytes:
    """One AWS event stream message: prelude (lengths, CRC), string headers, payload, message CRC. An exception
    frame names its code in `:exception-type` where an event names its type in `:event-type`."""
    headers = b""
    kind = ":exception-type" if message_type == "exception" else ":event-type"
    for name, value in ((kind, event_type), (":content-type", "application/json"),
                        (":message-type", message_type)):
        encoded = value.encode()
        headers += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(encoded)) + encoded
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + headers + payload
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


def chunk(event: str, data: dict) -> bytes:
    encoded = json.dumps({"type": event, **data}).encode()
    return frame(json.dumps({"bytes": base64.b64encode(encoded).decode()}).encode())


def stream_frames(message: dict, events: Callable[[dict], Iterator[Tuple[str, dict]]],
                  started: float) -> Iterator[Tuple[str, bytes]]:
    """The message's events as Bedrock frames; message_stop carries Bedrock's invocation metrics."""
    for event, data in events(message):
        if event == "message_stop":
            usage = message["usage"]
            data = {**data, "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": usage["input_tokens"], "outputTokenCount": usage["output_tokens"],
                "invocationLatency": int((time.monotonic() - started) * 1000), "firstByteLatency": 1}}
        yield event, chunk(event, data)


class EventStreamReply:
    """A Bedrock response stream, sent by the stand-in's handler."""

    content_type = "application/vnd.amazon.eventstream"

    def __init__(self, frames: Iterator[Tuple[str, bytes]], cut: bool, exception: Optional[str] = None) -> None:
        self.frames, self.cut, self.exception = frames, cut, exception

    def send(self, handler, headers: dict) -> None:
        handler.close_connection = True
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", self.content_type)
            handler.send_header("Transfer-Encoding", "chunked")
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Connection", "close")
            handler.end_headers()
            for event, data in self.frames:
                handler.write_chunk(data)
                if self.cut and event == "content_block_delta":
                    return
                if self.exception and event == "content_block_delta":
                    payload = {"message": f"{self.exception} (stand-in fault injection)", "originalStatusCode": 500}
                    handler.write_chunk(frame(json.dumps(payload).encode(), self.exception, "exception"))
                    break
            handler.write_chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            pass


def magic(text: str) -> Tuple[float, Optional[int]]:
    slow = MAGIC_SLOW_RE.search(text)
    status = MAGIC_STATUS_RE.search(text)
    return (min(float(slow.group(1)), MAX_SLEEP_SECONDS) if slow else 0.0), (int(status.group(1)) if status else None)


def invoke(handler, answer: Callable[..., dict], record: Callable[..., None],
           user_text: Callable[[dict], str], events: Callable[[dict], Iterator[Tuple[str, dict]]],
           faults: BedrockFaults) -> Tuple[int, object, dict]:
    """Answer one Bedrock runtime request; (status, payload, headers) as the stand-in's routes return."""
    started = time.monotonic()
    match = ROUTE_RE.match(handler.route_path)
    raw = handler.read_body()
    if handler.command != "POST" or match is None:
        raise BedrockError(404, "ResourceNotFoundException", f"{handler.command} {handler.route_path}: not found")
    from urllib.parse import unquote

    model_id = unquote(match.group("model"))
    how, credential = authentication(handler.headers.get("Authorization", ""))
    body, betas = messages_body(raw, anthropic_model(model_id))
    streamed = match.group("action") == "invoke-with-response-stream"
    message = answer(body, lambda usage: record(body, credential, how, usage, betas, model_id, streamed))
    text = user_text(body)
    queued = faults.take()
    delay, status = magic(text)
    if queued is not None:
        delay, status = delay + queued["delay_seconds"], queued["status"] or status
    if delay:
        time.sleep(delay)
    if status is not None:
        raise BedrockError(status, FAULTS[status], f"{FAULTS[status]} (stand-in fault injection)")
    usage = message["usage"]
    headers = {"X-Amzn-Bedrock-Input-Token-Count": str(usage["input_tokens"]),
               "X-Amzn-Bedrock-Output-Token-Count": str(usage["output_tokens"])}
    if streamed:
        exception = MAGIC_EXCEPTION_RE.search(text)
        return 200, EventStreamReply(stream_frames(message, events, started), "[[bedrock:stream_cut]]" in text,
                                     exception.group(1) if exception else None), {}
    return 200, message, headers


def error_payload(error: BedrockError) -> Tuple[int, dict, dict]:
    return error.status, {"message": error.message}, {"x-amzn-ErrorType": f"{error.kind}:http://internal.amazon.com/"}
