"""chalicelib/store.py `batch_get` and `get_items`, the one way the product reads several items at once: 100 keys
a request, keys DynamoDB leaves unprocessed asked again on the throttling policy, and never an answer with
items silently missing.
DynamoDB's throttling is played at the network edge: a botocore hook answers as a throttled table does."""
from __future__ import annotations

import json

import pytest
from botocore.awsrequest import AWSResponse

from chalicelib import store
from chalicelib.models import Tenant, table_connection, tenant_pk
from chalicelib.periods import utcnow
from conftest import random_slug
from dynamo_hooks import ClientHook


class Throttle(ClientHook):
    """Answers the test thread's first `times` BatchGetItem calls with every key unprocessed and nothing read."""

    event = "before-call.dynamodb.BatchGetItem"
    own_thread_only = True

    def __init__(self, times: int) -> None:
        self.times, self.calls, self.keys_asked = times, 0, []

    def _before(self, params, **kwargs):
        asked = json.loads(params["body"])["RequestItems"]
        self.calls += 1
        self.keys_asked.append(sum(len(request["Keys"]) for request in asked.values()))
        if self.calls <= self.times:
            return AWSResponse(params["url"], 200, {}, None), {"Responses": {}, "UnprocessedKeys": asked}
        return None


def tenants(count):
    made = []
    for _ in range(count):
        tenant_id = f"ten_{random_slug()}"
        Tenant(tenant_pk(tenant_id), Tenant.SK, tenant_id=tenant_id, name="Batch", slug=random_slug(),
               plan="free", status="active", created_at=utcnow()).save()
        made.append(tenant_id)
    return made


def test_more_than_100_keys_are_read_100_at_a_time_in_the_order_asked(environment):
    made = tenants(3)
    refs = [(Tenant, tenant_pk(t), Tenant.SK) for t in made] + [(Tenant, tenant_pk(f"ten_none{n}"), Tenant.SK)
                                                                for n in range(120)]
    with Throttle(0) as counted:
        found = store.get_items(list(reversed(refs)))
    assert counted.keys_asked == [100, 23]
    assert [t.tenant_id if t else None for t in found] == [None] * 120 + list(reversed(made))


def test_keys_left_unprocessed_are_asked_again_and_found(environment):
    made = tenants(2)
    with Throttle(2) as counted:
        found = store.get_items([(Tenant, tenant_pk(t), Tenant.SK) for t in made], consistent=True)
    assert [t.tenant_id for t in found] == made
    assert counted.keys_asked == [2, 2, 2]


def test_keys_still_unprocessed_after_every_attempt_are_an_error_not_items_absent(environment):
    made = tenants(1)
    quick = store.RetryPolicy(attempts=4, base_seconds=0.001, cap_seconds=0.001)  # THROTTLED's pauses add to 6 s
    connection = table_connection()
    with Throttle(quick.attempts) as counted, pytest.raises(RuntimeError, match="unprocessed"):
        store.batch_get(connection.connection.client, connection.table_name,
                        [{"pk": {"S": tenant_pk(made[0])}, "sk": {"S": Tenant.SK}}], policy=quick)
    assert counted.calls == quick.attempts


def test_throttled_keys_are_asked_again_on_the_throttling_policy(environment):
    """Unprocessed keys are throttling: THROTTLED's attempts and pauses, not RETRY's (sized for a conflict)."""
    made = tenants(1)
    with Throttle(store.RETRY.attempts) as counted:  # more than RETRY would allow, fewer than THROTTLED's
        found = store.get_items([(Tenant, tenant_pk(made[0]), Tenant.SK)])
    assert [t.tenant_id for t in found] == made and counted.calls == store.RETRY.attempts + 1
