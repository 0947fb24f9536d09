"""The budget job's alerts for budgets of API keys and users (chalicelib/principal_budgets.py).

A tenant with any principal budget is listed in the budget segments (gsi2) like a tenant with its own
budget; for each such tenant and period the job reads every budgeted principal's budget item and month
counters (KeyUsage, settled spend and calls) in one BatchGetItem, and alerts each threshold crossed
(50, 80 and 100 % of the dollars, and of the requests) once per principal and month: claimed with the
same conditional claim as a tenant's alert, sent to the operators' topic and the tenant's owners, then
marked on the budget item. Soft and hard budgets alike.
"""
from __future__ import annotations

import time
from typing import List, Optional

from chalicelib import pricing
from chalicelib.budget_models import PrincipalBudget
from chalicelib.models import AlertClaim, KeyUsage, Tenant, tenant_pk
from chalicelib.store import get_items, retry_conflicts

THRESHOLDS = (50, 80, 100)


def check(tenant: Tenant, period: str, notifier, report, claim, owners, crossed) -> None:
    """Alert every threshold the tenant's budgeted principals crossed in `period` and no run alerted yet.
    `claim`, `owners` and `crossed` are the budget job's own (chalicelib/jobs/budget_check.py)."""
    principals = sorted(tenant.budgeted_principals or ())
    if not principals:
        return
    pk = tenant_pk(tenant.tenant_id)
    items = get_items([(PrincipalBudget, pk, PrincipalBudget.sk_for(p)) for p in principals]
                      + [(KeyUsage, pk, KeyUsage.sk_for(period, p)) for p in principals])
    budgets, used = items[:len(principals)], items[len(principals):]
    for budget, month in zip(budgets, used):
        if budget is None:
            continue
        measures = (("usd", int(month.cost_micros) if month else 0, budget.budget_micros),
                    ("requests", int(month.requests) if month else 0, budget.requests))
        for measure, spent, limit in measures:
            if limit is None:
                continue
            for threshold in crossed(spent, int(limit), THRESHOLDS):
                _alert(tenant, budget, period, measure, threshold, spent, int(limit), notifier, report, claim, owners)


def _alert(tenant: Tenant, budget: PrincipalBudget, period: str, measure: str, threshold: int, spent: int,
           limit: int, notifier, report, claim, owners) -> None:
    mark = f"{period}#{measure}#{threshold}"
    if mark in (budget.alerts_sent or set()):
        return
    sk = f"{AlertClaim.sk_for(period, threshold)}#{measure}#{budget.principal_id}"
    held: Optional[AlertClaim] = claim(tenant.tenant_id, period, threshold, time.time(), sk)
    if held is None:
        report.alerts_skipped += 1
        return
    shown = (pricing.usd(spent), pricing.usd(limit)) if measure == "usd" else (str(spent), str(limit))
    kind = "API key" if budget.principal_type == "api_key" else "user"
    subject = f"Tessera budget alert: {threshold}% of a {kind}'s monthly {'budget' if measure == 'usd' else 'requests'}"
    text = (f"Tenant {tenant.name} ({tenant.slug}): {kind} {budget.principal_id} has used {shown[0]} of its "
            f"{shown[1]} {'dollars' if measure == 'usd' else 'requests'} for {period} ({threshold}% threshold).")
    notifier.publish(subject, text, {"tenant_id": tenant.tenant_id, "principal_id": budget.principal_id,
                                     "measure": measure, "threshold": str(threshold), "used": shown[0],
                                     "limit": shown[1], "period": period})
    recipients: List[str] = owners(tenant.tenant_id)
    if recipients:
        notifier.email(recipients, subject, text)
    report.alerts_sent.append({"tenant_id": tenant.tenant_id, "principal_id": budget.principal_id,
                               "measure": measure, "period": period, "threshold": threshold})

    def mark_sent() -> None:
        from chalicelib.store import transaction

        with transaction() as tx:
            tx.update(held, actions=[AlertClaim.status.set("sent")])
            tx.update(PrincipalBudget(budget.pk, budget.sk), actions=[PrincipalBudget.alerts_sent.add({mark})],
                      condition=PrincipalBudget.pk.exists())

    retry_conflicts(mark_sent)
