"""PynamoDB models: every item type that lives in the one table.

Tenant-owned items have `pk = TENANT#<tenant_id>`; the few global lookups
(slug claims, sign-ups' Idempotency-Key records, login throttles) have their own
partitions and point at a tenant. Key builders live next to the models so
the key layout is written down once. The table name and region are read from
settings on first use, never at import.
"""
from __future__ import annotations

import hashlib
import threading
from typing import Dict, List

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    MapAttribute,
    NumberAttribute,
    NumberSetAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.connection.base import MetaTable
from pynamodb.connection.table import TableConnection
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.settings import get_settings
from chalicelib.table import BUDGET_INDEX, SPEND_INDEX, TENANT_LIST_INDEX, create_table_request

TENANT_LIST_PARTITION = "TENANTS"
BUDGET_PARTITION = "BUDGETED"
# Budgeted tenants are spread over this many gsi2 partitions, so the budget job reads them in parallel and
# no index partition holds every budgeted tenant. Changing it moves tenants between partitions: every
# budgeted tenant's gsi2pk would have to be rewritten (docs/scaling.md, "Budget job").
BUDGET_SEGMENTS = 16


def budget_segment(tenant_id: str) -> str:
    """The gsi2 partition a budgeted tenant is listed in: `BUDGETED#<n>`, n from a stable hash of its id
    (SHA-256, not Python's per-process `hash`), so every process puts a tenant in the same segment."""
    digest = hashlib.sha256(tenant_id.encode("utf-8")).digest()
    return f"{BUDGET_PARTITION}#{int.from_bytes(digest[:8], 'big') % BUDGET_SEGMENTS}"


def budget_segments() -> List[str]:
    return [f"{BUDGET_PARTITION}#{n}" for n in range(BUDGET_SEGMENTS)]


class _LazyTable(type):
    @property
    def table_name(cls) -> str:
        return get_settings().table_name

    @property
    def region(cls) -> str:
        return get_settings().region


class _Meta(metaclass=_LazyTable):
    host = None
    connect_timeout_seconds = 2
    read_timeout_seconds = 5
    max_retry_attempts = 2
    max_pool_connections = 64


def tenant_pk(tenant_id: str) -> str:
    if not tenant_id:
        raise ValueError("tenant_id is required")
    return f"TENANT#{tenant_id}"


_connections: Dict[str, TableConnection] = {}
_connections_lock = threading.Lock()


def table_connection() -> TableConnection:
    """One connection (one botocore client) for every item type: they all live in the same table.

    It carries the whole table's schema, so no DescribeTable call is ever made,
    and a warm Lambda builds one DynamoDB client instead of one per model.
    """
    name = _Meta.table_name
    connection = _connections.get(name)
    if connection is None:
        with _connections_lock:
            connection = _connections.get(name)
            if connection is None:
                connection = TableConnection(
                    name, region=_Meta.region, host=_Meta.host,
                    connect_timeout_seconds=_Meta.connect_timeout_seconds,
                    read_timeout_seconds=_Meta.read_timeout_seconds,
                    max_retry_attempts=_Meta.max_retry_attempts,
                    max_pool_connections=_Meta.max_pool_connections,
                    meta_table=MetaTable(create_table_request(name)))
                from chalicelib.aws import session_for_clients
                from chalicelib.observability import trace_aws_calls

                # The process's shared botocore session (chalicelib/aws.py), set where PynamoDB keeps the
                # session it builds the client from (per thread; the client is built here, once).
                connection.connection._local.session = session_for_clients()

                # PynamoDB builds its botocore client once and keeps it (it builds another only if the
                # first has no credentials, which Lambda's environment always provides).
                trace_aws_calls(connection.connection.client)
                _connections[name] = connection
    return connection


def drop_connections() -> None:
    """Forget the table connections and their botocore clients: the next call builds new ones, on sockets of
    its own (after a SnapStart restore: chalicelib/snapshot.py)."""
    with _connections_lock:
        _connections.clear()


class _Item(Model):
    class Meta(_Meta):
        pass

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    @classmethod
    def _get_connection(cls) -> TableConnection:
        return table_connection()


