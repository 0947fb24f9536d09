"""The plan catalog: operators create and edit plans through the API; every edit is a new version.

An edit writes the new version item and the plan's current item in one transaction, conditioned on the
current item being the version the edit was based on, so two operators' edits never interleave and no
version number is used twice; the same transaction writes the audit record (chalicelib/audit.py) under
`plan:<name>` that names the operator, the request and the plan before and after. Nothing is deployed: the AI path reads the plan's
current item in the BatchGetItem it already makes for the tenant (chalicelib/ai/gateway.py), so a warm
instance serves an edit after at most its tenant cache's TTL (TESSERA_TENANT_CACHE_SECONDS, 5 s);
every other read (settings, usage, operator pages) reads the current item at once.

A plan no operator has edited is its built-in default (chalicelib/plans.py, version 0).
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from chalicelib import audit, pricing, validation
from chalicelib.errors import BadRequest, Conflict, NotFound
from chalicelib.periods import isoformat, utcnow
from chalicelib.plan_models import PLAN_PARTITION, POOL_SHARES_SK, PlanRecord, PoolSharesRecord
from chalicelib.plans import DEFAULT_PLANS, FEATURES, Plan
from chalicelib.records import AuditRecord

PLAN_NAME = re.compile(r"[a-z][a-z0-9-]{1,31}")
MAX_FEATURE_LIMIT = 100_000_000
MAX_REQUESTS_PER_MINUTE = 100_000
MAX_PRICE_USD = 1_000_000
REQUIRED = ("features", "requests_per_minute", "max_tokens_cap", "models", "monthly_price_usd")
POOL_FIELDS = ("pool_share_percent", "pool_reserved_percent")  # optional: a new plan is best effort (0)
FIELDS = REQUIRED + POOL_FIELDS


def audit_subject(name: str) -> str:
    """Where a plan's audit records live (AUDIT#plan:<name>): apart from every tenant's."""
    return f"plan:{name}"


# --- reads --------------------------------------------------------------------------------------

def current_ref(name: str) -> Tuple[type, str, str]:
    """The plan's current item as a BatchGetItem reference (chalicelib.store.get_items)."""
    return PlanRecord, PLAN_PARTITION, PlanRecord.current_sk(name)


def from_record(name: str, record: Optional[PlanRecord]) -> Optional[Plan]:
    """The plan as its current item (read with the caller's other items) has it, else its default."""
    if record is None:
        return DEFAULT_PLANS.get(name)
    return Plan.from_data(name, int(record.version), json.loads(record.definition), record.changed_by,
                          isoformat(record.changed_at))


def current(name: str) -> Optional[Plan]:
    """The plan as it stands now (a consistent read); None for a plan that does not exist."""
    try:
        record = PlanRecord.get(PLAN_PARTITION, PlanRecord.current_sk(name), consistent_read=True)
    except PlanRecord.DoesNotExist:
        record = None
    return from_record(name, record)


def require(name: str) -> Plan:
    found = current(name)
    if found is None:
        raise NotFound(f"Plan '{name}' not found.", code="plan_not_found")
    return found


def audit_page(name: str, limit: Optional[str], cursor: Optional[str]) -> dict:
    """GET /admin/plans/{plan}/audit: a plan that does not exist (or a name no plan can have) is a 404."""
    if not PLAN_NAME.fullmatch(name or ""):
        raise NotFound(f"Plan '{name}' not found.", code="plan_not_found")
    require(name)
    return audit.page(audit_subject(name), limit, cursor)


def all_plans() -> Dict[str, Plan]:
    """Every plan as it stands: the defaults, replaced by their edits, and the plans operators created."""
    plans = dict(DEFAULT_PLANS)
    for record in PlanRecord.query(PLAN_PARTITION, PlanRecord.sk.startswith("CURRENT#"), consistent_read=True):
        name = record.sk[len("CURRENT#"):]
        plans[name] = from_record(name, record)
    return plans


def version_of(name: str, version: int) -> Plan:
    """One version as it was: version 0 is the built-in default, if the plan has one."""
    if version == 0 and name in DEFAULT_PLANS:
        return DEFAULT_PLANS[name]
    try:
        record = PlanRecord.get(PLAN_PARTITION, PlanRecord.version_sk(name, version), consistent_read=True)
    except PlanRecord.DoesNotExist:
        raise NotFound(f"Plan '{name}' has no version {version}.", code="plan_version_not_found") from None
    return from_record(name, record)


def versions(name: str) -> List[Plan]:
    """Every version of a plan, oldest first (its default first, as version 0)."""
    require(name)
    edits = [from_record(name, r) for r in PlanRecord.query(
        PLAN_PARTITION, PlanRecord.sk.startswith(f"VERSION#{name}#"), consistent_read=True)]
    return ([DEFAULT_PLANS[name]] if name in DEFAULT_PLANS else []) + edits


