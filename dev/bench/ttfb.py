"""Time to first byte of a streamed Messages API call on each path that runs here.

    python -m dev.bench.ttfb [--runs N] [--event-delay SECONDS]

Starts the local stack on free ports (as `make run` does), signs up a tenant and asks, with the stand-in
waiting SECONDS before each event after message_start (a reply of about 20 events), for:

  upstream          the stand-in itself, streamed (what Anthropic's API would send)
  make run, whole   POST /v1/messages without stream: the local gateway, the streaming function's app
                    (the answer assembled from the upstream stream), as deployed
  make run, stream  POST /v1/messages with stream: true, the same way: each event as produced
  in-process        chalicelib.ai.streaming in this process, where the function yields its first chunk

and prints, per path, the median time to the first body byte, to the first text delta and to the last
byte, in milliseconds, over HTTP from a client on this machine.
"""
from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
import urllib.parse
from typing import Callable, Dict, List, Tuple

from dev.stack import local_stack as stack

PROMPT = "ttfb probe " + "and some more words " * 8


def body(delay: float, stream: bool, model: str = "claude-haiku-4-5") -> bytes:
    return json.dumps({"model": model, "max_tokens": 256, "stream": stream,
                       "messages": [{"role": "user", "content": f"[[standin:event_delay={delay}]] {PROMPT}"}]}).encode()


def timed_post(url: str, payload: bytes, headers: Dict[str, str]) -> Tuple[float, float, float]:
    """(seconds to the first body byte, to the first text delta, to the last byte) of one POST."""
    parsed = urllib.parse.urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    started = time.perf_counter()
    connection.request("POST", parsed.path, body=payload, headers={"Content-Type": "application/json", **headers})
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"{url}: {response.status} {response.read()[:200]!r}")
    seen = response.read1(65536)
    first = time.perf_counter() - started
    text = first if b"text_delta" in seen else None
    while True:
        chunk = response.read1(65536)
        if not chunk:
            break
        seen += chunk
        if text is None and b"text_delta" in seen:
            text = time.perf_counter() - started
    connection.close()
    last = time.perf_counter() - started
    return first, text if text is not None else last, last


def call_json(url: str, method: str, payload: dict, token: str = "") -> dict:
    parsed = urllib.parse.urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    connection.request(method, parsed.path, body=json.dumps(payload).encode(), headers=headers)
    return json.loads(connection.getresponse().read())


def tenant_key(running: stack.LocalStack) -> str:
    """A new tenant's API key, its per-minute limit raised so every run is admitted."""
    api_url = running.api_url
    slug = f"ttfb-{int(time.time() * 1000) % 10**8}"
    email, password = f"o@{slug}.example.com", "correct-horse-battery"
    created = call_json(api_url + "/tenants", "POST", {"company_name": "TTFB", "slug": slug, "email": email,
                                                       "password": password})
    call_json(f"{api_url}/admin/tenants/{created['tenant_id']}/limits", "PUT", {"requests_per_minute": 1000},
              stack.operator_token(running.env))
    token = call_json(api_url + "/auth/login", "POST", {"tenant": slug, "email": email,
                                                        "password": password})["access_token"]
    return call_json(api_url + "/api-keys", "POST", {"name": "ttfb"}, token)["key"]


def in_process(running: stack.LocalStack, key: str, delay: float) -> Callable[[], Tuple[float, float]]:
    stack.run_app_in_process(running.moto_port, running.standin_url, stack.LOCAL_JWT_SECRET,
                             stack.LOCAL_OPERATOR_SECRET, stack.STANDIN_POOL_KEY)
    from chalicelib.ai import messages_api, streaming
    from chalicelib.ai.gateway import Gateway
    from chalicelib.identity.resolve import resolve

    ctx, gateway = resolve(f"Bearer {key}"), Gateway()
    call, _ = messages_api.parse(json.loads(body(delay, True)))

    def measure() -> Tuple[float, float, float]:
        started = time.perf_counter()
        chunks = iter(streaming.open_stream(gateway, ctx, messages_api.FEATURE, call))
        next(chunks)
        first = time.perf_counter() - started
        text = None
        for chunk in chunks:
            if text is None and b"text_delta" in chunk:
                text = time.perf_counter() - started
        return first, text or first, time.perf_counter() - started

    return measure


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--event-delay", type=float, default=0.4)
    args = parser.parse_args(argv)
    api_port, moto_port, standin_port = (stack.free_port() for _ in range(3))
    with stack.LocalStack(api_port, moto_port, standin_port) as running:
        key = tenant_key(running)
        auth = {"x-api-key": key}
        paths = {
            "upstream": lambda: timed_post(running.standin_url + "/v1/messages", body(args.event_delay, True),
                                           {"x-api-key": "sk-ttfb"}),
            "make run, whole": lambda: timed_post(running.api_url + "/v1/messages", body(args.event_delay, False), auth),
            "make run, stream": lambda: timed_post(running.api_url + "/v1/messages", body(args.event_delay, True), auth),
            "in-process": in_process(running, key, args.event_delay),
        }
        print(f"event delay {args.event_delay * 1000:.0f} ms, {args.runs} runs each (median ms)")
        print(f"{'path':<18} {'first byte':>10} {'first text':>10} {'last byte':>10}")
        for name, measure in paths.items():
            measure()  # warm: imports, clients, the tenant cache
            runs = [measure() for _ in range(args.runs)]
            first, text, last = (statistics.median(r[i] for r in runs) * 1000 for i in range(3))
            print(f"{name:<18} {first:>10.0f} {text:>10.0f} {last:>10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