class TenantListIndex(GlobalSecondaryIndex):
    class Meta:
        index_name = TENANT_LIST_INDEX
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class BudgetIndex(GlobalSecondaryIndex):
    class Meta:
        index_name = BUDGET_INDEX
        projection = AllProjection()

    gsi2pk = UnicodeAttribute(hash_key=True)
    gsi2sk = UnicodeAttribute(range_key=True)


class SpendIndex(GlobalSecondaryIndex):
    """gsi3: the operators' console. Month aggregates under `SPEND#<YYYY-MM>` sorted by spend, and tenant
    profiles under `SLUGS` sorted by slug (prefix search). Sparse: no other item carries gsi3 keys."""

    class Meta:
        index_name = SPEND_INDEX
        projection = AllProjection()

    gsi3pk = UnicodeAttribute(hash_key=True)
    gsi3sk = UnicodeAttribute(range_key=True)


SLUG_LIST_PARTITION = "SLUGS"


def spend_partition(period: str) -> str:
    return f"SPEND#{period}"


def spend_sort_key(cost_micros: int, tenant_id: str) -> str:
    """Zero-padded so the string order is the numeric order (16 digits: up to $10 billion a month)."""
    return f"{cost_micros:016d}#{tenant_id}"


class Tenant(_Item):
    """pk=TENANT#<id> sk=PROFILE. Listed by operators through gsi1; budgeted tenants appear in gsi2."""

    tenant_id = UnicodeAttribute()
    name = UnicodeAttribute()
    slug = UnicodeAttribute()
    plan = UnicodeAttribute()
    status = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    plan_changed_at = UTCDateTimeAttribute(null=True)
    owner_count = NumberAttribute(default=1)
    monthly_budget_micros = NumberAttribute(null=True)
    budget_alert_thresholds = NumberSetAttribute(null=True)
    budget_hard_limit = BooleanAttribute(default=False)
    limit_overrides = MapAttribute(null=True)
    limits_version = NumberAttribute(null=True)
    # The principals with a hard budget (chalicelib/principal_budgets.py), copied onto the admission item
    # (as a 128-bit set) so admission knows, proven current by its version, whose calls need that budget.
    hard_budgets = UnicodeSetAttribute(null=True)
    budgeted_principals = UnicodeSetAttribute(null=True)  # every principal with a budget: the budget job's list
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    gsi2pk = UnicodeAttribute(null=True)
    gsi2sk = UnicodeAttribute(null=True)
    gsi3pk = UnicodeAttribute(null=True)
    gsi3sk = UnicodeAttribute(null=True)

    by_created = TenantListIndex()
    with_budget = BudgetIndex()
    by_slug = SpendIndex()

    SK = "PROFILE"


class SlugClaim(_Item):
    """pk=SLUG#<slug> sk=CLAIM: makes a slug unique across the platform."""

    tenant_id = UnicodeAttribute()

    SK = "CLAIM"

    @staticmethod
    def key(slug: str) -> tuple:
        return f"SLUG#{slug}", SlugClaim.SK


class User(_Item):
    """pk=TENANT#<id> sk=USER#<user_id>."""

    user_id = UnicodeAttribute()
    email = UnicodeAttribute()
    password_hash = UnicodeAttribute()
    role = UnicodeAttribute()
    status = UnicodeAttribute(default="active")
    created_at = UTCDateTimeAttribute()

    @staticmethod
    def sk_for(user_id: str) -> str:
        return f"USER#{user_id}"


class UserEmail(_Item):
    """pk=TENANT#<id> sk=EMAIL#<email>: unique email within a tenant, points at the user."""

    user_id = UnicodeAttribute()

    @staticmethod
    def sk_for(email: str) -> str:
        return f"EMAIL#{email}"


