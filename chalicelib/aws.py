"""AWS SDK clients, built lazily in one place and cached for the warm Lambda.

Endpoints come from botocore's own configuration (`AWS_ENDPOINT_URL` points
every client at moto locally), so no code path differs between local and AWS.
"""
from __future__ import annotations

import functools
from typing import Any

from chalicelib.settings import get_settings


@functools.lru_cache(maxsize=None)
def client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    from chalicelib.observability import trace_aws_calls

    config = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"})
    return trace_aws_calls(boto3.session.Session().client(service, region_name=get_settings().region, config=config))
