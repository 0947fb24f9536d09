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
