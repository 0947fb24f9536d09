"""Admission's part for a principal (an API key or a user) with a hard budget of its own.

Such a call is admitted by one TransactWriteItems of two updates: the admission item's, exactly as for
any call (chalicelib/metering/admission.py), and the principal's budget item's, which adds the call to
its month's admitted calls (`a:<period>`) and committed micro-dollars (`w:<period>`, the worst case)
under the condition that both stay within the budget and that the budget is the one this instance read
(`version`). DynamoDB checks both conditions and applies both updates atomically: the principal's
counters are exact however many calls race. Settling gives back the unused worst case to `w` in the
transaction that writes the usage event (chalicelib/metering/ledger.py). A call the sweeper finds
abandoned keeps its worst case on the principal's budget until the month ends: the stricter side.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from chalicelib.errors import PaymentRequired, TooManyRequests
from chalicelib.models import Admission, tenant_pk
from chalicelib.periods import current_period, period_end
from chalicelib.budget_models import PrincipalBudget
from chalicelib.logs import get_logger
from chalicelib.metering.counter_keys import principal_admitted_key, principal_committed_key
from chalicelib.store import UpdateText, conflicted, retry_conflicts

log = get_logger("principal_admission")


@dataclass(frozen=True)
class BudgetTerms:
    """A principal's budget as admission uses it (a plain value read from its item)."""

    principal_id: str
    version: int
    budget_micros: Optional[int]
    requests: Optional[int]
    hard: bool

    @classmethod
    def from_item(cls, item: Optional[PrincipalBudget]) -> Optional["BudgetTerms"]:
        if item is None:
            return None
        budget = None if item.budget_micros is None else int(item.budget_micros)
        return cls(item.principal_id, int(item.version), budget,
                   None if item.requests is None else int(item.requests), bool(item.hard))


def load_terms(tenant_id: str, principal_id: str) -> Optional[BudgetTerms]:
    """The principal's budget, read consistently (admission's confirmation of what it holds)."""
    try:
        return BudgetTerms.from_item(PrincipalBudget.get(tenant_pk(tenant_id), PrincipalBudget.sk_for(principal_id),
                                                         consistent_read=True))
    except PrincipalBudget.DoesNotExist:
        return None


@dataclass
class PrincipalCharge:
    """Who is calling, with what this instance knows of its budget (read only when the admission item
    marks the principal as possibly having a hard budget)."""

    principal_id: str
    load: Callable[[], Optional["BudgetTerms"]]  # a consistent read of its terms (None: no budget)
    terms: Optional["BudgetTerms"] = None
    loaded: bool = False
    seen_version: Optional[int] = None  # the admission item's version when `terms` was read
    confirmed: bool = False

    def current(self, version: int) -> Optional["BudgetTerms"]:
        """Its hard budget. Read again when unknown, or known as none at another version of the admission
        item (a budget is set in one transaction with that item's next version)."""
        hard = self.terms is not None and self.terms.hard
        if not self.loaded or (not hard and self.seen_version != version):
            self.terms, self.loaded, self.seen_version = self.load(), True, version
            hard = self.terms is not None and self.terms.hard
        return self.terms if hard else None

    def reload(self) -> None:
        """Read again before the next attempt; a refusal after that is confirmed."""
        self.loaded, self.confirmed = False, True


def limit_error(principal_id: str) -> TooManyRequests:
    """Until the month ends (its `resets_at` is added by chalicelib/web.py, as for a feature's limit)."""
    resets = period_end(current_period())
    return TooManyRequests("The monthly request limit of this API key or user is reached.",
                           retry_after=max(1, int(resets.timestamp() - time.time())),
                           code="principal_limit_reached", details={"principal_id": principal_id})


def budget_error(principal_id: str) -> PaymentRequired:
    return PaymentRequired("This request could exceed the monthly budget of this API key or user, which is a "
                           "hard limit.", code="principal_budget_exceeded", details={"principal_id": principal_id})


def check(terms, worst: int, count: int) -> None:
    """What no counter can lift: a call larger than the whole budget, more calls than the whole limit."""
    if terms.requests is not None and count > terms.requests:
        raise limit_error(terms.principal_id)
    if terms.budget_micros is not None and worst > terms.budget_micros:
        raise budget_error(terms.principal_id)


