"""Password login for a tenant's users.

Every failure (unknown tenant or user, wrong password, suspended tenant) is
the same 401, and unknown users still cost a hash verification, so neither
the answer nor its timing tells which part was wrong. Attempts are counted
per (tenant, email) in fixed windows; past the limit the pair gets 429.
"""
from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from pynamodb.exceptions import UpdateError

from chalicelib import validation
from chalicelib.errors import BadRequest, InvalidCredentials, TooManyRequests
from chalicelib.identity.passwords import burn_verification_time, verify_password
from chalicelib.identity.tokens import issue_access_token
from chalicelib.models import LoginThrottle, SlugClaim, Tenant, User, UserEmail, tenant_pk
from chalicelib.settings import get_settings
from chalicelib.store import condition_failed, get_items

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60


def slug_from_host(host: Optional[str]) -> Optional[str]:
    """`acme.api.example.com` -> `acme` when the base domain is `api.example.com`."""
    base = get_settings().base_domain
    if not host or not base:
        return None
    name = host.split(":")[0].lower().rstrip(".")
    suffix = "." + base.lower().strip(".")
    if name.endswith(suffix):
        sub = name[: -len(suffix)]
        if sub and "." not in sub:
            return sub
    return None


def _throttle_key(slug: str, email: str, now: float) -> tuple[str, str, int]:
    digest = hashlib.sha256(f"{slug}\n{email}".encode()).hexdigest()
    start = int(now // WINDOW_SECONDS * WINDOW_SECONDS)
    return f"LOGIN#{digest}", f"WINDOW#{start}", start + WINDOW_SECONDS


def _reserve_attempt(pk: str, sk: str, window_end: int, now: float) -> None:
    """Count the attempt before the password is checked, with one conditional ADD, so concurrent
    guesses cannot overrun the limit (a read-then-write check let all of them through)."""
    expires = datetime.fromtimestamp(window_end + 60, timezone.utc)
    under_limit = LoginThrottle.failures.does_not_exist() | (LoginThrottle.failures < MAX_FAILURES)
    try:
        LoginThrottle(pk, sk).update(actions=[LoginThrottle.failures.add(1), LoginThrottle.expires_at.set(expires)],
                                     condition=under_limit)
    except UpdateError as error:
        if condition_failed(error):
            raise TooManyRequests("Too many failed sign-in attempts; try again later.",
                                  retry_after=window_end - int(now), code="too_many_attempts") from None
        raise


def _give_back_attempt(pk: str, sk: str) -> None:
    """A successful sign-in does not count against the limit."""
    LoginThrottle(pk, sk).update(actions=[LoginThrottle.failures.add(-1)])


NO_SUCH_TENANT = "ten_none"
NO_SUCH_USER = "usr_none"


def _find_user(slug: str, email: str) -> tuple[Optional[Tenant], Optional[User]]:
    """The same three reads whether or not the tenant and the email exist, so response time does not
    tell which emails have accounts. Strongly consistent: an owner signs in right after sign-up, and a
    suspension holds at once."""
    try:
        tenant_id = SlugClaim.get(*SlugClaim.key(slug), consistent_read=True).tenant_id
    except SlugClaim.DoesNotExist:
        tenant_id = NO_SUCH_TENANT
    pk = tenant_pk(tenant_id)
    tenant, email_claim = get_items([(Tenant, pk, Tenant.SK), (UserEmail, pk, UserEmail.sk_for(email))],
                                    consistent=True)
    user_id = email_claim.user_id if tenant is not None and email_claim is not None else NO_SUCH_USER
    try:
        user = User.get(pk, User.sk_for(user_id), consistent_read=True)
    except User.DoesNotExist:
        user = None
    return tenant, user


def login(body: Mapping[str, Any], host: Optional[str] = None) -> dict:
    validation.fields(body, {"tenant", "email", "password"}, required=("email", "password"))
    slug = body.get("tenant") or slug_from_host(host)
    if not slug:
        raise BadRequest("Name the tenant (its slug) in 'tenant' or call through its subdomain.",
                         code="missing_field")
    slug = validation.string({"tenant": slug}, "tenant", min_len=1, max_len=64).lower()
    email = validation.string(body, "email", min_len=1, max_len=254).strip().lower()
    password = validation.string(body, "password", min_len=1, max_len=256)

    now = time.time()
    pk, sk, window_end = _throttle_key(slug, email, now)
    _reserve_attempt(pk, sk, window_end, now)
    tenant, user = _find_user(slug, email)
    if user is None:
        burn_verification_time(password)
        ok = False
    else:
        ok = verify_password(user.password_hash, password)
    if not ok or tenant is None or tenant.status != "active" or user.status != "active":
        raise InvalidCredentials()
    _give_back_attempt(pk, sk)
    token, expires_in = issue_access_token(tenant.tenant_id, user.user_id, user.role)
    return {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
