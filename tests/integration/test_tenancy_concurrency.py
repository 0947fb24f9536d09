import threading
from concurrent.futures import ThreadPoolExecutor

from conftest import random_slug


def test_probe_concurrent_signup():
    from chalicelib import tenants
    from chalicelib.errors import Conflict
    from chalicelib.models import SlugClaim, Tenant, tenant_pk

    slug = random_slug("race")
    barrier = threading.Barrier(20)

    def attempt(i):
        barrier.wait()
        try:
            return tenants.sign_up({"company_name": f"Racer {i}", "slug": slug, "email": f"o{i}@x.example.com",
                                    "password": "correct-horse-battery"})
        except Conflict as e:
            return e.code
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(attempt, range(20)))
    wins = [r for r in results if isinstance(r, dict)]
    print("wins", len(wins), [r for r in results if not isinstance(r, dict)])
    claim = SlugClaim.get(*SlugClaim.key(slug), consistent_read=True)
    print("claim", claim.tenant_id, [w["tenant_id"] for w in wins])
    for w in wins:
        try:
            Tenant.get(tenant_pk(w["tenant_id"]), Tenant.SK, consistent_read=True)
            print("exists", w["tenant_id"])
        except Tenant.DoesNotExist:
            print("MISSING", w["tenant_id"])
    assert len(wins) == 1
