"""What the Lambda Web Adapter does with an invocation, for the local stack and the tests.

Deployed, the adapter (a Rust extension from its Lambda layer) receives API Gateway's proxy event through
the Runtime API, turns it into an HTTP request to the function's web server and, in response_stream mode,
hands the response body to Lambda's response stream as the server writes it:
https://github.com/awslabs/aws-lambda-web-adapter (README: "Request Context", "AWS_LWA_INVOKE_MODE";
src/lib.rs: the request context is *inserted* as the `x-amzn-request-context` header, replacing a
caller's header of that name, and the Lambda context as `x-amzn-lambda-context`).

`invoke` does the same over HTTP: method, path and query from the event, every copy of every header
(multiValueHeaders), the body (base64 when the event says so), the two context headers; the response
comes back as (status, headers, body chunks as they arrive). Closing the chunks closes the connection,
which the web server sees as a client gone.
"""
from __future__ import annotations

import base64
import http.client
import json
import urllib.parse
from typing import Any, Iterator, List, Mapping, Tuple

CONTEXT_HEADERS = ("x-amzn-request-context", "x-amzn-lambda-context")
CHUNK = 64 * 1024


def request_of(event: Mapping[str, Any]) -> Tuple[str, str, List[Tuple[str, str]], bytes]:
    """(method, path with query, headers, body) of the HTTP request the adapter sends for `event`."""
    query = urllib.parse.urlencode([(name, value) for name, values in
                                    (event.get("multiValueQueryStringParameters") or {}).items() for value in values])
    path = event.get("path") or "/"
    copies = event.get("multiValueHeaders") or {name: [value] for name, value in (event.get("headers") or {}).items()}
    headers = [(name, value) for name, values in copies.items() if name.lower() not in CONTEXT_HEADERS
               for value in values]
    headers.append(("x-amzn-request-context", json.dumps(event.get("requestContext") or {})))
    headers.append(("x-amzn-lambda-context", json.dumps({"request_id": (event.get("requestContext") or {})
                                                         .get("requestId"), "deadline": 0})))
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8")
    return event.get("httpMethod") or "GET", path + (f"?{query}" if query else ""), headers, body


class Invocation:
    """One invocation's HTTP response: its status and headers, then its body chunk by chunk."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self._connection, self._response = connection, response
        self.status = response.status
        self.headers: List[Tuple[str, str]] = response.getheaders()

    def __iter__(self) -> Iterator[bytes]:
        try:
            while True:
                chunk = self._response.read1(CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        # The response holds its own reference to the socket: closing only the connection would leave it
        # open, and the server would never see the client go.
        self._response.close()
        self._connection.close()


def invoke(app_url: str, event: Mapping[str, Any], timeout: float = 900) -> Invocation:
    parsed = urllib.parse.urlparse(app_url)
    method, path, headers, body = request_of(event)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    connection.putrequest(method, path, skip_host=any(name.lower() == "host" for name, _ in headers),
                          skip_accept_encoding=True)
    for name, value in headers:
        if name.lower() not in ("content-length", "transfer-encoding", "connection"):
            connection.putheader(name, value)
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    return Invocation(connection, connection.getresponse())
