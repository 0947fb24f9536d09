"""One frozen settings object, read from the environment on first use.

Nothing here runs at import: chalice's test client sets a stage's environment
variables only while a request is in flight, and Lambda's environment is only
final once the handler runs. `get_settings()` reads once and caches;
`reset_settings()` exists for tests that change the environment.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Optional


# Anthropic's published Tier 4 limits for Claude Sonnet 4.x (4,000 requests, 2,000,000 input tokens,
# 400,000 output tokens a minute): a sane floor for an organisation that has not configured its own.
DEFAULT_POOL_CEILINGS = "*=4000/2000000/400000"


@dataclass(frozen=True)
class Settings:
    stage: str
    region: str
    table_name: str
    # Secrets: in the local stage they come straight from the environment;
    # in deployed stages these hold the ids of Secrets Manager secrets.
    jwt_secret: Optional[str]
    jwt_secret_id: Optional[str]
    operator_secret: Optional[str]
    operator_secret_id: Optional[str]
    platform_keys: Optional[str]
    platform_keys_secret_id: Optional[str]
    jwt_issuer: str
    jwt_audience: str
    jwt_ttl_seconds: int
    kms_key_id: str
    alert_topic_arn: Optional[str]
    email_sender: str
    base_domain: Optional[str]
    anthropic_base_url: Optional[str]
    anthropic_timeout_seconds: float
    anthropic_max_retries: int
    tenant_cache_seconds: float
    usage_retention_days: int
    log_level: str
    audit_retention_days: int = 730
    billing_retention_days: int = 2557
    deletion_grace_seconds: int = 7 * 86400
    export_bucket: str = ""
    # Amazon Bedrock, where pool calls fail over (chalicelib/ai/failover.py): its region, an endpoint
    # override (the stand-in locally), and whether failover is on at all.
    bedrock_region: str = "us-east-1"
    bedrock_base_url: Optional[str] = None
    bedrock_failover: bool = True
    # The platform pool's per-minute ceilings by model, `model=requests/input_tokens/output_tokens;...`
    # with `*` for the rest (chalicelib/metering/pool_leases.py; docs/upstream.md says where the defaults
    # come from). Set them to the organisation's limits; upstream's rate-limit headers lower them further.
    pool_ceilings: str = DEFAULT_POOL_CEILINGS


def _env(name: str, default: Optional[str] = None) -> Optional[str]:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _load() -> Settings:
    stage = _env("TESSERA_STAGE", "local")
    return Settings(
        stage=stage,
        region=_env("AWS_REGION", _env("AWS_DEFAULT_REGION", "us-east-1")),
        table_name=_env("TESSERA_TABLE_NAME", f"tessera-{stage}"),
        jwt_secret=_env("TESSERA_JWT_SECRET"),
        jwt_secret_id=_env("TESSERA_JWT_SECRET_ID"),
        operator_secret=_env("TESSERA_OPERATOR_SECRET"),
        operator_secret_id=_env("TESSERA_OPERATOR_SECRET_ID"),
        platform_keys=_env("TESSERA_PLATFORM_KEYS"),
        platform_keys_secret_id=_env("TESSERA_PLATFORM_KEYS_SECRET_ID"),
        jwt_issuer=_env("TESSERA_JWT_ISSUER", f"tessera-{stage}"),
        jwt_audience=_env("TESSERA_JWT_AUDIENCE", "tessera-api"),
        jwt_ttl_seconds=int(_env("TESSERA_JWT_TTL_SECONDS", "3600")),
        kms_key_id=_env("TESSERA_KMS_KEY_ID", f"alias/tessera-{stage}"),
        alert_topic_arn=_env("TESSERA_ALERT_TOPIC_ARN"),
        email_sender=_env("TESSERA_EMAIL_SENDER", "no-reply@tessera.local"),
        base_domain=_env("TESSERA_BASE_DOMAIN"),
        anthropic_base_url=_env("ANTHROPIC_BASE_URL"),
        anthropic_timeout_seconds=float(_env("TESSERA_ANTHROPIC_TIMEOUT_SECONDS", "24")),
        anthropic_max_retries=int(_env("TESSERA_ANTHROPIC_MAX_RETRIES", "0")),
        tenant_cache_seconds=float(_env("TESSERA_TENANT_CACHE_SECONDS", "5")),
        usage_retention_days=int(_env("TESSERA_USAGE_RETENTION_DAYS", "400")),
        log_level=_env("LOG_LEVEL", "INFO"),
        audit_retention_days=int(_env("TESSERA_AUDIT_RETENTION_DAYS", "730")),
        billing_retention_days=int(_env("TESSERA_BILLING_RETENTION_DAYS", "2557")),
        deletion_grace_seconds=int(_env("TESSERA_DELETION_GRACE_SECONDS", str(7 * 86400))),
        export_bucket=_env("TESSERA_EXPORT_BUCKET", f"tessera-{stage}-exports"),
        bedrock_region=_env("TESSERA_BEDROCK_REGION", _env("AWS_REGION", _env("AWS_DEFAULT_REGION", "us-east-1"))),
        bedrock_base_url=_env("TESSERA_BEDROCK_BASE_URL"),
        bedrock_failover=_env("TESSERA_BEDROCK_FAILOVER", "on").lower() not in ("off", "0", "false", "no"),
        pool_ceilings=_env("TESSERA_POOL_CEILINGS", DEFAULT_POOL_CEILINGS),
    )


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return _load()


def reset_settings() -> None:
    get_settings.cache_clear()

