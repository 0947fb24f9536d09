"""Lambda SnapStart: the work done once before the snapshot, and what each restored instance redoes.

With SnapStart (dev/deploy/snapstart.py puts it on the request path's functions), Lambda runs a published
version's init once, snapshots the memory, and starts every new execution environment of that version
from the snapshot. So the slow part of a first AI request, importing the anthropic SDK (about 3,500
modules), is paid before any request; and every restored instance begins with the same memory. What must
not be the same in two of them is dropped or reseeded after each restore:

- `random`'s state (jitter in chalicelib/store.py): reseeded from os.urandom. Ids and keys come from
  `secrets` (os.urandom, the kernel's), which a restore does not repeat;
- connections and the clients that own them (botocore's, PynamoDB's, the SDK's httpx pools): a
  connection opened before the snapshot is stale after it, and two instances must never share a socket;
- anything secret kept in memory (Secrets Manager values, decrypted tenant keys) and the caches of tenant
  state: nothing of the sort exists at init, and dropping them makes that hold whatever init does.

The hooks are registered when app.py is imported, through `snapshot_restore_py`, which Lambda's managed
Python runtime provides (3.12 and later). Elsewhere the import fails and nothing is registered; a
function without SnapStart never calls them either way.

The streaming function (chalicelib/stream_host) runs under the Lambda Web Adapter, which replaces the
managed runtime's loop, so no hook is called there: it primes at start-up (`prime`) and makes itself its
own on its first request instead (`OnFirstRequest`), the same `after_restore` at the one moment that
follows every restore and precedes any tenant's work.
"""
from __future__ import annotations

import os
import random
import threading

from chalicelib import aws, secrets
from chalicelib.ai import gateway
from chalicelib.models import drop_connections
from chalicelib.settings import get_settings


# Lambda's handler setting (`_HANDLER`) of the functions that call the model: the REST API's. The
# authorizers' snapshots stay without the SDK, never imported there (a smaller image to restore).
AI_HANDLERS = ("app.app",)
# A message as the Messages API answers one, parsed by the SDK before the snapshot.
PRIMING_MESSAGE = {"id": "msg_priming", "type": "message", "role": "assistant", "model": "claude-priming",
                   "content": [{"type": "text", "text": ""}], "stop_reason": "end_turn", "stop_sequence": None,
                   "usage": {"input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 0}}
# The AWS services a first request calls: the table (every function), KMS (a tenant's own key, AI only).
PRIMED_SERVICES = ("dynamodb", "kms")


def before_snapshot() -> None:
    """What a first request would otherwise build, without a secret or a connection."""
    prime(ai=os.environ.get("_HANDLER") in AI_HANDLERS)


def prime(ai: bool) -> None:
    """Build at init what a first request would otherwise build: botocore's models and, for a function that
    calls the model (`ai`), the SDK's modules and schemas. Opens no connection and reads no secret."""
    # botocore's session and models for the function's AWS calls, parsed into the shared loader by clients
    # built and dropped unused: placeholder credentials, so nothing is looked up or sent.
    session = aws.botocore_session()
    for service in PRIMED_SERVICES if ai else PRIMED_SERVICES[:1]:
        session.create_client(service, region_name=get_settings().region, aws_access_key_id="placeholder",
                              aws_secret_access_key="placeholder")
    if ai:
        _prime_model_client()


def _prime_model_client() -> None:
    import anthropic
    import httpx2

    from chalicelib.observability import tracing_enabled

    # One call through a throwaway client whose transport answers in memory: it imports what `import
    # anthropic` leaves lazy (the Messages resource) and builds the pydantic schemas the SDK builds on its
    # first parsed message (about 0.6 s on one core). Nothing is sent: the transport is this lambda, and
    # the key a placeholder.
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json=PRIMING_MESSAGE))
    primer = anthropic.Anthropic(api_key="placeholder-never-sent", max_retries=0, base_url="https://priming.invalid",
                                 http_client=httpx2.Client(transport=transport))
    primer.messages.create(model=PRIMING_MESSAGE["model"], max_tokens=1, messages=[{"role": "user", "content": "."}])
    primer.close()
    httpx2.Client().close()  # the real transport's modules (httpcore), also lazy; it opens no connection
    if tracing_enabled():
        import aws_xray_sdk.core  # noqa: F401  (the Tracer's SDK; the Tracer itself is built per instance)


def after_restore() -> None:
    """Make this instance its own: fresh randomness, no connection, client or secret from the snapshot."""
    random.seed()
    aws.forget_clients()
    drop_connections()
    secrets.forget()
    gateway.reset_default_gateway()


# Lambda's own word for how an execution environment began: "snap-start" for one restored from a snapshot
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html, AWS_LAMBDA_INITIALIZATION_TYPE).
INITIALIZATION_TYPE = "AWS_LAMBDA_INITIALIZATION_TYPE"
RESTORED = "snap-start"


class OnFirstRequest:
    """Runs `after_restore` once, before the first request a process serves (health checks aside), whatever
    thread serves it, in an execution environment Lambda restored from a snapshot: with a snapshot taken
    before any request, that is after every restore. Elsewhere (on-demand, `make run`, the tests) it does
    nothing: nothing was shared."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False

    def __call__(self) -> None:
        if self._done:
            return
        with self._lock:
            if not self._done:
                if os.environ.get(INITIALIZATION_TYPE) == RESTORED:
                    after_restore()
                self._done = True


def register() -> bool:
    """Register the hooks with Lambda's runtime; False where there is no SnapStart runtime (locally)."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    register_before_snapshot(before_snapshot)
    register_after_restore(after_restore)
    return True
