"""Password login for a tenant's users.

Every failure (unknown tenant or user, wrong password, suspended tenant) is
the same 401, and unknown users still cost a hash verification, so neither
the answer nor its timing tells which part was wrong.

Failed attempts are throttled without handing attackers a lock on someone
else's account: they are counted per source address (an IPv6 address by its
/64, which one client usually holds whole) and, with a much higher ceiling,
per (tenant, email), in fixed windows. One address that guesses is stopped
after a few attempts while the account's owner, elsewhere, still signs in;
only guesses from many addresses at once reach the account's ceiling, which
bounds the guessing rate against one account.
"""
from __future__ import annotations

import hashlib
import ipaddress
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, List, Mapping, Optional, Tuple

from pynamodb.exceptions import UpdateError

from chalicelib import validation
from chalicelib.errors import BadRequest, InvalidCredentials, TooManyRequests
from chalicelib.identity.passwords import burn_verification_time, verify_password
from chalicelib.identity.tokens import issue_access_token
from chalicelib.models import LoginThrottle, SlugClaim, Tenant, User, UserEmail, tenant_pk
from chalicelib.periods import isoformat
from chalicelib.settings import get_settings
from chalicelib.store import condition_failed, get_items

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


@dataclass(frozen=True)
class Throttle:
    """Failed sign-ins allowed per window: per source address, and per (tenant, email) across addresses."""

    per_address: int = 20
    per_account: int = 200
    window_seconds: int = WINDOW_SECONDS

    def counters(self, slug: str, email: str, source: Optional[str], now: float) -> Tuple[List[Tuple[str, int]], str, int]:
        """[(pk, limit)] for the address and the account, the window's sort key and its end (epoch)."""
        start = int(now // self.window_seconds * self.window_seconds)
        account = hashlib.sha256(f"{slug}\n{email}".encode()).hexdigest()
        address = hashlib.sha256(address_bucket(source).encode()).hexdigest()
        return ([(f"LOGIN#ADDRESS#{address}", self.per_address), (f"LOGIN#{account}", self.per_account)],
                f"WINDOW#{start}", start + self.window_seconds)

    def reserve(self, slug: str, email: str, source: Optional[str], now: float) -> Tuple[List[str], str]:
        """Count the attempt on both counters before the password is checked, each with one conditional
        ADD, so concurrent guesses cannot overrun either limit (a read-then-write check let all of them
        through). Returns what give_back needs."""
        counters, sk, window_end = self.counters(slug, email, source, now)
        expires = datetime.fromtimestamp(window_end + 60, timezone.utc)
        counted: List[str] = []
        for pk, limit in counters:
            try:
                LoginThrottle(pk, sk).update(
                    actions=[LoginThrottle.failures.add(1), LoginThrottle.expires_at.set(expires)],
                    condition=LoginThrottle.failures.does_not_exist() | (LoginThrottle.failures < limit))
            except UpdateError as error:
                if not condition_failed(error):
                    raise
                self.give_back(counted, sk)
                resets = datetime.fromtimestamp(window_end, timezone.utc)
                raise TooManyRequests("Too many failed sign-in attempts; try again later.",
                                      retry_after=window_end - int(now), code="too_many_attempts",
                                      details={"resets_at": isoformat(resets)}) from None
            counted.append(pk)
        return counted, sk

    @staticmethod
    def give_back(pks: List[str], sk: str) -> None:
        """A successful sign-in (or an attempt the other counter refused) does not count."""
        for pk in pks:
            LoginThrottle(pk, sk).update(actions=[LoginThrottle.failures.add(-1)])


DEFAULT_THROTTLE = Throttle()


def address_bucket(source: Optional[str]) -> str:
    """The unit an address is throttled by: an IPv4 address, or an IPv6 address's /64."""
    try:
        address = ipaddress.ip_address(source or "")
    except ValueError:
        return "unknown"
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


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


def login(body: Mapping[str, Any], host: Optional[str] = None, source: Optional[str] = None,
          throttle: Throttle = DEFAULT_THROTTLE) -> dict:
    """`source` is the caller's address as API Gateway saw it (`requestContext.identity.sourceIp`)."""
    validation.fields(body, {"tenant", "email", "password"}, required=("email", "password"))
    slug = body.get("tenant") or slug_from_host(host)
    if not slug:
        raise BadRequest("Name the tenant (its slug) in 'tenant' or call through its subdomain.",
                         code="missing_field")
    slug = validation.string({"tenant": slug}, "tenant", min_len=1, max_len=64).lower()
    email = validation.string(body, "email", min_len=1, max_len=254).strip().lower()
    password = validation.string(body, "password", min_len=1, max_len=256)

    counted = throttle.reserve(slug, email, source, time.time())
    tenant, user = _find_user(slug, email)
    if user is None:
        burn_verification_time(password)
        ok = False
    else:
        ok = verify_password(user.password_hash, password)
    if not ok or tenant is None or tenant.status != "active" or user.status != "active":
        raise InvalidCredentials()
    throttle.give_back(*counted)
    token, expires_in = issue_access_token(tenant.tenant_id, user.user_id, user.role)
    return {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