class AIConfig(_Item):
    """pk=TENANT#<id> sk=AICONFIG: the tenant's model settings and (encrypted) own key."""

    model = UnicodeAttribute()
    max_tokens = NumberAttribute()
    temperature = NumberAttribute()
    # The settings an admin chose (PUT /tenant/ai-config) rather than sign-up's defaults: a Messages API
    # call that omits such a field gets the tenant's value; otherwise it gets Anthropic's default.
    chosen = UnicodeSetAttribute(null=True)
    custom_instructions = UnicodeAttribute(default="")
    inject_context = BooleanAttribute(default=True)
    api_key_ciphertext = BinaryAttribute(null=True, legacy_encoding=False)
    api_key_last4 = UnicodeAttribute(null=True)
    brownout = UnicodeAttribute(null=True)  # JSON: feature -> {at_percent, model} (chalicelib/ai/brownout.py)
    updated_at = UTCDateTimeAttribute(null=True)

    SK = "AICONFIG"


class ApiKey(_Item):
    """pk=TENANT#<id> sk=APIKEY#<key_id>; the secret is stored only as a SHA-256 digest."""

    key_id = UnicodeAttribute()
    name = UnicodeAttribute()
    secret_hash = UnicodeAttribute()
    last4 = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    revoked_at = UTCDateTimeAttribute(null=True)

    @staticmethod
    def sk_for(key_id: str) -> str:
        return f"APIKEY#{key_id}"


class LoginThrottle(_Item):
    """pk=LOGIN#<digest of tenant+email> sk=WINDOW#<epoch start>: failed logins in one window."""

    failures = NumberAttribute(default=0)
    expires_at = TTLAttribute()


class Prompt(_Item):
    """pk=TENANT#<id> sk=PROMPT#<prompt_id>."""

    prompt_id = UnicodeAttribute()
    name = UnicodeAttribute()
    template = UnicodeAttribute()
    variables = UnicodeAttribute()  # JSON list, in order of first appearance
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    @staticmethod
    def sk_for(prompt_id: str) -> str:
        return f"PROMPT#{prompt_id}"


class Admission(_Item):
    """pk=TENANT#<id> sk=ADMISSION: the one item every AI request's admission conditionally writes.

    It carries the numbers admission checks (`limits`, a JSON copy of the tenant's plan, status, feature
    limits, rate and budget, written in the same transaction as every change to them, with `version`)
    and the counters it moves (`counters`, a map keyed by period, minute slot and sweep bucket; see
    chalicelib/metering/admission.py). Only admissions and limit changes write it, so a request costs
    it one write unit while the item stays under 1 KB.
    """

    version = NumberAttribute(default=0)
    limits = UnicodeAttribute(null=True)
    counters = MapAttribute(default=dict)

    SK = "ADMISSION"


class Reconciliation(_Item):
    """pk=TENANT#<id> sk=RECONCILE: what settled calls gave back to admission, written only by the usage
    aggregator: per period the refunded worst case and released admissions, per sweep bucket the
    reservations accounted for. Admission subtracts these, so refunds never write the admission item."""

    version = NumberAttribute(default=0)
    counters = MapAttribute(default=dict)

    SK = "RECONCILE"


class UsagePeriod(_Item):
    """pk=TENANT#<id> sk=USAGE#<YYYY-MM>: the month's totals, written by the usage aggregator with ADDs.

    `exposure_micros` is the cost bound of calls that may have been billed upstream without an answer
    reaching us (timeouts, dropped connections); they are not charged to the tenant (README: policy).
    """

    period = UnicodeAttribute()
    requests = NumberAttribute(default=0)
    input_tokens = NumberAttribute(default=0)
    output_tokens = NumberAttribute(default=0)
    cache_creation_tokens = NumberAttribute(default=0)
    cache_read_tokens = NumberAttribute(default=0)
    cost_micros = NumberAttribute(default=0)
    own_key_requests = NumberAttribute(default=0)
    own_key_cost_micros = NumberAttribute(default=0)
    pool_requests = NumberAttribute(default=0)
    pool_cost_micros = NumberAttribute(default=0)
    failed_requests = NumberAttribute(default=0)
    indeterminate_requests = NumberAttribute(default=0)
    exposure_micros = NumberAttribute(default=0)
    abandoned_requests = NumberAttribute(default=0)
    alerts_sent = NumberSetAttribute(null=True)
    # In gsi3 under SPEND#<period>, sorted by cost_micros (spend_sort_key), for the operators' list.
    gsi3pk = UnicodeAttribute(null=True)
    gsi3sk = UnicodeAttribute(null=True)

    by_spend = SpendIndex()

    @staticmethod
    def sk_for(period: str) -> str:
        return f"USAGE#{period}"


