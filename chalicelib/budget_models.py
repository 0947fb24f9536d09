"""A principal's budget: the monthly dollars and requests one API key or one user may spend.

pk=TENANT#<id> sk=PBUDGET#<principal_id>, in its tenant's partition (offboarding exports and removes it
with the tenant). Set by the tenant's owner or admin (chalicelib/principal_budgets.py). A hard budget's
counters (`counters`: `a:<YYYY-MM>` admitted calls, `w:<YYYY-MM>` committed micro-dollars, worst case
at admission less what settling gave back) are written in the same transaction as the admission item
(chalicelib/metering/admission.py) and as the call's usage event (chalicelib/metering/ledger.py), so
they are exact; a soft budget only alerts, from the principal's settled usage (KeyUsage).
"""
from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, MapAttribute, NumberAttribute, UnicodeAttribute, UnicodeSetAttribute

from chalicelib.models import _Item


class PrincipalBudget(_Item):
    principal_id = UnicodeAttribute()
    principal_type = UnicodeAttribute()  # "api_key" or "user"
    budget_micros = NumberAttribute(null=True)
    requests = NumberAttribute(null=True)
    hard = BooleanAttribute(default=False)
    version = NumberAttribute(default=1)
    counters = MapAttribute(default=dict)
    alerts_sent = UnicodeSetAttribute(null=True)  # "<YYYY-MM>#<usd|requests>#<threshold>", by the budget job

    @staticmethod
    def sk_for(principal_id: str) -> str:
        return f"PBUDGET#{principal_id}"
