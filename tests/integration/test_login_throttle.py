"""The login throttle against moto: a per-address limit, a much higher per-account ceiling across
addresses, and no lock for the account's owner from elsewhere."""
from __future__ import annotations

import secrets

import pytest

from chalicelib import tenants
from chalicelib.errors import InvalidCredentials, TooManyRequests
from chalicelib.identity.login import WINDOW_SECONDS, Throttle, address_bucket, login
from conftest import random_address, random_slug

PASSWORD = "throttle-password-1"
SMALL = Throttle(per_address=3, per_account=5)


@pytest.fixture
def account(environment):
    slug = random_slug("th")
    email = f"owner@{slug}.example.com"
    tenants.sign_up({"company_name": "Throttle Co", "slug": slug, "email": email, "password": PASSWORD})
    return slug, email


def attempt(account, password, source, throttle=SMALL):
    slug, email = account
    try:
        login({"tenant": slug, "email": email, "password": password}, source=source, throttle=throttle)
    except InvalidCredentials:
        return 401
    except TooManyRequests as error:
        assert error.code == "too_many_attempts"
        return 429
    return 200


@pytest.fixture(autouse=True)
def away_from_a_window_edge():
    import time

    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if left < 10:
        time.sleep(left + 0.1)


def test_guesses_from_many_addresses_stop_at_the_account_ceiling(account):
    addresses = [random_address() for _ in range(SMALL.per_account + 1)]
    assert [attempt(account, "wrong-guess-00", a) for a in addresses] == [401] * SMALL.per_account + [429]


def test_the_account_ceiling_does_not_count_against_the_refused_address(account):
    for _ in range(SMALL.per_account):
        attempt(account, "wrong-guess-00", random_address())
    address = random_address()
    assert attempt(account, "wrong-guess-00", address) == 429
    other_slug = random_slug("th")
    tenants.sign_up({"company_name": "Other Co", "slug": other_slug, "email": "o@other.example.com",
                     "password": PASSWORD})
    other = (other_slug, "o@other.example.com")
    assert [attempt(other, "wrong-guess-00", address) for _ in range(SMALL.per_address)] == [401] * SMALL.per_address


def test_a_success_is_not_counted(account):
    address = random_address()
    assert [attempt(account, PASSWORD, address) for _ in range(SMALL.per_address + 2)] == [200] * 5


def test_addresses_of_one_ipv6_64_share_a_count(account):
    prefix = f"2001:db8:{secrets.randbelow(0xffff):x}:{secrets.randbelow(0xffff):x}:"
    answers = [attempt(account, "wrong-guess-00", f"{prefix}{i:x}:1:2:3") for i in range(SMALL.per_address + 1)]
    assert answers == [401] * SMALL.per_address + [429]


def test_an_address_is_throttled_by_its_ipv4_or_ipv6_64():
    assert address_bucket("203.0.113.9") == "203.0.113.9"
    assert address_bucket("::ffff:203.0.113.9") == "203.0.113.9"
    assert address_bucket("2001:db8:1:2:aaaa::1") == address_bucket("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_bucket("not an address") == address_bucket(None) == "unknown"


def test_the_default_account_ceiling_is_much_higher_than_the_address_limit():
    default = Throttle()
    assert default.per_account >= 10 * default.per_address
