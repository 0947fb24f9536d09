"""Operators editing one tenant's limits at once: no edit is lost."""
from concurrent.futures import ThreadPoolExecutor

from chalicelib import operators, tenants
from chalicelib.plans import FEATURES
from conftest import random_slug


def test_concurrent_overrides_of_different_features_are_all_kept():
    slug = random_slug("ops")
    tenant_id = tenants.sign_up({"company_name": "Ops Co", "slug": slug, "email": f"o@{slug}.example.com",
                                 "password": "ops-password-1"})["tenant_id"]
    edits = [{"features": {name: 1000 + i}} for i, name in enumerate(FEATURES)] + [{"requests_per_minute": 77}]
    with ThreadPoolExecutor(max_workers=len(edits)) as pool:
        outcomes = list(pool.map(lambda body: _try(tenant_id, body), edits))
    limits = operators.limits_view(tenants.get_tenant(tenant_id))
    kept = {name: limits["overrides"].get("features", {}).get(name) for name in FEATURES}
    for i, name in enumerate(FEATURES):
        assert kept[name] == (1000 + i if outcomes[i] == "ok" else None)
    assert outcomes.count("ok") >= 1
    assert set(outcomes) <= {"ok", "conflict"}
    assert (limits["overrides"].get("requests_per_minute") == 77) == (outcomes[-1] == "ok")


def _try(tenant_id, body):
    try:
        operators.set_limits(tenant_id, body)
        return "ok"
    except Exception as error:
        return getattr(error, "code", repr(error))
