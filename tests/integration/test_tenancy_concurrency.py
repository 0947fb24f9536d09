"""Concurrency claims of sign-up and roles, tested with real threads against the moto server.

The threads call the service functions directly: chalice's test client keeps the current request on
the app object, so it cannot serve several threads at once.
"""
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import random_address, random_slug

PASSWORD = "correct-horse-battery"
SIGNUPS = 20
ROUNDS = 8


def race(functions):
    """Run the functions at the same moment on their own threads; return each one's result or error."""
    barrier = threading.Barrier(len(functions))

    def run(function):
        barrier.wait()
        try:
            return function()
        except Exception as error:  # noqa: BLE001 - the error is the result under test
            return error

    with ThreadPoolExecutor(len(functions)) as pool:
        return list(pool.map(run, functions))


def status_of(result):
    return 201 if isinstance(result, dict) else getattr(result, "status", 500)


def stored_tenants_with_slug(slug):
    from chalicelib.models import TENANT_LIST_PARTITION, Tenant

    return [t for t in Tenant.by_created.query(TENANT_LIST_PARTITION) if t.slug == slug]


# --- twenty sign-ups for one slug -------------------------------------------------------------------

@pytest.fixture(scope="module")
def slug_race(environment):
    from chalicelib import tenants

    slug = random_slug("race")

    def attempt(i):
        return lambda: tenants.sign_up({"company_name": f"Racer {i}", "slug": slug,
                                        "email": f"owner{i}@race.example.com", "password": PASSWORD})

    return slug, race([attempt(i) for i in range(SIGNUPS)])


def test_twenty_concurrent_signups_for_one_slug_make_exactly_one_201(slug_race):
    _, results = slug_race
    assert sorted(status_of(r) for r in results) == [201] + [409] * (SIGNUPS - 1), results


def test_every_losing_concurrent_signup_is_slug_taken(slug_race):
    _, results = slug_race
    assert {getattr(r, "code", None) for r in results if not isinstance(r, dict)} == {"slug_taken"}


def test_the_slug_belongs_to_the_one_winner(slug_race):
    from chalicelib.models import SlugClaim

    slug, results = slug_race
    (winner,) = [r for r in results if isinstance(r, dict)]
    assert SlugClaim.get(*SlugClaim.key(slug), consistent_read=True).tenant_id == winner["tenant_id"]


def test_only_the_winner_left_a_tenant_behind(slug_race):
    slug, results = slug_race
    (winner,) = [r for r in results if isinstance(r, dict)]
    assert [t.tenant_id for t in stored_tenants_with_slug(slug)] == [winner["tenant_id"]]


def test_the_winners_owner_and_ai_config_were_all_written(slug_race):
    from chalicelib.identity.login import login
    from chalicelib.models import AIConfig, tenant_pk

    slug, results = slug_race
    (winner,) = [r for r in results if isinstance(r, dict)]
    assert AIConfig.get(tenant_pk(winner["tenant_id"]), AIConfig.SK, consistent_read=True).max_tokens == 1024
    assert login({"tenant": slug, "email": winner["owner"]["email"], "password": PASSWORD})["access_token"]


def test_concurrent_signups_with_one_idempotency_key_make_one_tenant_and_the_rest_wait_or_replay(environment):
    """One claims the key and signs up; each other one, while it runs, is told to retry
    (idempotency_in_progress), and after it, gets its answer again. None is slug_taken."""
    from chalicelib import tenants

    body = {"company_name": "Retry Co", "slug": random_slug("idem"), "email": "owner@retry.example.com",
            "password": PASSWORD}
    key = secrets.token_hex(8)
    results = race([lambda: tenants.sign_up(body, key) for _ in range(8)])
    created = [r for r in results if isinstance(r, dict)]
    assert created and len({r["tenant_id"] for r in created}) == 1, results
    assert all(getattr(r, "code", None) == "idempotency_in_progress" and r.headers == {"Retry-After": "1"}
               for r in results if not isinstance(r, dict)), results
    assert [t.tenant_id for t in stored_tenants_with_slug(body["slug"])] == [created[0]["tenant_id"]]
    assert tenants.sign_up(body, key) == created[0]


# --- owners ------------------------------------------------------------------------------------------

def context(tenant_id, user_id, role="owner"):
    from chalicelib.tenancy import TenantContext

    return TenantContext(tenant_id=tenant_id, principal_id=user_id, principal_type="user", role=role,
                         display="", slug="")


