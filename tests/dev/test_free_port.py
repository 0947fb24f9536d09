"""A port from `free_port` stays bound on Linux (the newest 256): no other process is given it, its server can listen."""
import errno
import socket
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dev.stack import local_stack as stack

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="ports are held on Linux only (dev/stack/local_stack.py)")


def test_no_other_socket_can_bind_a_port_it_handed_out():
    port = stack.free_port()
    with socket.socket() as other, pytest.raises(OSError) as refused:
        other.bind(("127.0.0.1", port))  # as a server without SO_REUSEADDR would
    assert refused.value.errno == errno.EADDRINUSE


def test_another_process_asking_for_free_ports_is_never_given_a_held_one():
    held = {stack.free_port() for _ in range(64)}
    asked = subprocess.run(
        [sys.executable, "-c", "from dev.stack import local_stack as s; print(*(s.free_port() for _ in range(256)))"],
        cwd=str(stack.ROOT), capture_output=True, text=True, check=True, timeout=60)
    given = {int(port) for port in asked.stdout.split()}
    assert len(given) == 256 and not given & held


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"mine")

    def log_message(self, *args):
        pass


def test_the_server_started_on_it_listens_and_answers():
    port = stack.free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Hello)  # http.server binds with SO_REUSEADDR, as the stack's do
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.read() == b"mine"
        assert not stack.port_is_free(port)
    finally:
        server.shutdown()
        server.server_close()
    assert stack.port_is_free(port)


def test_only_the_newest_are_held():
    ports = [stack.free_port() for _ in range(stack._RESERVED_MOST + 1)]
    with socket.socket() as other:
        other.bind(("127.0.0.1", ports[0]))  # the oldest was let go
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", ports[1]))
