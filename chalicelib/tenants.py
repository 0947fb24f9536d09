"""Tenants: sign-up, the tenant profile and its budget settings."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any, Callable, Mapping, Optional

from pynamodb.exceptions import TransactWriteError

from chalicelib import idempotency, pricing, validation
from chalicelib.errors import BadRequest, Conflict, NotFound
from chalicelib.identity.passwords import MAX_LENGTH, MIN_LENGTH, hash_password, visible_characters
from chalicelib.ids import new_id
from chalicelib.logs import get_logger
from chalicelib.metering.limits import TenantLimits
from chalicelib.models import (
    SLUG_LIST_PARTITION,
    TENANT_LIST_PARTITION,
    Admission,
    AIConfig,
    SlugClaim,
    Tenant,
    User,
    UserEmail,
    budget_segment,
    tenant_pk,
)
from chalicelib.notify import Notifier
from chalicelib.periods import isoformat, utcnow
from chalicelib.plans import DEFAULT_PLAN
from chalicelib.store import cancelled_because, transaction

log = get_logger("tenants")

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# A slug becomes a subdomain (`<slug>.<base domain>`), so names a resolver, a browser or a mail system treats
# specially are reserved along with our own, and so is every slug that reads as an address.
RESERVED_SLUGS = frozenset({
    "www", "api", "app", "admin", "administrator", "root", "mail", "email", "support", "help", "status",
    "billing", "auth", "login", "signup", "static", "assets", "cdn", "docs", "blog", "dashboard",
    "console", "tessera", "system", "internal", "operator", "operators", "security", "dev", "staging", "prod",
    "localhost", "localdomain", "local", "loopback", "broadcasthost", "ip6-localhost", "ip6-loopback",
    "wpad", "isatap", "autodiscover", "autoconfig", "mta-sts", "smtp", "imap", "pop", "pop3", "ftp", "ns",
    "ns1", "ns2", "mx", "webmail", "example", "invalid", "test", "onion",
})
# Dotted addresses written with hyphens, as wildcard-DNS services spell them: 127-0-0-1, 0-0-0-0,
# 10-1-2-3, and full IPv6 addresses such as 0-0-0-0-0-0-0-1.
ADDRESS_LIKE_SLUG = re.compile(r"[0-9]{1,3}(?:-[0-9]{1,3}){3}|[0-9a-f]{1,4}(?:-[0-9a-f]{1,4}){7}")
DEFAULT_THRESHOLDS = (50, 80, 100)
DEFAULT_AI_SETTINGS = {"max_tokens": 1024, "temperature": 0.7}


def validate_slug(value: Any) -> str:
    slug = validation.string({"slug": value}, "slug", min_len=3, max_len=32, pattern=SLUG,
                             hint="lowercase letters, digits and single hyphens")
    if slug in RESERVED_SLUGS or ADDRESS_LIKE_SLUG.fullmatch(slug):
        raise BadRequest(f"The slug '{slug}' is reserved.", code="slug_reserved")
    return slug


def validate_password(body: Mapping[str, Any]) -> str:
    value = body.get("password")
    if not isinstance(value, str) or not (MIN_LENGTH <= len(value) <= MAX_LENGTH):
        raise BadRequest(f"password must be {MIN_LENGTH} to {MAX_LENGTH} characters long.", code="invalid_field")
    if visible_characters(value) < MIN_LENGTH:
        raise BadRequest(f"password must have at least {MIN_LENGTH} characters that are not spaces or control "
                         "characters.", code="invalid_field")
    return value


def _signup_fingerprint(idempotency_key: str, name: str, slug: str, email: str, password: str) -> str:
    """What a replay must repeat: the whole sign-up, password included. An HMAC keyed by the Idempotency-Key,
    which the table holds only as a digest, so the record is no fast hash of the password to test guesses on."""
    message = json.dumps([name, slug, email, password]).encode()
    return hmac.new(idempotency_key.encode(), message, hashlib.sha256).hexdigest()


def sign_up(body: Mapping[str, Any], idempotency_key: Optional[str] = None,
            notifier: Optional[Notifier] = None) -> dict:
    """Create tenant, slug claim, owner and AI config in one transaction: all or nothing."""
    return sign_up_once(body, idempotency_key, notifier)[1]


def sign_up_once(body: Mapping[str, Any], idempotency_key: Optional[str] = None,
                 notifier: Optional[Notifier] = None) -> idempotency.Response:
    """`sign_up` as POST /tenants answers it: 201 and the new tenant, or, for a retry with the same
    Idempotency-Key and body, the first sign-up's 201 again (chalicelib/idempotency.py). The body is checked
    before the key is claimed, so bad input writes nothing; a sign-up that fails (a taken slug) releases
    the claim, so its retry runs anew."""
    validation.fields(body, {"company_name", "slug", "email", "password"},
                      required=("company_name", "slug", "email", "password"))
    name = validation.display_name(body, "company_name", max_len=120)
    slug = validate_slug(body["slug"])
    email = validation.email(body)
    password = validate_password(body)
    key = idempotency.check_key(idempotency_key)
    fingerprint = _signup_fingerprint(key, name, slug, email, password) if key is not None else ""
    return idempotency.run_once(idempotency.signup_scope, key, fingerprint,
                                lambda: (201, _create(name, slug, email, password, notifier, key, fingerprint), {}),
                                stores_itself=True)


def _create(name: str, slug: str, email: str, password: str, notifier: Optional[Notifier],
            idempotency_key: Optional[str], fingerprint: str) -> dict:
    now = utcnow()
    tenant_id, user_id = new_id("ten"), new_id("usr")
    pk = tenant_pk(tenant_id)
    tenant = Tenant(pk, Tenant.SK, tenant_id=tenant_id, name=name, slug=slug, plan=DEFAULT_PLAN,
                    status="active", created_at=now, budget_hard_limit=False, owner_count=1,
                    budget_alert_thresholds=set(DEFAULT_THRESHOLDS),
                    gsi1pk=TENANT_LIST_PARTITION, gsi1sk=f"{isoformat(now)}#{tenant_id}",
                    gsi3pk=SLUG_LIST_PARTITION, gsi3sk=slug)
    owner = User(pk, User.sk_for(user_id), user_id=user_id, email=email,
                 password_hash=hash_password(password), role="owner", status="active", created_at=now)
    response = {
        "tenant_id": tenant_id, "slug": slug, "name": name, "plan": DEFAULT_PLAN, "status": "active",
        "created_at": isoformat(now), "owner": {"user_id": user_id, "email": email, "role": "owner"},
    }
    try:
        with transaction(client_request_token=tenant_id) as tx:
            tx.save(SlugClaim(*SlugClaim.key(slug), tenant_id=tenant_id), condition=SlugClaim.pk.does_not_exist())
            tx.save(tenant, condition=Tenant.pk.does_not_exist())
            tx.save(owner, condition=User.pk.does_not_exist())
            tx.save(UserEmail(pk, UserEmail.sk_for(email), user_id=user_id), condition=UserEmail.pk.does_not_exist())
            tx.save(AIConfig(pk, AIConfig.SK, model=pricing.DEFAULT_MODEL, custom_instructions="",
                             inject_context=True, updated_at=now, **DEFAULT_AI_SETTINGS))
            tx.save(Admission(pk, Admission.SK, version=0, limits=TenantLimits.of(tenant).to_json(),
                              counters={}))
            if idempotency_key is not None:  # the replay is written with the tenant (chalicelib/idempotency.py)
                idempotency.store_in(tx, idempotency.signup_scope, idempotency_key, fingerprint, 201, response, {})
    except TransactWriteError as error:
        if cancelled_because(error, 0):
            raise Conflict(f"The slug '{slug}' is already taken.", code="slug_taken") from None
        raise
    log.info("tenant created", extra={"fields": {"tenant_id": tenant_id}})
    _send_welcome(notifier or Notifier(), email, slug)
    return response


def _send_welcome(notifier: Notifier, email: str, slug: str) -> None:
    """Sign-up is public, so the email carries no free text the signer chose (only the constrained slug):
    it cannot be used to send someone else a message of the signer's writing."""
    try:
        notifier.email([email], "Welcome to Tessera",
                       f"Your workspace '{slug}' is ready. Sign in with this email address.")
    except Exception as error:  # an email outage must not undo a committed sign-up
        log.warning("welcome email failed", extra={"fields": {"error": type(error).__name__}})


