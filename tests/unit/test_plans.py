"""Plans and features as data: the default plan table docs/plans.md publishes, how an operator's override
replaces a plan's number, and what an operator's plan edit may ask for (plan_catalog.checked, a pure function)."""
from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from chalicelib.errors import BadRequest
from chalicelib.plan_catalog import checked
from chalicelib.plans import DEFAULT_PLANS, FEATURES, Plan, feature_limit, requests_per_minute

# From docs/plans.md: plan -> (max_tokens cap, requests per minute, monthly price in micro-dollars, features).
PUBLISHED_PLANS = {
    "free": (2048, 10, 0, {"basic_chat": 300}),
    "pro": (128000, 60, 49_000_000, {"basic_chat": 25_000, "code_review": 2_000, "document_analysis": 1_000}),
    "enterprise": (128000, 600, 499_000_000, {"basic_chat": None, "code_review": None, "document_analysis": None,
                                              "custom_prompts": None}),
}
PUBLISHED_FEATURES = {"basic_chat": ("b", "free"), "code_review": ("c", "pro"), "document_analysis": ("d", "pro"),
                      "custom_prompts": ("p", "enterprise")}
SMALL = ("claude-sonnet-4-6", "claude-haiku-4-5")
OPUS = ("claude-opus-5-5", "claude-opus-5", "claude-opus-4-8", "claude-opus-4-7", "claude-opus-4-6")


def test_default_plans_are_the_published_ones():
    assert {p.name: (p.max_tokens_cap, p.requests_per_minute, p.monthly_price_micros, dict(p.features))
            for p in DEFAULT_PLANS.values()} == PUBLISHED_PLANS
    assert all(p.name == name and p.version == 0 for name, p in DEFAULT_PLANS.items())


def test_features_are_the_published_ones():
    assert {f.name: (f.code, f.introduced) for f in FEATURES.values()} == PUBLISHED_FEATURES


@pytest.mark.parametrize("plan", ["free", "pro", "enterprise"])
@pytest.mark.parametrize("model", SMALL + OPUS + ("claude-2.1", ""))
def test_free_offers_sonnet_and_haiku_and_the_paid_plans_every_model(plan, model):
    expected = model in SMALL or (model in OPUS and plan != "free")
    assert DEFAULT_PLANS[plan].allows_model(model) is expected


def test_plan_rows_cannot_be_changed_at_run_time():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_PLANS["free"].requests_per_minute = 1_000
    with pytest.raises(dataclasses.FrozenInstanceError):  # nor a feature's counter-key letter or lowest plan
        FEATURES["basic_chat"].code = "x"


@pytest.mark.parametrize("plan", list(PUBLISHED_PLANS))
@pytest.mark.parametrize("feature", list(PUBLISHED_FEATURES))
def test_without_overrides_the_limit_is_the_plans(plan, feature):
    expected = PUBLISHED_PLANS[plan][3].get(feature)
    for overrides in (None, {}, {"features": None}):
        assert feature_limit(DEFAULT_PLANS[plan], feature, overrides) == expected


def test_an_override_replaces_one_features_limit_only():
    overrides = {"features": {"basic_chat": 5000}}
    assert feature_limit(DEFAULT_PLANS["pro"], "basic_chat", overrides) == 5000
    assert feature_limit(DEFAULT_PLANS["pro"], "code_review", overrides) == 2_000


def test_an_override_of_zero_blocks_the_feature_rather_than_restoring_the_plans_limit():
    assert feature_limit(DEFAULT_PLANS["free"], "basic_chat", {"features": {"basic_chat": 0}}) == 0


def test_an_override_may_limit_an_unlimited_feature():
    assert feature_limit(DEFAULT_PLANS["enterprise"], "custom_prompts", {"features": {"custom_prompts": 7}}) == 7


def test_a_stored_override_becomes_an_int():
    """DynamoDB hands numbers back as Decimal."""
    value = feature_limit(DEFAULT_PLANS["free"], "basic_chat", {"features": {"basic_chat": Decimal("250")}})
    assert value == 250 and type(value) is int


@pytest.mark.parametrize("plan", list(PUBLISHED_PLANS))
def test_requests_per_minute_is_the_plans_without_an_override(plan):
    expected = PUBLISHED_PLANS[plan][1]
    for overrides in (None, {}, {"requests_per_minute": None}):
        assert requests_per_minute(DEFAULT_PLANS[plan], overrides) == expected


def test_a_requests_per_minute_override_replaces_the_plans():
    value = requests_per_minute(DEFAULT_PLANS["free"], {"requests_per_minute": Decimal("1000")})
    assert value == 1000 and type(value) is int
    assert requests_per_minute(DEFAULT_PLANS["enterprise"], {"requests_per_minute": 0}) == 0


# --- an operator's edit, checked before anything is written ------------------------------------------------

NEW = {"features": {"basic_chat": 50_000, "code_review": None}, "requests_per_minute": 120,
       "max_tokens_cap": 64_000, "models": ["claude-sonnet-4-6", "claude-haiku-4-5"], "monthly_price_usd": "99.50"}