def view(plan: Plan) -> dict:
    return {"plan": plan.name, "version": plan.version, "features": dict(plan.features),
            "requests_per_minute": plan.requests_per_minute, "max_tokens_cap": plan.max_tokens_cap,
            "models": list(plan.models), "monthly_price_usd": pricing.usd(plan.monthly_price_micros),
            "pool_share_percent": plan.pool_share_percent, "pool_reserved_percent": plan.pool_reserved_percent,
            "changed_by": plan.changed_by, "changed_at": plan.changed_at}


def list_view() -> dict:
    return {"plans": [view(p) for p in sorted(all_plans().values(), key=lambda p: p.monthly_price_micros)]}


def versions_view(name: str) -> dict:
    return {"plan": name, "versions": [view(p) for p in versions(name)]}


# --- the edit -----------------------------------------------------------------------------------

def checked(name: str, body: Mapping[str, Any], base: Optional[Plan], reserved_elsewhere: int = 0) -> Plan:
    """The plan an edit asks for: `body`'s fields over `base` (every required field when creating), each
    checked; `reserved_elsewhere` is the other plans' pool reserves in percent. A plain function of its
    inputs: nothing is read or written here."""
    validation.fields(body, FIELDS, required=() if base is not None else REQUIRED)
    if not body:
        raise BadRequest("Nothing to update.", code="empty_update")
    features = dict(base.features) if base else {}
    if "features" in body:
        features = _features(body["features"])
    models = tuple(base.models) if base else ()
    if "models" in body:
        models = _models(body["models"])
    rpm = base.requests_per_minute if base else 0
    if "requests_per_minute" in body:
        rpm = validation.integer(body, "requests_per_minute", minimum=1, maximum=MAX_REQUESTS_PER_MINUTE)
    cap = base.max_tokens_cap if base else 0
    if "max_tokens_cap" in body:
        cap = validation.integer(body, "max_tokens_cap", minimum=1, maximum=10_000_000)
    most = max(pricing.MODELS[m].max_output_tokens for m in models)
    if cap > most:
        raise BadRequest(f"max_tokens_cap: {cap} is above {most}, the most any of the plan's models writes.",
                         code="max_tokens_above_model", details={"max_tokens_cap": most})
    price = base.monthly_price_micros if base else 0
    if "monthly_price_usd" in body:
        price = _price(body["monthly_price_usd"])
    share, reserved = _pool_share(body, base, reserved_elsewhere)
    return Plan(name, features, rpm, cap, models, price, (base.version if base else 0) + 1,
                pool_share_percent=share, pool_reserved_percent=reserved)


def _pool_share(body: Mapping[str, Any], base: Optional[Plan], reserved_elsewhere: int) -> Tuple[int, int]:
    """The plan's pool share and the part of it reserved: whole percent, the reserve within the share, and
    every plan's reserves together under 100 % (else no capacity would be left to lend or share)."""
    share = base.pool_share_percent if base else 0
    if "pool_share_percent" in body:
        share = validation.integer(body, "pool_share_percent", minimum=0, maximum=100)
    reserved = base.pool_reserved_percent if base else 0
    if "pool_reserved_percent" in body:
        reserved = validation.integer(body, "pool_reserved_percent", minimum=0, maximum=100)
    if reserved > share:
        raise BadRequest(f"pool_reserved_percent ({reserved}) must not exceed pool_share_percent ({share}): the "
                         "reserve is the part of the plan's share never lent to other plans.",
                         code="invalid_field", details={"pool_share_percent": share})
    if reserved and reserved + reserved_elsewhere >= 100:
        raise BadRequest(f"pool_reserved_percent: {reserved} with the other plans' {reserved_elsewhere} would "
                         f"reserve {reserved + reserved_elsewhere} % of the pool; every plan's reserves together "
                         f"must stay under 100 %.", code="pool_reserve_too_large",
                         details={"reserved_by_other_plans": reserved_elsewhere})
    return share, reserved


def pool_shares(plans: Mapping[str, Plan]) -> Dict[str, List[int]]:
    """Every plan's pool share as the catalog's summary item holds it."""
    return {name: [plan.pool_share_percent, plan.pool_reserved_percent] for name, plan in sorted(plans.items())}


def _features(value: Any) -> Dict[str, Optional[int]]:
    if not isinstance(value, dict):
        raise BadRequest("features must be an object of feature name to monthly limit (null: unlimited).",
                         code="invalid_field")
    out: Dict[str, Optional[int]] = {}
    for feature, limit in value.items():
        if feature not in FEATURES:
            raise BadRequest(f"Unknown feature: {feature}. Features: {', '.join(FEATURES)}.",
                             code="unknown_feature", details={"feature": feature})
        out[feature] = None if limit is None else validation.integer(
            value, feature, minimum=0, maximum=MAX_FEATURE_LIMIT)
    return out


def _models(value: Any) -> Tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(m, str) for m in value):
        raise BadRequest("models must be a non-empty list of model ids.", code="invalid_field")
    for model in value:
        if model not in pricing.MODELS:
            raise BadRequest(f"Unknown model '{model}'. Models: {', '.join(pricing.MODELS)}.",
                             code="invalid_model", details={"model": model})
    return tuple(dict.fromkeys(value))