class UsageCounter(_Item):
    """The one shape of a settled-usage counter (STYLE 12): every grain below adds the same four numbers,
    written only by the usage aggregator with ADDs."""

    requests = NumberAttribute(default=0)
    input_tokens = NumberAttribute(default=0)
    output_tokens = NumberAttribute(default=0)
    cost_micros = NumberAttribute(default=0)


class FeatureUsage(UsageCounter):
    """pk=TENANT#<id> sk=USAGE#<YYYY-MM>#FEATURE#<feature>: one feature's settled totals."""

    feature = UnicodeAttribute()

    @staticmethod
    def sk_for(period: str, feature: str) -> str:
        return f"USAGE#{period}#FEATURE#{feature}"


class ModelUsage(UsageCounter):
    """pk=TENANT#<id> sk=USAGE#<YYYY-MM>#MODEL#<model>: one model's settled totals."""

    model = UnicodeAttribute()

    @staticmethod
    def sk_for(period: str, model: str) -> str:
        return f"USAGE#{period}#MODEL#{model}"


class KeyUsage(UsageCounter):
    """pk=TENANT#<id> sk=USAGE#<YYYY-MM>#KEY#<principal_id>: one API key's (or user's) settled totals."""

    principal_id = UnicodeAttribute()
    principal_type = UnicodeAttribute()

    @staticmethod
    def sk_for(period: str, principal_id: str) -> str:
        return f"USAGE#{period}#KEY#{principal_id}"


class DayUsage(UsageCounter):
    """pk=TENANT#<id> sk=USAGEDAY#<YYYY-MM-DD>: one UTC day's settled totals. A prefix of its own, so the
    last 90 days are one Query between two days' keys and a month's query does not read them."""

    day = UnicodeAttribute()

    @staticmethod
    def sk_for(day: str) -> str:
        return f"USAGEDAY#{day}"


class PlatformUsage(UsageCounter):
    """pk=PLATFORM#<YYYY-MM>#<n> sk=PLAN#<plan> or MODEL#<model>: the platform's settled totals, in
    PLATFORM_SHARDS partitions (n from the tenant id) so concurrent folds of different tenants rarely
    meet on one item; a report sums the shards."""

    name = UnicodeAttribute()

    @staticmethod
    def key(period: str, tenant_id: str, grain: str, name: str) -> tuple:
        digest = hashlib.sha256(tenant_id.encode("utf-8")).digest()
        return f"PLATFORM#{period}#{int.from_bytes(digest[:8], 'big') % PLATFORM_SHARDS}", f"{grain}#{name}"

    @staticmethod
    def partitions(period: str) -> List[str]:
        return [f"PLATFORM#{period}#{n}" for n in range(PLATFORM_SHARDS)]


PLATFORM_SHARDS = 8

# What admission refuses, counted per month (chalicelib/metering/refusals.py); each a number attribute.
REFUSAL_REASONS = ("tenant_suspended", "feature_not_in_plan", "feature_limit_reached", "rate_limited",
                   "budget_exceeded", "pool_share_exhausted", "principal_limit_reached", "principal_budget_exceeded")


class RefusalCount(_Item):
    """pk=TENANT#<id> sk=USAGE#<YYYY-MM>#REFUSALS: calls admission refused this month, in total and by
    reason. Written with one ADD by the refused request itself (no event is kept for a refusal)."""

    requests = NumberAttribute(default=0)
    tenant_suspended = NumberAttribute(default=0)
    feature_not_in_plan = NumberAttribute(default=0)
    feature_limit_reached = NumberAttribute(default=0)
    rate_limited = NumberAttribute(default=0)
    budget_exceeded = NumberAttribute(default=0)
    pool_share_exhausted = NumberAttribute(default=0)  # shed by the platform pool before the call
    principal_limit_reached = NumberAttribute(default=0)  # a key's or user's own hard budget: requests
    principal_budget_exceeded = NumberAttribute(default=0)  # ... and dollars

    @staticmethod
    def sk_for(period: str) -> str:
        return f"USAGE#{period}#REFUSALS"


