"""Local stand-in for the Anthropic Messages API, for development and tests.

Point the official SDK at it::

    client = anthropic.Anthropic(base_url="http://127.0.0.1:8787", api_key="sk-anything")

It answers ``POST /v1/messages`` (whole, or with ``"stream": true`` as Anthropic's event stream:
message_start, ping, content_block_start / _delta / _stop with text, thinking, signature and
input_json deltas, message_delta, message_stop), ``POST /v1/messages/count_tokens``, and
``GET /v1/models`` and ``/v1/models/{id}``, and the Message Batches API (``/v1/messages/batches*``,
dev/standin/batches.py), with the real shapes. Replies are deterministic and echo
the settings received (dev/standin/reply.py)::

    [stand-in] model=<model>; system=<first 200 chars of system text, or "(none)">; reply to: <first 200 chars of the last user turn>

Given tools, it calls one (a tool_use block, stop_reason "tool_use") until the last user turn holds a
tool_result: the one ``[[standin:tool=NAME]]`` or ``[[standin:tool=NAME {"json": "input"}]]`` in the last
user turn names (with that input), else the first. A request from Claude Code (the ``claude-code-20250219``
beta), which always offers its dozen tools, calls one only when so directed, as a model asked to say hello
would answer in text. Messages may have the ``system`` role; ``anthropic-beta`` is recorded; ``speed``
("fast") is echoed in the usage; given thinking, a thinking block comes first; stop_sequences cut the text at the first
one it contains (stop_reason "stop_sequence"). Every message has its own id.

A key is required (``Authorization: Bearer <key>`` or ``x-api-key: <key>``);
any key is accepted except those starting with ``sk-invalid``, which get a 401.
Keys are never stored or logged: requests are recorded with
``key_fingerprint`` = first 12 hex chars of sha256(key).

Token rule
----------
A text's token count is ceil(len(text.encode("utf-8")) / 4), minimum 1 for
non-empty text (0 for empty text). Images, PDFs, tools and the prompt cache
follow Anthropic's documented rules (dev/standin/usage.py). With only text,
input_tokens = the tokens of each text (a string, or each text block), so it
never exceeds the UTF-8 byte count of the system and message texts.
output_tokens = tokens(thinking) + tokens(reply text or tool input). If the reply would pass
max_tokens it is cut to max_tokens*4 UTF-8 bytes (on a character boundary),
stop_reason is "max_tokens" and output_tokens = max_tokens.

Fault switches
--------------
Magic text anywhere in the last user message:

* ``[[standin:429]]``          -> 429 rate_limit_error with ``retry-after: 7``
* ``[[standin:529]]``          -> 529 overloaded_error
* ``[[standin:500]]``          -> 500 api_error
* ``[[standin:slow=SECONDS]]`` -> sleep SECONDS (float, capped at 60), then answer
* ``[[standin:event_delay=SECONDS]]`` -> a stream waits SECONDS before each event after message_start;
  a whole reply waits as long as its stream would take
* ``[[standin:stream_error]]`` -> a stream sends an overloaded_error event after its first delta and ends
* ``[[standin:stream_cut]]``   -> a stream closes the connection after its first delta
* ``[[standin:stream_overloaded_first]]`` -> a 200 whose stream's only event is an overloaded_error (before
  message_start), as Anthropic refuses a call it cannot take once its stream is open
* ``[[standin:stream_empty]]`` -> a 200 whose stream ends before any event

Organisation limits: with STANDIN_ORG_LIMITS=``model=requests/input/output;...`` (``*`` for the
rest) each model's minute is limited (output reserved at max_tokens, then trued up to the answer's, as
Anthropic documents) and every answer carries ``anthropic-ratelimit-*`` headers; past a limit, 429
rate_limit_error with ``retry-after`` (dev/standin/org_limits.py).

Control endpoints (no key needed):

* ``POST /_standin/faults`` ``{"status": 429|529|500|401, "count": N}`` makes the
  next N ``/v1/messages`` requests fail with that status;
  ``{"delay_seconds": X, "count": N}`` delays the next N (both keys together
  delay, then fail). ``count`` defaults to 1.
* ``GET /_standin/faults`` lists the queue; ``DELETE /_standin/faults`` clears it.
* ``GET /_standin/requests`` lists the last 100 valid ``/v1/messages`` requests,
  newest last, with the usage each was billed; ``DELETE /_standin/requests`` clears them.
* ``GET /_standin/org-limits`` the organisation limits and, per model and minute, what they admitted
  (requests, input and output tokens) and how many requests they refused.
* ``GET /health`` -> ``{"status": "ok"}``.

Order of checks for ``/v1/messages``: key present and not rejected, body valid,
request recorded, queued fault, magic-text fault, reply.

Run it: ``python -m dev.standin [--host HOST] [--port PORT]``
(port defaults to $ANTHROPIC_STANDIN_PORT or 8787).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dev.standin import bedrock
from dev.standin.faults import fault_error, magic_delay, magic_event_delay, magic_status, parse_fault_spec
from dev.standin.reply import last_user_turn, sse, stream_events
from dev.standin.state import StandinState, answer, key_fingerprint, record_of, short_hash
from dev.standin.usage import bill, texts_of
from dev.standin.validation import RequestError, invalid, validate_request
DEFAULT_PORT = 8787
PORT_ENV_VAR = "ANTHROPIC_STANDIN_PORT"
MAX_BODY_BYTES = 10 * 1024 * 1024
REJECTED_KEY_PREFIX = "sk-invalid"
POLL_INTERVAL_SECONDS = 0.1

STANDIN_MODELS = ("claude-opus-5-5", "claude-opus-5", "claude-opus-4-8", "claude-opus-4-7", "claude-opus-4-6", "claude-sonnet-4-6",
                  "claude-haiku-4-5")


class JsonLines:
    """A response body of JSON Lines (batch results)."""

    def __init__(self, text: str) -> None:
        self.text = text


class StreamedReply:
    """A message to send as an event stream, with its stream faults."""

    def __init__(self, message: dict, event_delay: float, error: bool, cut: bool, error_first: bool = False,
                 empty: bool = False) -> None:
        self.message, self.event_delay, self.error, self.cut = message, event_delay, error, cut
        self.error_first, self.empty = error_first, empty


def model_info(model: str) -> dict:
    return {"type": "model", "id": model, "display_name": model, "created_at": "1970-01-01T00:00:00Z",
            "lifecycle": "active"}


class StandinHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY the body waits ~40 ms for the
    # client's delayed ACK on every call.
    disable_nagle_algorithm = True
    server_version = "AnthropicStandin/1.0"
    timeout = 120

    @property
    def state(self) -> StandinState:
        return self.server.standin_state

    @property
    def route_path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_PATCH(self) -> None:
        self.dispatch("PATCH")

    def routes(self) -> dict:
        return {
            "/v1/messages": {"POST": self.create_message},
            "/v1/messages/count_tokens": {"POST": self.count_message_tokens},
            "/v1/models": {"GET": self.list_models},
            "/health": {"GET": self.health},
            "/_standin/faults": {
                "GET": self.list_faults,
                "POST": self.add_faults,
                "DELETE": self.clear_faults,
            },
            "/_standin/requests": {
                "GET": self.list_requests,
                "DELETE": self.clear_requests,
            },
            "/_standin/bedrock/faults": {"POST": self.add_bedrock_faults, "DELETE": self.clear_bedrock_faults},
            "/_standin/org-limits": {"GET": self.org_limit_minutes},
        }

    def dispatch(self, method: str) -> None:
        request_id = "req_standin_" + short_hash(f"{id(self.server)}:{self.state.next_sequence()}")
        try:
            handlers = self.routes().get(self.route_path)
            if handlers is None and self.route_path.startswith("/v1/models/"):
                handlers = {"GET": self.get_model}
            if handlers is None and self.route_path.startswith("/v1/messages/batches"):
                handlers = self.batch_routes()
            if handlers is None and self.route_path.startswith("/model/"):
                handlers = {"POST": self.bedrock_invoke}
            if handlers is None:
                self.discard_body()
                raise RequestError(404, "not_found_error", f"{method} {self.route_path}: not found")
            if method not in handlers:
                self.discard_body()
                raise RequestError(405, "invalid_request_error", f"{method} not allowed on {self.route_path}")
            status, payload, headers = handlers[method](request_id)
        except RequestError as error:
            status, payload, headers = error.status, self.error_body(error, request_id), error.headers
        except Exception as exc:
            self.close_connection = True
            self.log_message("internal error: %s", type(exc).__name__)
            error = RequestError(500, "api_error", "the stand-in failed to handle the request")
            status, payload, headers = 500, self.error_body(error, request_id), {}
        if self.route_path.startswith("/model/"):  # Bedrock names its request id its own way
            if isinstance(payload, bedrock.EventStreamReply):
                payload.send(self, {"x-amzn-RequestId": request_id})
            else:
                self.send_json(status, payload, {"x-amzn-RequestId": request_id, **headers})
        elif isinstance(payload, JsonLines):
            self.send_bytes(status, payload.text.encode(), "application/binary", {"request-id": request_id})
        elif isinstance(payload, StreamedReply):
            self.send_stream(payload, {"request-id": request_id, **headers})
        else:
            self.send_json(status, payload, {"request-id": request_id, **headers})

    @staticmethod
    def error_body(error: RequestError, request_id: str) -> dict:
        return {
            "type": "error",
            "error": {"type": error.error_type, "message": error.message},
            "request_id": request_id,
        }

    def content_length(self) -> int:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise RequestError(
                411, "invalid_request_error", "chunked request bodies are not supported; send Content-Length"
            )
        raw = self.headers.get("Content-Length", "0")
        try:
            length = int(raw)
        except ValueError:
            self.close_connection = True
            raise invalid("Content-Length header is not an integer") from None
        if length < 0:
            self.close_connection = True
            raise invalid("Content-Length header is negative")
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise RequestError(413, "request_too_large", f"request body exceeds {MAX_BODY_BYTES} bytes")
        return length

    def read_body(self) -> bytes:
        length = self.content_length()
        return self.rfile.read(length) if length else b""

    def discard_body(self) -> None:
        try:
            self.read_body()
        except RequestError:
            pass

    def read_json(self) -> object:
        raw = self.read_body()
        if not raw.strip():
            raise invalid("request body is empty; expected a JSON object")
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise invalid(f"request body is not valid JSON: {exc}") from None

    def api_key(self) -> str | None:
        key = self.headers.get("x-api-key", "").strip()
        if key:
            return key
        scheme, _, token = self.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None

    def authenticate(self) -> str:
        key = self.api_key()
        if key is None:
            self.discard_body()
            raise RequestError(
                401, "authentication_error", "missing API key: send x-api-key or Authorization: Bearer <key>"
            )
        if key.startswith(REJECTED_KEY_PREFIX):
            self.discard_body()
            raise RequestError(401, "authentication_error", "invalid x-api-key")
        return key

    def create_message(self, request_id: str) -> tuple[int, object, dict]:
        key = self.authenticate()
        body = validate_request(self.read_json())
        betas = [b.strip() for b in self.headers.get("anthropic-beta", "").split(",") if b.strip()]
        auth_header = "x-api-key" if self.headers.get("x-api-key", "").strip() else "authorization"
        # the organisation's per-minute limits (dev/standin/org_limits.py), before anything is recorded
        admitted_at = time.time()
        limits = self.state.org_limits.admit(body["model"], bill(body, for_count=True).tokens, body["max_tokens"],
                                             now=admitted_at)
        message = answer(self.state, body, lambda usage: self.state.record(
            record_of(body, key, auth_header, usage, betas)), tuple(betas))
        # the answer is written at once: its unused output goes back now (a delayed reply's too)
        self.state.org_limits.settle(body["model"], body["max_tokens"], message["usage"]["output_tokens"], admitted_at)
        text = texts_of(last_user_turn(body))
        self.apply_queued_fault()
        self.apply_magic_faults(text)
        delay = magic_event_delay(text)
        if body.get("stream"):
            return 200, StreamedReply(message, delay, "[[standin:stream_error]]" in text,
                                      "[[standin:stream_cut]]" in text,
                                      "[[standin:stream_overloaded_first]]" in text,
                                      "[[standin:stream_empty]]" in text), limits
        if delay:  # a whole reply takes as long to generate as its stream would
            time.sleep(delay * (sum(1 for _ in stream_events(message)) - 1))
        return 200, message, limits

    def count_message_tokens(self, request_id: str) -> tuple[int, dict, dict]:
        self.authenticate()
        body = validate_request(self.read_json(), counting=True)
        return 200, {"input_tokens": bill(body, for_count=True).tokens}, {}

    def list_models(self, request_id: str) -> tuple[int, dict, dict]:
        self.authenticate()
        data = [model_info(model) for model in STANDIN_MODELS]
        return 200, {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}, {}

    def get_model(self, request_id: str) -> tuple[int, dict, dict]:
        self.authenticate()
        model = self.route_path.removeprefix("/v1/models/")
        if model not in STANDIN_MODELS:
            raise RequestError(404, "not_found_error", f"model: {model}")
        return 200, model_info(model), {}

    # --- Message Batches (dev/standin/batches.py) ---

    def batch_routes(self) -> dict:
        rest = self.route_path.removeprefix("/v1/messages/batches").strip("/").split("/")
        if rest == [""]:
            return {"POST": self.create_batch, "GET": self.list_batches}
        if len(rest) == 1:
            return {"GET": self.get_batch, "DELETE": self.delete_batch}
        if len(rest) == 2 and rest[1] == "cancel":
            return {"POST": self.cancel_batch}
        if len(rest) == 2 and rest[1] == "results":
            return {"GET": self.batch_results}
        return {}

    def base_url(self) -> str:
        return f"http://{self.headers.get('Host', '127.0.0.1')}"

    def batch_id(self) -> str:
        return self.route_path.removeprefix("/v1/messages/batches/").split("/")[0]

    def found_batch(self, batch) -> object:
        if batch is None:
            raise RequestError(404, "not_found_error", f"message_batch: {self.batch_id()} not found")
        return batch

    def create_batch(self, request_id: str) -> tuple[int, dict, dict]:
        key = self.authenticate()
        body = self.read_json()
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests or not all(
                isinstance(r, dict) and isinstance(r.get("custom_id"), str) and isinstance(r.get("params"), dict)
                for r in requests):
            raise invalid("requests: must be a non-empty list of {custom_id, params}")
        if len({r["custom_id"] for r in requests}) != len(requests):
            raise invalid("requests: custom_id values must be unique")
        self.apply_queued_fault()
        return 200, self.state.batches.create(key_fingerprint(key), requests).view(self.base_url()), {}

    def list_batches(self, request_id: str) -> tuple[int, dict, dict]:
        key = self.authenticate()
        data = [b.view(self.base_url()) for b in self.state.batches.listing(key_fingerprint(key))]
        return 200, {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                     "last_id": data[-1]["id"] if data else None}, {}

    def get_batch(self, request_id: str) -> tuple[int, dict, dict]:
        owner = key_fingerprint(self.authenticate())
        return 200, self.found_batch(self.state.batches.get(owner, self.batch_id())).view(self.base_url()), {}

    def cancel_batch(self, request_id: str) -> tuple[int, dict, dict]:
        owner = key_fingerprint(self.authenticate())
        return 200, self.found_batch(self.state.batches.cancel(owner, self.batch_id())).view(self.base_url()), {}

    def delete_batch(self, request_id: str) -> tuple[int, dict, dict]:
        owner = key_fingerprint(self.authenticate())
        batch = self.found_batch(self.state.batches.delete(owner, self.batch_id()))
        if batch.results is None:
            raise invalid("a batch can be deleted only once it has ended; cancel it first")
        return 200, {"id": batch.id, "type": "message_batch_deleted"}, {}

    def batch_results(self, request_id: str) -> tuple[int, object, dict]:
        owner = key_fingerprint(self.authenticate())
        batch = self.found_batch(self.state.batches.get(owner, self.batch_id()))
        if batch.results is None:
            raise invalid(f"message_batch: {batch.id} has not ended; results are not ready")
        return 200, JsonLines("".join(json.dumps(line) + "\n" for line in batch.results)), {}

    def apply_queued_fault(self) -> None:
        fault = self.state.take_fault()
        if fault is None:
            return
        if fault["delay_seconds"]:
            time.sleep(fault["delay_seconds"])
        if fault["status"] is not None:
            raise fault_error(fault["status"])

    @staticmethod
    def apply_magic_faults(text: str) -> None:
        delay = magic_delay(text)
        if delay:
            time.sleep(delay)
        status = magic_status(text)
        if status is not None:
            raise fault_error(status)

    def bedrock_invoke(self, request_id: str) -> tuple[int, object, dict]:
        def record(body: dict, credential: str, how: str, usage: dict, betas: list, model_id: str,
                   streamed: bool) -> None:
            self.state.record({**record_of(body, credential, how, usage, betas), "provider": "bedrock",
                               "model_id": model_id, "stream": streamed})

        try:
            return bedrock.invoke(
                self, lambda body, recorded: answer(self.state, validate_request(body), recorded), record,
                lambda body: texts_of(last_user_turn(body)), stream_events, self.state.bedrock_faults)
        except RequestError as error:  # the Messages body itself is invalid
            return bedrock.error_payload(
                bedrock.BedrockError(error.status, "ValidationException", error.message))
        except bedrock.BedrockError as error:
            return bedrock.error_payload(error)

    def add_bedrock_faults(self, request_id: str) -> tuple[int, dict, dict]:
        try:
            return 200, {"queued": self.state.bedrock_faults.add(self.read_json())}, {}
        except bedrock.BedrockError as error:
            return bedrock.error_payload(error)

    def clear_bedrock_faults(self, request_id: str) -> tuple[int, dict, dict]:
        self.discard_body()
        return 200, {"cleared": self.state.bedrock_faults.clear()}, {}

    def health(self, request_id: str) -> tuple[int, dict, dict]:
        self.discard_body()
        return 200, {"status": "ok"}, {}

    def list_faults(self, request_id: str) -> tuple[int, list, dict]:
        self.discard_body()
        return 200, self.state.faults(), {}

    def add_faults(self, request_id: str) -> tuple[int, dict, dict]:
        fault, count = parse_fault_spec(self.read_json())
        return 200, {"queued": self.state.queue_faults(fault, count)}, {}

    def clear_faults(self, request_id: str) -> tuple[int, dict, dict]:
        self.discard_body()
        return 200, {"cleared": self.state.clear_faults()}, {}

    def list_requests(self, request_id: str) -> tuple[int, list, dict]:
        self.discard_body()
        return 200, self.state.requests(), {}

    def clear_requests(self, request_id: str) -> tuple[int, dict, dict]:
        self.discard_body()
        return 200, {"cleared": self.state.clear_requests()}, {}

    def org_limit_minutes(self, request_id: str) -> tuple[int, dict, dict]:
        self.discard_body()
        return 200, self.state.org_limits.minutes(), {}

    def send_json(self, status: int, payload: object, headers: dict) -> None:
        self.send_bytes(status, json.dumps(payload).encode("utf-8"), "application/json", headers)

    def send_bytes(self, status: int, data: bytes, content_type: str, headers: dict) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def send_stream(self, reply: "StreamedReply", headers: dict) -> None:
        """The message as an event stream, one chunk per event (chunked transfer encoding, as Anthropic
        sends it); a cut stream closes without the final chunk, which a client reads as a broken body."""
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            deltas = 0
            if reply.error_first:
                self.write_chunk(sse("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}))
            for event, data in () if reply.error_first or reply.empty else stream_events(reply.message):
                if event != "message_start" and reply.event_delay:
                    time.sleep(reply.event_delay)
                self.write_chunk(sse(event, data))
                deltas += event == "content_block_delta"
                if deltas and reply.cut:
                    return
                if deltas and reply.error:
                    self.write_chunk(sse("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}))
                    break
            self.write_chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def log_request(self, code: object = "-", size: object = "-") -> None:
        self.log_message("%s %s %s", self.command, self.route_path, getattr(code, "value", code))

    def log_message(self, format: str, *args: object) -> None:
        line = (format % args).replace("\r", " ").replace("\n", " ")
        sys.stderr.write(f"[anthropic-standin] {line}\n")


def make_server(host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), StandinHandler)
    server.daemon_threads = True
    server.standin_state = StandinState()
    return server


def serve_in_thread(host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    server = make_server(host, port)
    thread = threading.Thread(
        target=server.serve_forever, args=(POLL_INTERVAL_SECONDS,), name="anthropic-standin", daemon=True
    )
    thread.start()
    bound_host, bound_port = server.server_address[:2]
    return server, f"http://{bound_host}:{bound_port}"


def default_port() -> int:
    raw = os.environ.get(PORT_ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_PORT
    try:
        return int(raw)
    except ValueError:
        print(f"error: {PORT_ENV_VAR}={raw!r} is not an integer port", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Local stand-in for the Anthropic Messages API.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=None, help=f"port to bind (default ${PORT_ENV_VAR} or {DEFAULT_PORT})"
    )
    args = parser.parse_args(argv)
    if args.port is None:
        args.port = default_port()
    return args


def bind_or_exit(host: str, port: int) -> ThreadingHTTPServer:
    try:
        return make_server(host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            problem = f"port {port} on {host} is already in use"
        else:
            problem = f"cannot listen on {host}:{port} ({exc.strerror or exc})"
        message = f"error: {problem}; pass --port or set {PORT_ENV_VAR} to a free port"
        print(message, file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def install_stop_handlers(server: ThreadingHTTPServer) -> None:
    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server = bind_or_exit(args.host, args.port)
    install_stop_handlers(server)
    print(f"anthropic stand-in listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(POLL_INTERVAL_SECONDS)
    finally:
        server.server_close()
    print("anthropic stand-in stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