def _price(value: Any) -> int:
    dollars = validation.as_integer(value)
    if dollars is not None:
        amount = dollars * pricing.MICROS_PER_USD
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{1,7}(\.[0-9]{1,6})?", value):
        amount = pricing.to_micros(value)
    else:
        raise BadRequest("monthly_price_usd must be whole dollars as a number or a decimal string of dollars "
                         "with at most 6 decimal places (\"49.00\").", code="invalid_field")
    if not 0 <= amount <= MAX_PRICE_USD * pricing.MICROS_PER_USD:
        raise BadRequest(f"monthly_price_usd must be between 0 and {MAX_PRICE_USD}.", code="invalid_field")
    return amount


def save(name: str, body: Mapping[str, Any], actor: audit.Actor, create: bool) -> dict:
    """Create a plan (`create`: every field given, the name new) or edit one (the fields given)."""
    from pynamodb.exceptions import TransactWriteError

    from chalicelib.logs import bound
    from chalicelib.store import conflicted, transaction

    validation.fields(body, FIELDS)
    if not PLAN_NAME.fullmatch(name or ""):
        raise BadRequest("A plan's name is 2 to 32 of a-z, 0-9 and -, starting with a letter.",
                         code="invalid_plan_name")
    summary = _pool_summary()  # before the plans: an edit committed after this read fails our transaction
    plans = all_plans()
    base = plans.get(name)
    if create and base is not None:
        raise Conflict(f"Plan '{name}' exists; PATCH /admin/plans/{name} edits it.", code="plan_exists")
    if not create and base is None:
        raise NotFound(f"Plan '{name}' not found.", code="plan_not_found")
    plan = checked(name, body, base, sum(p.pool_reserved_percent for n, p in plans.items() if n != name))
    now = utcnow()
    request_id = bound().get("request_id")
    fields = dict(version=plan.version, definition=json.dumps(plan.as_data(), sort_keys=True),
                  changed_by=actor.id, changed_at=now, request_id=request_id)
    head = PlanRecord(PLAN_PARTITION, PlanRecord.current_sk(name), **fields)
    unchanged = (PlanRecord.version == base.version) if base is not None and base.version > 0 \
        else PlanRecord.sk.does_not_exist()
    entry = audit.new_entry(audit_subject(name), actor, "plan.create" if create else "plan.update",
                            view(base) if base is not None else None, view(from_record(name, head)), request_id)
    try:
        with transaction() as tx:  # the version, the plan as it stands and its audit record: all or none
            tx.save(PlanRecord(PLAN_PARTITION, PlanRecord.version_sk(name, plan.version), **fields),
                    condition=PlanRecord.sk.does_not_exist())
            tx.save(head, condition=unchanged)
            tx.save(entry, condition=AuditRecord.pk.does_not_exist())
            tx.save(PoolSharesRecord(PLAN_PARTITION, POOL_SHARES_SK, shares=json.dumps(pool_shares(
                {**plans, name: plan})), version=(summary.version if summary else 0) + 1),
                condition=(PoolSharesRecord.version == summary.version) if summary
                else PoolSharesRecord.sk.does_not_exist())
    except TransactWriteError as error:
        reasons = [getattr(reason, "code", None) if reason else None
                   for reason in getattr(error, "cancellation_reasons", None) or []]
        if len(reasons) == 4 and reasons[3] == "ConditionalCheckFailed" and reasons[1] != "ConditionalCheckFailed":
            # only the pool shares' summary moved: another plan's edit landed, this plan did not change
            raise Conflict("Another plan's edit landed while this one ran (every edit writes the plans' pool "
                           "shares together); try again.", code="conflict") from None
        if conflicted(error) or reasons:
            raise Conflict(f"Plan '{name}' changed while this edit ran; read it and try again.",
                           code="conflict") from None
        raise
    return view(from_record(name, head))


def _pool_summary() -> Optional[PoolSharesRecord]:
    try:
        return PoolSharesRecord.get(PLAN_PARTITION, POOL_SHARES_SK, consistent_read=True)
    except PoolSharesRecord.DoesNotExist:
        return None


def create(body: Mapping[str, Any], actor: audit.Actor) -> dict:
    """POST /admin/plans: `plan` names the new plan; every other field is required but the pool share's
    (a new plan is best effort in the shared pool unless it says otherwise)."""
    validation.fields(body, FIELDS + ("plan",))
    rest = {k: v for k, v in body.items() if k != "plan"}
    name = body.get("plan")
    return save(name if isinstance(name, str) else "", rest, actor, create=True)


def edit(name: str, body: Mapping[str, Any], actor: audit.Actor) -> dict:
    """PATCH /admin/plans/{plan}: the fields given replace the plan's; a new version."""
    return save(name, body, actor, create=False)


def version_view(name: str, version: str) -> dict:
    if not (version.isascii() and version.isdigit() and len(version) <= 6):
        raise BadRequest("version must be a whole number.", code="invalid_version")
    return view(version_of(name, int(version)))
