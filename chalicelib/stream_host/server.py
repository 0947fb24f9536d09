"""The HTTP server the adapter talks to: the standard library's WSGI server, a thread per request.

Deployed, Lambda hands an instance one invocation at a time, so one thread serves; locally (`make run`)
several requests run at once. Each chunk the app yields is written to the socket at once (TCP_NODELAY:
an event is never held back waiting for the previous one's ACK).
"""
from __future__ import annotations

import socket
import socketserver
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from chalicelib.logs import get_logger
from chalicelib.stream_host.web import application

log = get_logger("stream_host")


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128


class RequestHandler(WSGIRequestHandler):
    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """The app logs each request itself (chalicelib.web.envelope_middleware), with its keys."""


def warm() -> None:
    """Import and prime the model SDK and botocore before the adapter's readiness check passes: Lambda's init
    phase (with SnapStart, once per published version) pays for it, not the first caller (about 2.5 s)."""
    from chalicelib import snapshot

    snapshot.prime(ai=True)


def make(host: str, port: int) -> ThreadingWSGIServer:
    return make_server(host, port, application, ThreadingWSGIServer, RequestHandler)


def serve(host: str, port: int) -> None:
    server = make(host, port)
    log.info("streaming function listening", extra={"fields": {"port": server.server_port}})
    server.serve_forever()
