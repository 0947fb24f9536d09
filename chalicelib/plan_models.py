"""The plan catalog's items: the plans operators have edited, each version kept.

One partition (`PLANS`) holds them all, so listing the plans is one Query and never a scan; there are
dozens of plans at most. `CURRENT#<plan>` is the plan as it stands (read on the AI path in the same
BatchGetItem as the tenant's items: chalicelib/ai/gateway.py); `VERSION#<plan>#<000001>` is each edit,
never changed once written. A plan with no item here is its built-in default (chalicelib/plans.py),
version 0. Not in any tenant's partition: deleting a tenant leaves the catalog.
"""
from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute

from chalicelib.models import _Item

PLAN_PARTITION = "PLANS"


class PlanRecord(_Item):
    version = NumberAttribute()
    definition = UnicodeAttribute()  # JSON: chalicelib.plans.Plan.as_data()
    changed_by = UnicodeAttribute()  # the operator
    changed_at = UTCDateTimeAttribute()
    request_id = UnicodeAttribute(null=True)

    @staticmethod
    def current_sk(plan: str) -> str:
        return f"CURRENT#{plan}"

    @staticmethod
    def version_sk(plan: str, version: int) -> str:
        return f"VERSION#{plan}#{version:06d}"


POOL_SHARES_SK = "POOL_SHARES"


class PoolSharesRecord(_Item):
    """pk=PLANS sk=POOL_SHARES: every plan's pool share in one small item, which a pool lease renewal reads
    in the same BatchGetItem as the model's minute (chalicelib/metering/pool_leases.py), so a plan's share
    costs the AI path no read of its own. Rewritten by every plan edit in the edit's transaction, on the
    version it read: two edits at once cannot both pass the check that reserved shares stay under 100 %.
    No item: no plan was edited since shares were plan data, and the built-in plans' shares hold."""

    shares = UnicodeAttribute()  # JSON: {plan: [pool_share_percent, pool_reserved_percent]}
    version = NumberAttribute()
