"""GET /models: the models a tenant's plan allows, each with its published per-million prices."""
import pytest

from published import PUBLISHED

PLAN_MODELS = {
    "free": ["claude-sonnet-4-6", "claude-haiku-4-5"],
    "pro": list(PUBLISHED),
    "enterprise": list(PUBLISHED),
}


def expected_entry(model):
    name, input_, output, cache_write, cache_read, _ = PUBLISHED[model]
    return {"id": model, "display_name": name,
            "prices_usd_per_million_tokens": {"input": input_, "output": output, "cache_write": cache_write,
                                              "cache_read": cache_read}}


@pytest.mark.parametrize("plan", ["free", "pro", "enterprise"])
def test_models_lists_exactly_the_plans_models_with_their_published_prices(module_api, operator_token, plan):
    tenant = module_api.signup()
    if plan != "free":
        changed = module_api.call("PUT", f"/admin/tenants/{tenant.id}/plan", {"plan": plan}, token=operator_token)
        assert changed.status_code == 200
    response = module_api.call("GET", "/models", token=tenant.token)
    assert response.status_code == 200
    assert response.json == {"default_model": "claude-sonnet-4-6",
                             "models": [expected_entry(m) for m in PLAN_MODELS[plan]]}
