"""API Gateway as `make run` serves it: one address, each route sent to the function that runs it deployed.

    POST /v1/messages, POST /ai/chat   the streaming function's app (chalicelib/stream_host), reached as
                                       the deployed stack reaches it: the REQUEST authorizer
                                       (app.tenant_request_auth) runs first and its refusal is the
                                       UNAUTHORIZED gateway response; the proxy event with the authorizer's
                                       context goes through dev/stack/web_adapter.py (what the Lambda Web Adapter
                                       does), and the body is sent on chunk by chunk as the app writes it
    everything else                    chalice local (dev/stack/local_api.py), answered whole, as today

    python -m dev.stack.local_gateway --port N --chalice-url URL --stream-url URL

Nothing here is deployed; dev/stack/local_stack.py starts it with the app's environment.
"""
from __future__ import annotations

import argparse
import http.client
import socket
import sys
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]

from dev.deploy import gateway_responses  # noqa: E402
from dev.stack import web_adapter  # noqa: E402

STAGE = "api"  # chalice local's stage name in the method ARN
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
              "proxy-authenticate", "content-length"}


def streamed_routes() -> Dict[str, Any]:
    from chalicelib.ai import calls

    return calls.STREAMABLE


def authorize(method: str, path: str, headers: List[Tuple[str, str]]) -> Optional[Dict[str, Any]]:
    """The REQUEST authorizer's decision as API Gateway applies it: the context to pass on, or None (401)."""
    import app

    arn = f"arn:aws:execute-api:us-east-1:000000000000:local/{STAGE}/{method}{path}"
    event = {"type": "REQUEST", "methodArn": arn, "resource": path, "path": path, "httpMethod": method,
             "headers": dict(headers), "multiValueHeaders": _copies(headers)}
    try:
        decision = app.tenant_request_auth(event, None)
    except Exception:
        return None
    statements = decision.get("policyDocument", {}).get("Statement", [])
    if not any(s.get("Effect") == "Allow" for s in statements):
        return None
    return {**(decision.get("context") or {}), "principalId": decision.get("principalId")}


def _copies(headers: List[Tuple[str, str]]) -> Dict[str, List[str]]:
    copies: Dict[str, List[str]] = {}
    for name, value in headers:
        copies.setdefault(name, []).append(value)
    return copies


def proxy_event(method: str, path: str, query: str, headers: List[Tuple[str, str]], body: bytes,
                authorizer: Dict[str, Any], source_ip: str, request_id: str) -> Dict[str, Any]:
    """The Lambda proxy event API Gateway sends the streaming function."""
    copies = _copies(headers)
    return {
        "resource": path, "path": path, "httpMethod": method,
        "headers": {name: values[-1] for name, values in copies.items()}, "multiValueHeaders": copies,
        "multiValueQueryStringParameters": urllib.parse.parse_qs(query) or None,
        "pathParameters": None, "stageVariables": None,
        "requestContext": {"requestId": request_id, "resourcePath": path, "httpMethod": method, "stage": STAGE,
                           "path": f"/{STAGE}{path}", "identity": {"sourceIp": source_ip},
                           "requestTimeEpoch": int(time.time() * 1000), "authorizer": authorizer},
        "body": body.decode("utf-8", errors="surrogateescape"), "isBase64Encoded": False,
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "Gateway"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every method goes on; the function behind answers what it does not serve
            return self.handle_any
        raise AttributeError(name)

    def handle_any(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = [(name, value) for name, value in self.headers.items()]
        if self.command == "POST" and parsed.path in streamed_routes():
            self.stream(parsed.path, parsed.query, headers, body)
        else:
            self.to_chalice(body, headers)

    def to_chalice(self, body: bytes, headers: List[Tuple[str, str]]) -> None:
        target = urllib.parse.urlsplit(self.server.chalice_url)
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=900)
        try:
            connection.request(self.command, self.path, body=body or None,
                               headers=_forwarded(headers, len(body)))
            response = connection.getresponse()
            self.reply(response.status, response.getheaders(), response.read())
        finally:
            connection.close()

    def reply(self, status: int, headers: List[Tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP and name.lower() not in ("date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def stream(self, path: str, query: str, headers: List[Tuple[str, str]], body: bytes) -> None:
        request_id = str(uuid.uuid4())
        authorizer = authorize(self.command, path, headers)
        if authorizer is None:
            text = gateway_responses.deployed_body("UNAUTHORIZED", "Unauthorized")
            self.reply(401, [("Content-Type", "application/json")]
                       + [(name, request_id) for name in gateway_responses.REQUEST_ID_HEADERS], text)
            return
        event = proxy_event(self.command, path, query, headers, body, authorizer, self.client_address[0], request_id)
        invocation = web_adapter.invoke(self.server.stream_url, event)
        try:
            self.send_response_only(invocation.status)
            for name, value in invocation.headers:
                if name.lower() not in HOP_BY_HOP and name.lower() not in ("date", "server"):
                    self.send_header(name, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in invocation:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client left; closing the invocation tells the function
        finally:
            invocation.close()


def _forwarded(headers: List[Tuple[str, str]], length: int) -> Dict[str, str]:
    # Repeated headers travel folded into one line, as chalice local's own server reads them.
    folded: Dict[str, str] = {}
    for name, value in headers:
        if name.lower() in HOP_BY_HOP:
            continue
        key = next((k for k in folded if k.lower() == name.lower()), name)
        folded[key] = f"{folded[key]}, {value}" if key in folded else value
    if length:
        folded["Content-Length"] = str(length)
    return folded


class Gateway(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port: int, chalice_url: str, stream_url: str) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.chalice_url, self.stream_url = chalice_url, stream_url


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chalice-url", required=True)
    parser.add_argument("--stream-url", required=True)
    args = parser.parse_args(argv)
    # The authorizer as deployed, its own 30 s cache of decisions included, imported before the first request.
    import app  # noqa: F401

    Gateway(args.port, args.chalice_url, args.stream_url).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
