"""Budgets and limits per API key and per user: monthly dollars and requests, hard or soft.

Set by the tenant's owner or admin (`PUT /api-keys/{key_id}/budget`, `PUT /users/{user_id}/budget`). A
hard budget is enforced by admission in the one round trip that admits a call: for such a principal the
admission item's UpdateItem becomes a TransactWriteItems of that same update and a conditional update of
the principal's budget item (chalicelib/metering/admission.py), so the principal's counters are exact
under concurrency. Which principals have a hard budget is on the admission item (`TenantLimits.principals`)
and changes with its version in one transaction with the budget item, so a budget set holds for the next
request. A soft budget only alerts (chalicelib/jobs/budget_check.py). docs/budgets.md has the costs.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from chalicelib import pricing, validation
from chalicelib.errors import BadRequest, Conflict, NotFound
from chalicelib.models import ApiKey, KeyUsage, User, budget_segment, tenant_pk
from chalicelib.budget_models import PrincipalBudget
from chalicelib.metering.counter_keys import principal_admitted_key, principal_committed_key
from chalicelib.periods import current_period
from chalicelib.store import get_items
from chalicelib.tenants import change_tenant, parse_budget_micros

MAX_REQUESTS = 100_000_000
FIELDS = ("monthly_budget_usd", "monthly_requests", "hard_limit")


def _principal(tenant_id: str, principal_type: str, principal_id: str) -> None:
    model = ApiKey if principal_type == "api_key" else User
    try:
        model.get(tenant_pk(tenant_id), model.sk_for(principal_id), consistent_read=True)
    except model.DoesNotExist:
        raise NotFound("API key not found." if principal_type == "api_key" else "User not found.") from None


def set_budget(tenant_id: str, principal_type: str, principal_id: str, body: Mapping[str, Any]) -> dict:
    """Set (or, with both amounts null, remove) a principal's monthly budget."""
    validation.fields(body, FIELDS)
    if not body:
        raise BadRequest("Give monthly_budget_usd, monthly_requests and/or hard_limit.", code="empty_update")
    _principal(tenant_id, principal_type, principal_id)
    current = get_items([(PrincipalBudget, tenant_pk(tenant_id), PrincipalBudget.sk_for(principal_id))],
                        consistent=True)[0]
    budget = parse_budget_micros(body["monthly_budget_usd"]) if "monthly_budget_usd" in body else (
        None if current is None or current.budget_micros is None else int(current.budget_micros))
    requests = int(current.requests) if current is not None and current.requests is not None else None
    if "monthly_requests" in body:
        requests = None if body["monthly_requests"] is None else validation.integer(
            body, "monthly_requests", minimum=0, maximum=MAX_REQUESTS)
    hard = validation.boolean(body, "hard_limit") if "hard_limit" in body else bool(current and current.hard)
    removed = budget is None and requests is None
    key = (tenant_pk(tenant_id), PrincipalBudget.sk_for(principal_id))
    seeded = hard and not removed and (current is None or not current.hard)
    counters = _month_so_far(tenant_id, principal_id) if seeded else None

    def marks(tenant) -> dict:
        held, listed = set(tenant.hard_budgets or ()), set(tenant.budgeted_principals or ())
        held.discard(principal_id)
        listed.discard(principal_id)
        if not removed:
            listed.add(principal_id)
            if hard:
                held.add(principal_id)
        # the budget job lists a tenant with any budget, its own or a principal's (gsi2)
        listed_for_job = bool(listed) or tenant.monthly_budget_micros is not None
        return {"hard_budgets": held or None, "budgeted_principals": listed or None,
                "gsi2pk": budget_segment(tenant_id) if listed_for_job else None,
                "gsi2sk": tenant_id if listed_for_job else None}

    def write(tx) -> None:
        if current is None:
            if not removed:
                tx.save(PrincipalBudget(*key, principal_id=principal_id, principal_type=principal_type,
                                        budget_micros=budget, requests=requests, hard=hard, version=1,
                                        counters=counters or {}), condition=PrincipalBudget.sk.does_not_exist())
            return
        unchanged = PrincipalBudget.version == int(current.version)
        if removed:
            tx.delete(PrincipalBudget(*key), condition=unchanged)
            return
        # Only the terms change: the counters are admission's, moved by transactions meanwhile.
        amounts = ((PrincipalBudget.budget_micros, budget), (PrincipalBudget.requests, requests))
        actions = [attribute.set(value) if value is not None else attribute.remove() for attribute, value in amounts]
        actions += [PrincipalBudget.hard.set(hard), PrincipalBudget.version.set(int(current.version) + 1)]
        if counters is not None:
            actions.append(PrincipalBudget.counters.set(counters))
        tx.update(PrincipalBudget(*key), actions=actions, condition=unchanged)

    from pynamodb.exceptions import TransactWriteError

    from chalicelib.store import cancelled_because

    try:
        change_tenant(tenant_id, marks, also=write)
    except TransactWriteError as error:
        if cancelled_because(error, 2):  # the budget item changed since it was read: another edit landed
            raise Conflict("This budget changed while this request ran; read it and try again.",
                           code="conflict") from None
        raise
    return view(tenant_id, principal_type, principal_id)


