"""The numbers admission enforces, derived from a tenant's stored profile (chalicelib/metering/limits.py).

Expected limits are the plan table of the product (README: free 100 basic_chat a month and 10 requests a minute;
pro adds code_review 1,000 and document_analysis 500 at 60 a minute; enterprise adds unlimited custom_prompts at
600 a minute; max_tokens caps 2,048 / 128,000 / 128,000), written out here rather than read from chalicelib.plans.
Tenants are real sign-ups on moto, changed through the operator and owner services."""
from __future__ import annotations

import dataclasses
import json

import pytest

from chalicelib import operators, tenants
from chalicelib.metering import admission
from chalicelib.metering.limits import AdmissionLimits
from test_metering_concurrency import new_tenant


def stored(tenant_id):
    return tenants.get_tenant(tenant_id, consistent=True)


def test_a_new_tenant_gets_the_free_plans_numbers():
    tenant_id, _ = new_tenant()
    expected = AdmissionLimits(plan="free", status="active", features={"basic_chat": 100}, requests_per_minute=10,
                               budget_micros=None, hard_limit=False)
    assert AdmissionLimits.of(stored(tenant_id)) == expected
    assert admission.load_view(tenant_id).limits == expected  # the copy sign-up wrote for admission


def test_overrides_plan_and_a_hard_budget_are_all_carried():
    tenant_id, _ = new_tenant()
    operators.set_plan(tenant_id, {"plan": "pro"})
    operators.set_limits(tenant_id, {"features": {"code_review": 7, "basic_chat": 3}, "requests_per_minute": 99})
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": "5.25", "budget_hard_limit": True})
    expected = AdmissionLimits(plan="pro", status="active",
                               features={"basic_chat": 3, "code_review": 7, "document_analysis": 500},
                               requests_per_minute=99, budget_micros=5_250_000, hard_limit=True)
    limits = AdmissionLimits.of(stored(tenant_id))  # overrides as the stored map attribute
    assert limits == expected
    assert type(limits.budget_micros) is int and type(limits.requests_per_minute) is int
    assert admission.load_view(tenant_id).limits == expected


def test_a_soft_budget_is_carried_without_the_hard_limit():
    tenant_id, _ = new_tenant()
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": "0.000001"})
    limits = AdmissionLimits.of(stored(tenant_id))
    assert (limits.budget_micros, limits.hard_limit) == (1, False)


def test_an_enterprise_tenant_has_every_feature_custom_prompts_unlimited():
    tenant_id, _ = new_tenant()
    operators.set_plan(tenant_id, {"plan": "enterprise"})
    limits = AdmissionLimits.of(stored(tenant_id))
    assert limits.features == {"basic_chat": 100, "code_review": 1000, "document_analysis": 500,
                               "custom_prompts": None}
    assert limits.requests_per_minute == 600
    assert limits.max_tokens_cap == 128000


def test_a_suspended_tenants_status_is_carried():
    tenant_id, _ = new_tenant()
    operators.set_status(tenant_id, "suspended")
    assert AdmissionLimits.of(stored(tenant_id)).status == "suspended"
    assert admission.load_view(tenant_id).limits.status == "suspended"


def test_a_profile_with_plain_dict_overrides_reads_the_same():
    tenant = stored(new_tenant()[0])
    tenant.limit_overrides = {"features": {"basic_chat": 42}, "requests_per_minute": 5}
    limits = AdmissionLimits.of(tenant)
    assert (limits.features, limits.requests_per_minute) == ({"basic_chat": 42}, 5)


# --- the JSON copy on the admission item ----------------------------------------------------------------------

def enterprise():
    """Built in each test, never at import, so each test uses the AdmissionLimits of the code as it is now."""
    return AdmissionLimits(plan="enterprise", status="active",
                           features={"basic_chat": 5, "code_review": 1000, "document_analysis": 500,
                                     "custom_prompts": None},
                           requests_per_minute=77, budget_micros=12_345_678, hard_limit=True)


def test_the_admission_copy_is_compact_json_with_sorted_keys():
    # Short and stable: the admission item must stay under 1 KB, and equal limits must serialise equally.
    assert enterprise().to_json() == (
        '{"budget":12345678,"features":{"basic_chat":5,"code_review":1000,"custom_prompts":null,'
        '"document_analysis":500},"hard":true,"plan":"enterprise","rpm":77,"status":"active"}')


def test_the_admission_copy_reads_back_as_the_same_limits():
    assert AdmissionLimits.from_json(enterprise().to_json()) == enterprise()
    soft = AdmissionLimits(plan="free", status="suspended", features={"basic_chat": 1}, requests_per_minute=3,
                           budget_micros=None, hard_limit=False)
    assert AdmissionLimits.from_json(soft.to_json()) == soft


def test_the_rate_is_read_back_as_an_integer():
    text = json.dumps({"plan": "pro", "status": "active", "features": {}, "rpm": "61", "budget": None, "hard": False})
    assert AdmissionLimits.from_json(text).requests_per_minute == 61


def test_limits_are_immutable_and_default_to_nothing_enforced():
    limits = AdmissionLimits(plan="free", status="active")
    assert (limits.features, limits.requests_per_minute, limits.budget_micros, limits.hard_limit) == ({}, 0, None,
                                                                                                       False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.plan = "enterprise"
    assert AdmissionLimits(plan="free", status="active").features is not limits.features  # no shared default


@pytest.mark.parametrize("feature,plan", [("basic_chat", "free"), ("code_review", "pro"),
                                          ("document_analysis", "pro"), ("custom_prompts", "enterprise")])
def test_the_plan_a_feature_needs(feature, plan):
    assert AdmissionLimits(plan="free", status="active").required_plan(feature) == plan


@pytest.mark.parametrize("plan,cap", [("free", 2048), ("pro", 128000), ("enterprise", 128000)])
def test_the_max_tokens_cap_is_the_plans(plan, cap):
    assert AdmissionLimits(plan=plan, status="active").max_tokens_cap == cap