def get_tenant(tenant_id: str, consistent: bool = False) -> Tenant:
    try:
        return Tenant.get(tenant_pk(tenant_id), Tenant.SK, consistent_read=consistent)
    except Tenant.DoesNotExist:
        raise NotFound("Tenant not found.") from None


def profile(tenant: Tenant) -> dict:
    return {
        "tenant_id": tenant.tenant_id,
        "name": tenant.name,
        "slug": tenant.slug,
        "plan": tenant.plan,
        "status": tenant.status,
        "created_at": isoformat(tenant.created_at),
        "budget": budget_settings(tenant),
    }


def budget_settings(tenant: Tenant) -> dict:
    budget = tenant.monthly_budget_micros
    return {
        "monthly_budget_usd": pricing.usd(int(budget)) if budget is not None else None,
        "budget_alert_thresholds": sorted(int(t) for t in (tenant.budget_alert_thresholds or DEFAULT_THRESHOLDS)),
        "budget_hard_limit": bool(tenant.budget_hard_limit),
    }


MAX_BUDGET_USD = 10_000_000
# Dollars with at most six decimal places: a budget is whole micro-dollars, never silently rounded.
BUDGET_STRING = re.compile(r"^(?:[0-9]{1,7}(?:\.[0-9]{1,6})?|10000000(?:\.0{1,6})?)$")


