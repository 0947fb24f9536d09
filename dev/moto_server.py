"""moto in server mode, with each request handled atomically.

moto's DynamoDB backend is not safe under concurrent requests: a transaction
that is cancelled restores a copy of the whole table taken when it started,
silently undoing writes other requests made meanwhile. DynamoDB itself
serialises conflicting writes, so this server accepts connections on many
threads but runs one request at a time through moto's backends. Same options
as `python -m moto.server`: `-H HOST -p PORT`.
"""
from __future__ import annotations

import argparse
import os
import signal
import threading
from typing import Any, Callable, Iterable

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class OneRequestAtATime:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self.lock:
            return list(self.app(environ, start_response))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    # Exit at once: tearing down moto's in-memory backends at interpreter exit takes seconds.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, OneRequestAtATime(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