def owners(tenant_id):
    """Owners as stored, and the tenant's owner counter."""
    from chalicelib.models import Tenant, User, tenant_pk

    pk = tenant_pk(tenant_id)
    stored = {u.user_id for u in User.query(pk, User.sk.startswith("USER#"), consistent_read=True)
              if u.role == "owner"}
    return stored, int(Tenant.get(pk, Tenant.SK, consistent_read=True).owner_count)


@pytest.fixture
def two_owners(environment):
    from chalicelib import tenants, users

    created = tenants.sign_up({"company_name": "Duo", "slug": random_slug("duo"),
                               "email": "first@duo.example.com", "password": PASSWORD})
    tenant_id, first = created["tenant_id"], created["owner"]["user_id"]
    second = users.create_user(tenant_id, context(tenant_id, first), {
        "email": "second@duo.example.com", "password": PASSWORD, "role": "owner"})["user_id"]
    return tenant_id, first, second


def test_two_owners_demoting_each_other_at_once_never_leave_zero_owners(two_owners):
    from chalicelib import users

    tenant_id, first, second = two_owners
    history = []
    for _ in range(ROUNDS):
        results = race([
            lambda: users.change_role(tenant_id, context(tenant_id, first), second, {"role": "admin"}),
            lambda: users.change_role(tenant_id, context(tenant_id, second), first, {"role": "admin"}),
        ])
        stored, counted = owners(tenant_id)
        history.append(sorted(status_of(r) if not isinstance(r, dict) else 200 for r in results))
        assert len(stored) == 1 and counted == 1, (history, stored, counted)
        (survivor,) = stored
        demoted = second if survivor == first else first
        users.change_role(tenant_id, context(tenant_id, survivor), demoted, {"role": "owner"})
    assert all(h == [200, 409] for h in history), history


def test_two_owners_removing_each_other_at_once_never_leave_zero_owners(two_owners):
    from chalicelib import users

    tenant_id, first, second = two_owners
    results = race([
        lambda: users.delete_user(tenant_id, context(tenant_id, first), second),
        lambda: users.delete_user(tenant_id, context(tenant_id, second), first),
    ])
    stored, counted = owners(tenant_id)
    assert len(stored) == 1 and counted == 1, (results, stored, counted)


def test_the_last_two_owners_all_stepping_down_at_once_keep_one(environment):
    from chalicelib import tenants, users

    created = tenants.sign_up({"company_name": "Trio", "slug": random_slug("trio"),
                               "email": "a@trio.example.com", "password": PASSWORD})
    tenant_id, first = created["tenant_id"], created["owner"]["user_id"]
    others = [users.create_user(tenant_id, context(tenant_id, first), {
        "email": f"{n}@trio.example.com", "password": PASSWORD, "role": "owner"})["user_id"] for n in ("b", "c")]
    everyone = [first] + others
    race([lambda u=u: users.change_role(tenant_id, context(tenant_id, u), u, {"role": "member"})
          for u in everyone])
    stored, counted = owners(tenant_id)
    assert len(stored) == 1 and counted == 1, (stored, counted)


# --- users -----------------------------------------------------------------------------------------------

def test_concurrent_creation_of_one_email_makes_one_user(environment):
    from chalicelib import tenants, users

    created = tenants.sign_up({"company_name": "Same", "slug": random_slug("same"),
                               "email": "owner@same.example.com", "password": PASSWORD})
    tenant_id, owner = created["tenant_id"], created["owner"]["user_id"]
    results = race([lambda: users.create_user(tenant_id, context(tenant_id, owner), {
        "email": "twin@same.example.com", "password": PASSWORD}) for _ in range(6)])
    assert sorted(status_of(r) for r in results) == [201] + [409] * 5, results


# --- login throttle ----------------------------------------------------------------------------------------

def test_concurrent_wrong_passwords_cannot_overrun_the_login_throttle(environment):
    from chalicelib import tenants
    from chalicelib.identity.login import WINDOW_SECONDS, Throttle, login

    throttle = Throttle(per_address=100, per_account=5)

    slug = random_slug("guess")
    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if left < 10:  # a burst across two fixed windows would be counted in halves
        time.sleep(left + 0.1)
    tenants.sign_up({"company_name": "Guess", "slug": slug, "email": "owner@guess.example.com",
                     "password": PASSWORD})
    results = race([lambda i=i: login({"tenant": slug, "email": "owner@guess.example.com",
                                       "password": f"guess-number-{i}"}, source=random_address(), throttle=throttle)
                    for i in range(SIGNUPS)])
    statuses = sorted(status_of(r) for r in results)
    assert statuses == [401] * throttle.per_account + [429] * (SIGNUPS - throttle.per_account), statuses