class UsageEvent(_Item):
    """pk=TENANT#<id> sk=EVENT#<request_id>; request ids sort by time, so a query reads newest first.

    Written once per reservation by the request that held it (status ok, failed or indeterminate) or,
    for reservations whose handler died, once per sweep bucket by the sweeper (status abandoned).
    The usage aggregator folds each into the totals exactly once and stamps `aggregated_at`.
    """

    request_id = UnicodeAttribute()
    principal_id = UnicodeAttribute()
    principal_type = UnicodeAttribute()
    feature = UnicodeAttribute()
    model = UnicodeAttribute()
    status = UnicodeAttribute()
    period = UnicodeAttribute(null=True)
    bucket = NumberAttribute(null=True)
    input_tokens = NumberAttribute(default=0)
    output_tokens = NumberAttribute(default=0)
    cache_creation_tokens = NumberAttribute(default=0)
    cache_read_tokens = NumberAttribute(default=0)
    cost_micros = NumberAttribute(default=0)
    worst_case_micros = NumberAttribute(default=0)
    cost_bound_micros = NumberAttribute(null=True)
    reclaimed = MapAttribute(null=True)
    # A failed call whose admission and worst case went back to the admission item before its answer
    # (metering.admission.give_back): the aggregator gives back nothing more for it.
    given_back = BooleanAttribute(null=True)
    latency_ms = NumberAttribute(default=0)
    key_source = UnicodeAttribute()
    upstream_request_id = UnicodeAttribute(null=True)
    # Who answered (anthropic or bedrock; absent on events older than failover, and on failed calls) and
    # every upstream attempt's outcome in order, e.g. "anthropic:529,anthropic:529,bedrock:ok"
    # (chalicelib/ai/failover.py).
    provider = UnicodeAttribute(null=True)
    upstream_attempts = UnicodeAttribute(null=True)
    # A Message Batch request's result: its reservation is held by the batch item, not a sweep bucket.
    batch_id = UnicodeAttribute(null=True)
    custom_id = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    aggregated_at = UTCDateTimeAttribute(null=True)
    expires_at = TTLAttribute()

    @staticmethod
    def sk_for(request_id: str) -> str:
        return f"EVENT#{request_id}"


class SweepMark(_Item):
    """pk=SWEEP#<bucket> sk=TENANT#<id>: this tenant reserved in that 10-minute bucket, so the sweeper
    looks at it once the bucket's calls must all have ended. Written by the usage aggregator."""

    tenant_id = UnicodeAttribute()
    expires_at = TTLAttribute()

    @staticmethod
    def key(bucket: int, tenant_id: str) -> tuple:
        return f"SWEEP#{bucket}", tenant_pk(tenant_id)


class IdempotentCall(_Item):
    """sk=IDEMPOTENCY#<digest of key>: a request made with an Idempotency-Key, replayed for 24 hours
    (chalicelib/idempotency.py). pk=TENANT#<id> for an AI call, SIGNUP#<digest of key> for a sign-up.
    `state` is running until the first request ends, then done with its response."""

    fingerprint = UnicodeAttribute()
    state = UnicodeAttribute()
    status_code = NumberAttribute(null=True)
    response = UnicodeAttribute(null=True)
    headers = UnicodeAttribute(null=True)
    lease_until = NumberAttribute()
    expires_at = TTLAttribute()

    @staticmethod
    def sk_for(digest: str) -> str:
        return f"IDEMPOTENCY#{digest}"

    @staticmethod
    def signup_pk(digest: str) -> str:
        return f"SIGNUP#{digest}"


class AlertClaim(_Item):
    """pk=TENANT#<id> sk=ALERT#<YYYY-MM>#<threshold>: at most one budget alert per threshold and month."""

    period = UnicodeAttribute()
    threshold = NumberAttribute()
    status = UnicodeAttribute()
    lease_until = NumberAttribute()
    claimed_at = UTCDateTimeAttribute()
    sent_at = UTCDateTimeAttribute(null=True)

    @staticmethod
    def sk_for(period: str, threshold: int) -> str:
        return f"ALERT#{period}#{threshold:03d}"