def write(terms, period: str, worst: int, count: int) -> UpdateText:
    update = UpdateText()
    admitted = update.name("counters", principal_admitted_key(period))
    committed = update.name("counters", principal_committed_key(period))
    update.require(f"{update.name('version')} = {update.number(terms.version)}")
    if terms.requests is not None:
        update.require(f"attribute_not_exists({admitted}) OR {admitted} <= {update.number(terms.requests - count)}")
    if terms.budget_micros is not None:
        update.require(f"attribute_not_exists({committed}) OR {committed} <= "
                       f"{update.number(terms.budget_micros - worst)}")
    update.add(admitted, count)
    update.add(committed, worst)
    return update


def refusal(terms, item: Optional[dict], period: str, worst: int, count: int) -> Exception:
    """Which of the principal's limits the budget item (as the failed transaction saw it) refused."""
    counters = {k: int(v["N"]) for k, v in ((item or {}).get("counters", {}).get("M", {})).items()}
    if terms.requests is not None and counters.get(principal_admitted_key(period), 0) + count > terms.requests:
        return limit_error(terms.principal_id)
    return budget_error(terms.principal_id)


def transact(tenant_id: str, principal_id: str, admission_update: UpdateText,
             principal_update: UpdateText) -> Tuple[str, Optional[dict]]:
    """Both updates in one TransactWriteItems: ("ok", None), ("admission", the admission item as it was),
    ("principal", the budget item as it was) or ("conflict", None) when another transaction held one."""
    from botocore.exceptions import ClientError

    table = Admission._get_connection()
    pk = tenant_pk(tenant_id)

    def item(sk: str, update: UpdateText) -> Dict[str, dict]:
        return {"Update": {"TableName": table.table_name, "Key": {"pk": {"S": pk}, "sk": {"S": sk}},
                           **update.request(), "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}

    try:
        table.connection.client.transact_write_items(TransactItems=[
            item(Admission.SK, admission_update), item(PrincipalBudget.sk_for(principal_id), principal_update)])
    except ClientError as error:
        reasons: List[dict] = error.response.get("CancellationReasons") or []
        codes = [r.get("Code") for r in reasons]
        if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
            raise
        if codes and codes[0] == "ConditionalCheckFailed":
            return "admission", reasons[0].get("Item")
        if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
            return "principal", reasons[1].get("Item")
        return "conflict", None
    return "ok", None


def give_back(status_charged: bool, status_failed: bool, worst: int, cost: int) -> Tuple[int, int]:
    """What a settled call gives back to its principal's budget: (micro-dollars, calls). Charged: the unused
    worst case; failed: all of it and the call; indeterminate (never charged, may have run): the worst case."""
    if status_charged:
        return worst - cost, 0
    return worst, 1 if status_failed else 0


def record_with_budget(event: dict, tenant_id: str, principal_id: str, period: str, refund: int,
                       released: int) -> Optional[bool]:
    """The usage event and its give-back to the principal's budget item in one TransactWriteItems (the
    one round trip the event costs anyway). True: written; False: the event was already recorded; None:
    the budget was removed meanwhile, or the budget item stayed in other transactions (the principal's
    concurrent admissions) through every attempt: the caller writes the event alone, so the call is
    never missing from the ledger; the give-back is then not applied (the budget errs on the strict side)."""
    from botocore.exceptions import ClientError

    table = Admission._get_connection()
    update = UpdateText()
    update.require(f"attribute_exists({update.name('principal_id')})")
    update.add(update.name("counters", principal_committed_key(period)), -refund)
    update.add(update.name("counters", principal_admitted_key(period)), -released)
    items = [{"Put": {"TableName": table.table_name, "Item": event, "ConditionExpression": "attribute_not_exists(#pk)",
                      "ExpressionAttributeNames": {"#pk": "pk"}}},
             {"Update": {"TableName": table.table_name,
                         "Key": {"pk": {"S": tenant_pk(tenant_id)}, "sk": {"S": PrincipalBudget.sk_for(principal_id)}},
                         **update.request()}}]

    def write() -> Optional[bool]:
        try:
            table.connection.client.transact_write_items(TransactItems=items)
            return True
        except ClientError as error:
            codes = [r.get("Code") for r in error.response.get("CancellationReasons") or []]
            if codes and codes[0] == "ConditionalCheckFailed":
                return False  # this attempt's or an earlier one's write landed: the event is recorded
            if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                return None
            raise

    try:
        return retry_conflicts(write)
    except ClientError as error:
        if not conflicted(error):
            raise
    log.warning("budget give-back not applied", extra={"fields": {"principal_id": principal_id,
                                                                   "refund_micros": refund, "released": released}})
    return None