def test_a_new_plan_is_every_field_given_at_version_one():
    plan = checked("team", NEW, None)
    assert (plan.name, plan.version, dict(plan.features), plan.requests_per_minute, plan.max_tokens_cap,
            plan.models, plan.monthly_price_micros) == (
        "team", 1, {"basic_chat": 50_000, "code_review": None}, 120, 64_000,
        ("claude-sonnet-4-6", "claude-haiku-4-5"), 99_500_000)


def test_an_edit_keeps_the_fields_it_does_not_name_and_is_the_next_version():
    plan = checked("pro", {"requests_per_minute": 90}, DEFAULT_PLANS["pro"])
    assert plan.version == 1 and plan.requests_per_minute == 90
    assert plan.features == DEFAULT_PLANS["pro"].features and plan.models == DEFAULT_PLANS["pro"].models


@pytest.mark.parametrize("body, code", [
    ({"features": {"translation": 5}}, "unknown_feature"),
    ({"features": {"basic_chat": -1}}, "invalid_field"),
    ({"features": {"basic_chat": 1.5}}, "invalid_field"),
    ({"features": ["basic_chat"]}, "invalid_field"),
    ({"models": ["claude-2.1"]}, "invalid_model"),
    ({"models": []}, "invalid_field"),
    ({"max_tokens_cap": 64_001, "models": ["claude-haiku-4-5"]}, "max_tokens_above_model"),
    ({"max_tokens_cap": 128_001}, "max_tokens_above_model"),
    ({"max_tokens_cap": 0}, "invalid_field"),
    ({"requests_per_minute": 0}, "invalid_field"),
    ({"monthly_price_usd": -1}, "invalid_field"),
    ({"monthly_price_usd": 9.99}, "invalid_field"),
    ({"monthly_price_usd": "9.9999999"}, "invalid_field"),
    ({"rank": 3}, "unknown_field"),
    ({}, "empty_update"),
])
def test_bad_input_is_refused_with_its_code(body, code):
    with pytest.raises(BadRequest) as caught:
        checked("pro", body, DEFAULT_PLANS["pro"])
    assert caught.value.code == code


def test_a_cap_at_a_models_most_is_accepted():
    assert checked("pro", {"max_tokens_cap": 64_000, "models": ["claude-haiku-4-5"]},
                   DEFAULT_PLANS["pro"]).max_tokens_cap == 64_000
    assert checked("pro", {"max_tokens_cap": 128_000}, DEFAULT_PLANS["pro"]).max_tokens_cap == 128_000


def test_a_new_plan_needs_every_field():
    with pytest.raises(BadRequest) as caught:
        checked("team", {k: v for k, v in NEW.items() if k != "models"}, None)
    assert caught.value.code in ("missing_field", "invalid_field")


def test_a_version_stored_before_plans_had_pool_shares_keeps_its_built_in_share():
    stored = {**DEFAULT_PLANS["enterprise"].as_data()}
    del stored["pool_share_percent"], stored["pool_reserved_percent"]
    legacy = Plan.from_data("enterprise", 3, stored)
    assert (legacy.pool_share_percent, legacy.pool_reserved_percent) == (50, 20)
    custom = Plan.from_data("custom", 1, stored)  # a plan of the operators': best effort, nothing held back
    assert (custom.pool_share_percent, custom.pool_reserved_percent) == (0, 0)


@pytest.mark.parametrize("body, others, code", [
    ({"pool_share_percent": 30, "pool_reserved_percent": 31}, 20, "invalid_field"),
    ({"pool_share_percent": 100, "pool_reserved_percent": 79}, 21, "pool_reserve_too_large"),
    ({"pool_share_percent": True}, 20, "invalid_field"),
])
def test_a_pool_share_is_whole_percent_with_its_reserve_inside_it_and_all_reserves_under_100(body, others, code):
    with pytest.raises(BadRequest) as refused:
        checked("team", body, DEFAULT_PLANS["pro"], others)
    assert refused.value.code == code
    plan = checked("team", {"pool_share_percent": 100, "pool_reserved_percent": 79}, DEFAULT_PLANS["pro"], 20)
    assert (plan.pool_share_percent, plan.pool_reserved_percent) == (100, 79)


# --- the plan gate: one decision for the gateway and admission -------------------------------------------------

def _limits(plan="pro", status="active"):
    from chalicelib.metering.limits import AdmissionLimits

    return AdmissionLimits(plan=plan, status=status, features={"basic_chat": 10, "code_review": None})


def test_the_plan_gate_admits_a_feature_of_an_active_tenants_plan():
    assert _limits().gate("basic_chat") is None and _limits().gate("code_review") is None


def test_the_plan_gate_names_the_plan_a_missing_feature_needs():
    refused = _limits().gate("custom_prompts")
    assert (refused.status, refused.code, refused.details) == (
        403, "feature_not_in_plan", {"feature": "custom_prompts", "required_plan": "enterprise"})
    assert str(refused) == "custom_prompts is not in the pro plan; it needs the enterprise plan."


def test_the_plan_gate_refuses_every_feature_of_a_suspended_tenant_first():
    for feature in ("basic_chat", "custom_prompts"):
        refused = _limits(status="suspended").gate(feature)
        assert (refused.status, refused.code) == (403, "tenant_suspended")
