"""The end-to-end tests' stack: dev/stack.py's LocalStack (what `make run` starts), on free ports."""
from __future__ import annotations

import time

import pytest

import stack  # dev/stack.py, put on sys.path by tests/conftest.py
from test_local_stack import free_ports


@pytest.fixture(scope="module")
def local_stack():
    """One stack per test module: moto server, the stand-in and chalice local as real processes."""
    started = time.monotonic()
    running = stack.LocalStack(*free_ports(3)).start()
    print(f"LocalStack ready in {time.monotonic() - started:.1f} s")
    try:
        yield running
    finally:
        running.stop()