def _month_so_far(tenant_id: str, principal_id: str) -> dict:
    """A budget becoming hard starts from the month's settled use (KeyUsage), not from zero: calls in flight
    at that moment are the only ones it does not count."""
    period = current_period()
    used = get_items([(KeyUsage, tenant_pk(tenant_id), KeyUsage.sk_for(period, principal_id))], consistent=True)[0]
    return {principal_admitted_key(period): int(used.requests) if used else 0,
            principal_committed_key(period): int(used.cost_micros) if used else 0}


def view(tenant_id: str, principal_type: str, principal_id: str, period: Optional[str] = None) -> dict:
    """The principal's budget with this month's use: settled spend and requests (KeyUsage), and for a hard
    budget what admission holds (worst cases of calls in flight included)."""
    _principal(tenant_id, principal_type, principal_id)
    period = period or current_period()
    pk = tenant_pk(tenant_id)
    item, used = get_items([(PrincipalBudget, pk, PrincipalBudget.sk_for(principal_id)),
                            (KeyUsage, pk, KeyUsage.sk_for(period, principal_id))], consistent=True)
    counters = item.counters.as_dict() if item is not None and item.counters else {}
    return {
        "principal_id": principal_id, "principal_type": principal_type, "period": period,
        "monthly_budget_usd": None if item is None or item.budget_micros is None
        else pricing.usd(int(item.budget_micros)),
        "monthly_requests": None if item is None or item.requests is None else int(item.requests),
        "hard_limit": bool(item is not None and item.hard),
        "spend_usd": pricing.usd(int(used.cost_micros) if used is not None else 0),
        "requests": int(used.requests) if used is not None else 0,
        "committed_usd": pricing.usd(int(counters.get(principal_committed_key(period), 0))) if item is not None and item.hard else None,
        "admitted_requests": int(counters.get(principal_admitted_key(period), 0)) if item is not None and item.hard else None,
    }


# --- the routes' calls ------------------------------------------------------------------------------

def change(ctx, principal_type: str, principal_id: str, body: Mapping[str, Any]) -> dict:
    """PUT .../budget: the tenant's owner or admin sets a key's or a user's budget."""
    ctx.require("admin")
    return set_budget(ctx.tenant_id, principal_type, principal_id, body)


def read(ctx, principal_type: str, principal_id: str) -> dict:
    """GET .../budget: owners and admins read any; a key or a user its own."""
    if ctx.principal_id != principal_id:
        ctx.require("admin")
    return view(ctx.tenant_id, principal_type, principal_id)


def audit_subject(id_name: str):
    """The audit trail's before/after of a budget change: the budget item (chalicelib/audit.py)."""
    def read_item(tenant_id: str, params: Mapping[str, Any], result: Any) -> Optional[dict]:
        from chalicelib.audit import snapshot

        try:
            return snapshot(PrincipalBudget.get(tenant_pk(tenant_id), PrincipalBudget.sk_for(params[id_name]),
                                                consistent_read=True))
        except PrincipalBudget.DoesNotExist:
            return None
    return read_item
