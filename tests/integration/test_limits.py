"""The numbers admission enforces: the tenant's own (its admission item's copy) under its plan's.

Expected plan numbers are the product's default plan table (docs/plans.md: free 300 basic_chat a month at 10
requests a minute; pro 25,000 basic_chat, 2,000 code_review and 1,000 document_analysis at 60 a minute;
enterprise every feature unlimited at 600 a minute; max_tokens caps 2,048 / 128,000 / 128,000), written out
here rather than read from chalicelib.plans. Tenants are real sign-ups on moto, changed through the operator
and owner services."""
from __future__ import annotations

import dataclasses
import json

import pytest

from chalicelib import operators, tenants
from chalicelib.metering import admission
from chalicelib.metering.limits import AdmissionLimits, TenantLimits
from chalicelib.plans import DEFAULT_PLANS
from test_metering_concurrency import new_tenant


def stored(tenant_id):
    return tenants.get_tenant(tenant_id, consistent=True)


def test_a_new_tenant_gets_the_free_plans_numbers():
    tenant_id, _ = new_tenant()
    expected = AdmissionLimits(plan="free", status="active", features={"basic_chat": 300}, requests_per_minute=10,
                               budget_micros=None, hard_limit=False)
    assert TenantLimits.of(stored(tenant_id)).under(DEFAULT_PLANS["free"]) == expected
    # the copy sign-up wrote for admission holds the tenant's own numbers, none of the plan's
    assert admission.load_view(tenant_id).limits == TenantLimits(plan="free", status="active")


def test_overrides_plan_and_a_hard_budget_are_all_carried():
    tenant_id, _ = new_tenant()
    operators.set_plan(tenant_id, {"plan": "pro"})
    operators.set_limits(tenant_id, {"features": {"code_review": 7, "basic_chat": 3}, "requests_per_minute": 99})
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": "5.25", "budget_hard_limit": True})
    expected = AdmissionLimits(plan="pro", status="active",
                               features={"basic_chat": 3, "code_review": 7, "document_analysis": 1_000},
                               requests_per_minute=99, budget_micros=5_250_000, hard_limit=True)
    limits = TenantLimits.of(stored(tenant_id)).under(DEFAULT_PLANS["pro"])  # overrides as the stored map
    assert limits == expected
    assert type(limits.budget_micros) is int and type(limits.requests_per_minute) is int
    assert admission.load_view(tenant_id).limits.under(DEFAULT_PLANS["pro"]) == expected


def test_a_soft_budget_is_carried_without_the_hard_limit():
    tenant_id, _ = new_tenant()
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": "0.000001"})
    limits = TenantLimits.of(stored(tenant_id))
    assert (limits.budget_micros, limits.hard_limit) == (1, False)


def test_an_enterprise_tenant_has_every_feature_unlimited():
    tenant_id, _ = new_tenant()
    operators.set_plan(tenant_id, {"plan": "enterprise"})
    limits = TenantLimits.of(stored(tenant_id)).under(DEFAULT_PLANS["enterprise"])
    assert limits.features == {"basic_chat": None, "code_review": None, "document_analysis": None,
                               "custom_prompts": None}
    assert limits.requests_per_minute == 600


def test_a_suspended_tenants_status_is_carried():
    tenant_id, _ = new_tenant()
    operators.set_status(tenant_id, "suspended")
    assert TenantLimits.of(stored(tenant_id)).status == "suspended"
    assert admission.load_view(tenant_id).limits.status == "suspended"


def test_a_profile_with_plain_dict_overrides_reads_the_same():
    tenant = stored(new_tenant()[0])
    tenant.limit_overrides = {"features": {"basic_chat": 42}, "requests_per_minute": 5}
    limits = TenantLimits.of(tenant).under(DEFAULT_PLANS["free"])
    assert (limits.features, limits.requests_per_minute) == ({"basic_chat": 42}, 5)


def test_an_override_of_a_feature_outside_the_plan_does_not_add_it():
    tenant = stored(new_tenant()[0])
    tenant.limit_overrides = {"features": {"code_review": 42}}
    assert TenantLimits.of(tenant).under(DEFAULT_PLANS["free"]).features == {"basic_chat": 300}


# --- the JSON copy on the admission item ----------------------------------------------------------------------

def enterprise():
    """Built in each test, never at import, so each test uses the TenantLimits of the code as it is now."""
    return TenantLimits(plan="enterprise", status="active", overrides={"features": {"basic_chat": 5},
                                                                       "requests_per_minute": 77},
                        budget_micros=12_345_678, hard_limit=True)


