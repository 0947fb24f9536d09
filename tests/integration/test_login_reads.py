"""Login does the same reads whether or not the tenant and the email exist."""
import pytest

from chalicelib import tenants
from chalicelib.errors import InvalidCredentials
from chalicelib.identity.login import login
from conftest import random_address, random_slug
from dev.bench.probes import DynamoProbe


@pytest.fixture(scope="module")
def tenant(environment):
    slug = random_slug("lr")
    tenants.sign_up({"company_name": "Reads Co", "slug": slug, "email": f"known@{slug}.example.com",
                     "password": "known-password-1"})
    return slug


def reads_for(slug, email):
    with DynamoProbe(this_thread=True) as probe:
        with pytest.raises(InvalidCredentials):
            login({"tenant": slug, "email": email, "password": "wrong-password-1"}, source=random_address())
    return {op: n for op, n in probe.calls.items() if op != "UpdateItem"}


def test_known_email_unknown_email_and_unknown_tenant_cost_the_same_reads(tenant):
    known = reads_for(tenant, f"known@{tenant}.example.com")
    assert known == {"GetItem": 2, "BatchGetItem": 1}
    assert reads_for(tenant, f"nobody@{tenant}.example.com") == known
    assert reads_for(random_slug("none"), "known@example.com") == known