def parse_budget_micros(value: Any) -> Optional[int]:
    """Whole dollars as a JSON number, or a decimal string of dollars with up to six places; never a
    float fraction (money is never float here, and 0.1 is not exactly a tenth)."""
    if value is None:
        return None
    dollars = validation.as_integer(value)
    if dollars is not None:
        amount = dollars * pricing.MICROS_PER_USD
    elif isinstance(value, str) and BUDGET_STRING.fullmatch(value):
        amount = pricing.to_micros(value)
    else:
        raise BadRequest("monthly_budget_usd must be whole dollars as a number, a decimal string of dollars "
                         "with at most 6 decimal places (\"12.50\"), or null.", code="invalid_field")
    if not (0 <= amount <= MAX_BUDGET_USD * pricing.MICROS_PER_USD):
        raise BadRequest(f"monthly_budget_usd must be between 0 and {MAX_BUDGET_USD}.", code="invalid_field")
    return amount


def _thresholds(value: Any) -> set:
    percents = [validation.as_integer(t) for t in value] if isinstance(value, list) else []
    if not 1 <= len(percents) <= 10 or any(p is None or not 1 <= p <= 100 for p in percents):
        raise BadRequest("budget_alert_thresholds must be 1 to 10 whole percentages from 1 to 100.",
                         code="invalid_field")
    return set(percents)


def update_tenant(tenant_id: str, body: Mapping[str, Any]) -> dict:
    """Owner/admin edits: the name and budget settings; plan and status are operator-only."""
    validation.fields(body, {"name", "monthly_budget_usd", "budget_alert_thresholds", "budget_hard_limit"})
    if not body:
        raise BadRequest("Nothing to update.", code="empty_update")
    changes: dict = {}
    if "name" in body:
        changes["name"] = validation.display_name(body, "name", max_len=120)
    if "monthly_budget_usd" in body:
        changes["monthly_budget_micros"] = parse_budget_micros(body["monthly_budget_usd"])
    if "budget_alert_thresholds" in body:
        changes["budget_alert_thresholds"] = _thresholds(body["budget_alert_thresholds"])
    if "budget_hard_limit" in body:
        changes["budget_hard_limit"] = validation.boolean(body, "budget_hard_limit")

    def change(tenant: Tenant) -> dict:
        if "monthly_budget_micros" not in changes:
            return changes
        # listed for the budget job while it has a budget: its own, or one of its keys' or users'
        listed = changes["monthly_budget_micros"] is not None or bool(tenant.budgeted_principals)
        return {**changes, "gsi2pk": budget_segment(tenant_id) if listed else None,
                "gsi2sk": tenant_id if listed else None}

    return profile(change_tenant(tenant_id, change))


def change_tenant(tenant_id: str, change: Callable[[Tenant], Mapping[str, Any]],
                  also: Optional[Callable[[Any], None]] = None) -> Tenant:
    """Set the attributes `change` returns (None removes one) and write the admission limits they imply.

    One transaction updates the profile (only if its limits are unchanged since it was read:
    `limits_version`) and the admission item's copy of the limits with the new version, so the next
    admission anywhere checks the new numbers and two concurrent changes cannot leave the copy behind
    the profile. Only the named attributes are written: counters kept elsewhere on the profile stay.
    `also(tx)` adds writes that must land with the change (a principal's budget item)."""
    from pynamodb.exceptions import TransactWriteError

    from chalicelib.store import RETRY, conflicted

    for attempt in range(1, RETRY.attempts + 1):
        tenant = get_tenant(tenant_id, consistent=True)
        version = tenant.limits_version
        changes = dict(change(tenant))
        changes["limits_version"] = int(version or 0) + 1
        actions = []
        for name, value in changes.items():
            setattr(tenant, name, value)
            attribute = getattr(Tenant, name)
            actions.append(attribute.remove() if value is None else attribute.set(value))
        unchanged = Tenant.limits_version.does_not_exist() if version is None else Tenant.limits_version == version
        admission = Admission(tenant_pk(tenant_id), Admission.SK)
        try:
            with transaction() as tx:
                tx.update(Tenant(tenant_pk(tenant_id), Tenant.SK), actions=actions,
                          condition=Tenant.pk.exists() & unchanged)
                tx.update(admission, actions=[Admission.version.set(tenant.limits_version),
                                              Admission.limits.set(TenantLimits.of(tenant).to_json()),
                                              Admission.counters.set(Admission.counters | {})])
                if also is not None:
                    also(tx)
        except TransactWriteError as error:
            if cancelled_because(error, 0):
                continue  # another change landed since the read: read again and apply this one to it
            if conflicted(error):
                RETRY.wait(attempt)
                continue
            raise
        return get_tenant(tenant_id, consistent=True)
    raise Conflict("The tenant changed while this request ran; try again.", code="conflict")
