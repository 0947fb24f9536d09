"""Plans and features as data: the tables the README publishes, and how an operator's override replaces them."""
from __future__ import annotations

import dataclasses

import pytest

from chalicelib.plans import FEATURES, PLANS, feature_enabled, feature_limit, plan, requests_per_minute

# From the README: plan -> (max_tokens cap, requests per minute); feature -> (plan, per month).
PUBLISHED_PLANS = {"free": (2048, 10), "pro": (128000, 60), "enterprise": (128000, 600)}
PUBLISHED_FEATURES = {"basic_chat": ("free", 100), "code_review": ("pro", 1000),
                      "document_analysis": ("pro", 500), "custom_prompts": ("enterprise", None)}
ORDER = ["free", "pro", "enterprise"]


def test_plans_are_the_published_ones_in_rising_order():
    assert {p.name: (p.max_tokens_cap, p.requests_per_minute) for p in PLANS.values()} == PUBLISHED_PLANS
    assert sorted(PLANS, key=lambda name: PLANS[name].rank) == ORDER
    assert all(p.name == name for name, p in PLANS.items())


def test_features_are_the_published_ones():
    assert {f.name: (f.plan, f.monthly_limit) for f in FEATURES.values()} == PUBLISHED_FEATURES
    assert all(f.name == name for name, f in FEATURES.items())


def test_plan_looks_a_plan_up_by_name():
    assert plan("pro") is PLANS["pro"]
    with pytest.raises(KeyError):
        plan("platinum")


def test_plan_and_feature_rows_cannot_be_changed_at_run_time():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PLANS["free"].requests_per_minute = 1_000
    with pytest.raises(dataclasses.FrozenInstanceError):
        FEATURES["basic_chat"].monthly_limit = None


@pytest.mark.parametrize("plan_name", ORDER)
@pytest.mark.parametrize("feature", list(PUBLISHED_FEATURES))
def test_a_feature_is_enabled_on_its_plan_and_every_plan_above(plan_name, feature):
    needed = PUBLISHED_FEATURES[feature][0]
    assert feature_enabled(plan_name, feature) is (ORDER.index(plan_name) >= ORDER.index(needed))


@pytest.mark.parametrize("feature", list(PUBLISHED_FEATURES))
def test_without_overrides_the_limit_is_the_plans(feature):
    assert feature_limit(feature) == PUBLISHED_FEATURES[feature][1]
    assert feature_limit(feature, None) == PUBLISHED_FEATURES[feature][1]
    assert feature_limit(feature, {}) == PUBLISHED_FEATURES[feature][1]
    assert feature_limit(feature, {"features": None}) == PUBLISHED_FEATURES[feature][1]


def test_an_override_replaces_one_features_limit_only():
    overrides = {"features": {"basic_chat": 5000}}
    assert feature_limit("basic_chat", overrides) == 5000
    assert feature_limit("code_review", overrides) == 1000


def test_an_override_of_zero_blocks_the_feature_rather_than_restoring_the_plans_limit():
    assert feature_limit("basic_chat", {"features": {"basic_chat": 0}}) == 0


def test_an_override_may_limit_an_unlimited_feature():
    assert feature_limit("custom_prompts", {"features": {"custom_prompts": 7}}) == 7


def test_a_null_override_restores_the_plans_limit():
    assert feature_limit("document_analysis", {"features": {"document_analysis": None}}) == 500


def test_a_stored_override_becomes_an_int():
    """DynamoDB hands numbers back as Decimal."""
    from decimal import Decimal

    value = feature_limit("basic_chat", {"features": {"basic_chat": Decimal("250")}})
    assert value == 250 and type(value) is int


@pytest.mark.parametrize("plan_name", ORDER)
def test_requests_per_minute_is_the_plans_without_an_override(plan_name):
    expected = PUBLISHED_PLANS[plan_name][1]
    assert requests_per_minute(plan_name) == expected
    assert requests_per_minute(plan_name, {}) == expected
    assert requests_per_minute(plan_name, {"requests_per_minute": None}) == expected


def test_a_requests_per_minute_override_replaces_the_plans():
    from decimal import Decimal

    value = requests_per_minute("free", {"requests_per_minute": Decimal("1000")})
    assert value == 1000 and type(value) is int
    assert requests_per_minute("enterprise", {"requests_per_minute": 0}) == 0