def test_the_admission_copy_is_compact_json_with_sorted_keys():
    # Short and stable: the admission item must stay under 1 KB, and equal limits must serialise equally. The
    # plan's numbers are not in it: an edit of the plan reaches the tenant without a write to its item.
    assert enterprise().to_json() == (
        '{"budget":12345678,"hard":true,"o":{"f":{"b":5},"r":77},"plan":"enterprise","status":"active"}')


def test_the_principals_with_a_hard_budget_are_a_few_bytes_however_many():
    from chalicelib.metering.limits import PRINCIPAL_BITS, principal_bit

    many = TenantLimits(plan="pro", status="active", principals=(1 << PRINCIPAL_BITS) - 1)
    assert len(many.to_json()) - len(TenantLimits(plan="pro", status="active").to_json()) == len(',"pb":""') + 32
    assert TenantLimits.from_json(many.to_json()) == many
    one = TenantLimits(plan="pro", status="active", principals=1 << principal_bit("key_a"))
    assert one.budgets("key_a") and TenantLimits.from_json(one.to_json()).budgets("key_a")
    assert not TenantLimits(plan="pro", status="active").budgets("key_a")


def test_the_admission_copy_reads_back_as_the_same_limits():
    assert TenantLimits.from_json(enterprise().to_json()) == enterprise()
    soft = TenantLimits(plan="free", status="suspended")
    assert TenantLimits.from_json(soft.to_json()) == soft


def test_a_copy_written_before_plans_were_data_keeps_its_overrides_and_follows_the_plan_otherwise():
    """The old copy held resolved numbers: basic_chat 100 and code_review 1,000 were the old defaults (not an
    operator's), document_analysis 750 and rpm 61 were overrides."""
    text = json.dumps({"plan": "pro", "status": "active",
                       "features": {"basic_chat": 100, "code_review": 1000, "document_analysis": 750},
                       "rpm": "61", "budget": None, "hard": False})
    limits = TenantLimits.from_json(text).under(DEFAULT_PLANS["pro"])
    assert limits.requests_per_minute == 61
    assert limits.features == {"basic_chat": DEFAULT_PLANS["pro"].features["basic_chat"],
                               "code_review": DEFAULT_PLANS["pro"].features["code_review"], "document_analysis": 750}
    plain = json.dumps({"plan": "free", "status": "active", "features": {"basic_chat": 100}, "rpm": 10,
                        "budget": None, "hard": False})
    assert TenantLimits.from_json(plain).under(DEFAULT_PLANS["free"]) == \
        TenantLimits(plan="free", status="active").under(DEFAULT_PLANS["free"])
    # Every old default follows the plan as it stands now, an edited one included (document_analysis 500 and
    # each plan's old rate).
    for plan, rpm, features in (("free", 10, {"basic_chat": 100}), ("pro", 60, {"document_analysis": 500}),
                                ("enterprise", 600, {"custom_prompts": None})):
        edited = dataclasses.replace(DEFAULT_PLANS[plan], requests_per_minute=rpm + 7,
                                     features={**DEFAULT_PLANS[plan].features, **{f: 1_234 for f in features}})
        old_copy = json.dumps({"plan": plan, "status": "active", "features": features, "rpm": str(rpm),
                               "budget": None, "hard": False})
        assert TenantLimits.from_json(old_copy).under(edited) == TenantLimits(plan=plan, status="active").under(edited)


def test_limits_are_immutable_and_default_to_nothing_enforced():
    limits = AdmissionLimits(plan="free", status="active")
    assert (limits.features, limits.requests_per_minute, limits.budget_micros, limits.hard_limit) == ({}, 0, None,
                                                                                                       False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.plan = "enterprise"
    assert AdmissionLimits(plan="free", status="active").features is not limits.features  # no shared default
    own = TenantLimits(plan="free", status="active")
    with pytest.raises(dataclasses.FrozenInstanceError):  # nor a tenant's own numbers, as its admission item holds them
        own.budget_micros = 0


@pytest.mark.parametrize("feature,plan", [("basic_chat", "free"), ("code_review", "pro"),
                                          ("document_analysis", "pro"), ("custom_prompts", "enterprise")])
def test_the_plan_a_feature_needs(feature, plan):
    assert AdmissionLimits(plan="free", status="active").required_plan(feature) == plan
