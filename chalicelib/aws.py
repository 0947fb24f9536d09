"""AWS SDK clients, built lazily in one place and cached for the warm Lambda.

Endpoints come from botocore's own configuration (`AWS_ENDPOINT_URL` points
every client at moto locally), so no code path differs between local and AWS.
"""
from __future__ import annotations

import functools
from typing import Any

from chalicelib.settings import get_settings


@functools.lru_cache(maxsize=None)
def data_loader() -> Any:
    """botocore's reader of its JSON models (service shapes, endpoint rules, retry settings), shared by every
    session this process makes. It holds only the package's own files, parsed: the same before and after a
    SnapStart restore, so the clients a restored instance builds parse nothing again (chalicelib/snapshot.py
    fills it before the snapshot; parsing DynamoDB's and KMS's models costs a first request about 0.3 s)."""
    from botocore.loaders import create_loader

    return create_loader()


@functools.lru_cache(maxsize=None)
def botocore_session() -> Any:
    """The process's one botocore session, reading models through `data_loader`: a session registers about
    380 event handlers (some 60 ms of CPU each time), so every client and the table connection share one.
    A session holds no connection (its clients do) and no credentials until a client built without explicit
    ones resolves them; chalicelib/snapshot.py keeps it across a snapshot only while that has not happened."""
    from botocore.session import get_session

    session = get_session()
    session.register_component("data_loader", data_loader())
    return session


_credentials_resolved = False


def session_for_clients() -> Any:
    """`botocore_session()`, for a client that resolves the instance's credentials through it."""
    global _credentials_resolved
    _credentials_resolved = True
    return botocore_session()


def forget_clients() -> None:
    """Drop every client built (with its connections), and the session if credentials were resolved in it:
    a restored instance builds its own (chalicelib/snapshot.py)."""
    global _credentials_resolved
    client.cache_clear()
    if _credentials_resolved:
        boto3_session_over.cache_clear()
        botocore_session.cache_clear()
        _credentials_resolved = False


@functools.lru_cache(maxsize=None)
def boto3_session_over(session: Any) -> Any:
    """The one boto3 session wrapping `session`: each boto3 session registers its handlers on the botocore
    session it wraps, so a second one would have S3's transfer methods injected twice into the S3 client's
    class (a RuntimeError building it)."""
    import boto3

    return boto3.session.Session(botocore_session=session)


@functools.lru_cache(maxsize=None)
def client(service: str) -> Any:
    from botocore.config import Config

    from chalicelib.observability import trace_aws_calls

    config = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"})
    session = boto3_session_over(session_for_clients())
    return trace_aws_calls(session.client(service, region_name=get_settings().region, config=config))
