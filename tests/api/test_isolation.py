"""Tenant isolation as a property of the whole API, not of the routes someone remembered to test.

The matrices below are built from `app.routes` when the tests run, so a route added later is covered
without anyone editing this file. Tenant B (owner) is the attacker; tenant A is the victim. Each attack
is checked on its own: A's stored items are the same afterwards, so no test relies on another's order.
"""
import re
import secrets

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import WritesNothing

VERBS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PUBLIC = {("/health", "GET"), ("/tenants", "POST"), ("/auth/login", "POST")}
# 2xx never; 404 like a missing object, 403 role/mismatch/authorizer, 400 input, 405 verb, 429/402 limits.
REFUSED = {404, 403, 400, 405, 429, 402}
PARAM = re.compile(r"\{([^}]+)\}")

# Bodies that get a request past input validation, so that it reaches the object lookup.
SAMPLE_BODIES = {
    ("PATCH", "/users/{user_id}"): {"role": "member"},
    ("POST", "/users"): {"email": "matrix@example.com", "password": "matrix-password-1"},
    ("POST", "/api-keys"): {"name": "matrix"},
    ("PATCH", "/tenant"): {"name": "B renamed by the matrix"},
    ("PUT", "/tenant/ai-config"): {"max_tokens": 512},
    ("PUT", "/tenant/ai-config/api-key"): {"api_key": "sk-ant-matrix-" + "k" * 30},
    ("POST", "/prompts"): {"name": "matrix prompt", "template": "Tell me about {{topic}}"},
    ("PUT", "/prompts/{prompt_id}"): {"name": "Hijacked", "template": "Hijacked {{topic}}"},
    ("POST", "/prompts/{prompt_id}/run"): {"variables": {"topic": "isolation"}},
    ("POST", "/ai/chat"): {"messages": [{"role": "user", "content": "hello"}]},
    ("POST", "/ai/code-review"): {"code": "print('hello')"},
    ("POST", "/ai/document-analysis"): {"document": "A short document."},
    ("POST", "/v1/messages"): {"model": "claude-sonnet-4-6", "max_tokens": 16,
                               "messages": [{"role": "user", "content": "hello"}]},
}
# How the victim's objects are made when a route names them; any other parameter gets a random id.
CREATORS = {"prompt_id": ("/prompts", SAMPLE_BODIES[("POST", "/prompts")])}


def app_routes():
    from app import app

    return app.routes


def is_tenant_path(path):
    from app import tenant_auth

    return any(entry.authorizer is tenant_auth for entry in app_routes()[path].values())


def tenant_paths():
    return sorted(p for p in app_routes() if is_tenant_path(p))


def matrix():
    """Every tenant path with every verb: registered verbs and the ones that must answer 405."""
    return [(path, verb) for path in tenant_paths() for verb in VERBS]


def body_for(verb, path):
    if verb in ("GET", "DELETE"):
        return None
    return SAMPLE_BODIES.get((verb, path), {})


class Victim:
    """Tenant A with one object of every kind the API can name in a path."""

    def __init__(self, api, operator):
        self.api = api
        self.tenant = api.signup(name="Victim A")
        self.raise_plan(operator)
        self.member, _ = api.add_user(self.tenant)
        self.key = api.api_key(self.tenant, name="victim-key")
        self.ids = {"user_id": self.member["user_id"], "key_id": self.key["key_id"], "tenant_id": self.tenant.id}
        for param in sorted({p for path in tenant_paths() for p in PARAM.findall(path)} - set(self.ids)):
            self.ids[param] = self.create(param)

    def raise_plan(self, operator):
        """Enterprise, so feature-gated routes reach their lookups instead of stopping at the plan."""
        response = self.api.call("PUT", f"/admin/tenants/{self.tenant.id}/plan", {"plan": "enterprise"},
                                 token=operator)
        assert response.status_code == 200

    def create(self, param):
        path, body = CREATORS.get(param, (None, None))
        if path and (path, "POST") in {(p, m) for p in app_routes() for m in app_routes()[p]}:
            response = self.api.call("POST", path, body, token=self.tenant.token)
            assert response.status_code == 201, response.body
            return response.json[param]
        return f"{param.split('_')[0][:3]}_{secrets.token_hex(10)}"

    def path_for(self, path):
        return PARAM.sub(lambda m: self.ids[m.group(1)], path)

    def identifiers(self):
        """Strings that only A's data contains."""
        return {self.tenant.id, self.tenant.slug, self.tenant.owner_id, self.tenant.email, self.member["user_id"],
                self.member["email"], self.key["key_id"], "Victim A"} | {
            v for k, v in self.ids.items() if k != "tenant_id"}


@pytest.fixture(scope="module")
def operator(environment):
    from chalicelib.identity.tokens import issue_operator_token

    return issue_operator_token("isolation-operator")


@pytest.fixture(scope="module")
def victim(module_api, operator):
    return Victim(module_api, operator)


@pytest.fixture(scope="module")
def attacker(module_api, operator):
    tenant = module_api.signup(name="Attacker B")
    assert module_api.call("PUT", f"/admin/tenants/{tenant.id}/plan", {"plan": "enterprise"},
                           token=operator).status_code == 200
    return tenant


def attack(api, victim, attacker, verb, path, concrete_path, headers=None):
    """One request of B's that must leave A's items as they were (B's own routes may write B's)."""
    with WritesNothing(victim.tenant.id, table=False):
        return api.call(verb, concrete_path, body_for(verb, path), token=attacker.token, headers=headers)


# --- the matrices ------------------------------------------------------------------------------------

def test_matrix_finds_the_tenant_routes_and_leaves_out_public_and_operator_ones():
    paths = set(tenant_paths())
    assert {"/me", "/tenant", "/users", "/users/{user_id}", "/api-keys", "/api-keys/{key_id}"} <= paths
    assert not {p for p in paths if p.startswith("/admin")} | (paths & {p for p, _ in PUBLIC})


def test_victims_objects_named_in_paths_are_real(module_api, victim):
    """Otherwise the matrix would only prove that missing objects are missing."""
    reads = {"user_id": "/users/{user_id}", "prompt_id": "/prompts/{prompt_id}"}
    for param, path in reads.items():
        if path in app_routes():
            response = module_api.call("GET", victim.path_for(path), token=victim.tenant.token)
            assert response.status_code == 200, (param, response.body)
    assert module_api.call("GET", "/me", token=victim.key["key"]).json["key_id"] == victim.ids["key_id"]


@pytest.mark.parametrize("path, verb", [(p, v) for p, v in matrix() if PARAM.search(p)])
def test_victims_object_in_the_path_is_never_reached(module_api, victim, attacker, path, verb):
    response = attack(module_api, victim, attacker, verb, path, victim.path_for(path))
    assert response.status_code in REFUSED, (verb, path, response.status_code, response.body)


@pytest.mark.parametrize("path, verb", matrix())
def test_x_tenant_id_of_the_victim_is_never_honoured(module_api, victim, attacker, path, verb):
    response = attack(module_api, victim, attacker, verb, path, victim.path_for(path),
                      headers={"X-Tenant-ID": victim.tenant.id})
    assert response.status_code in REFUSED, (verb, path, response.status_code, response.body)


@pytest.mark.parametrize("path, verb", matrix())
def test_host_subdomain_of_the_victim_is_never_honoured(module_api, victim, attacker, path, verb):
    response = attack(module_api, victim, attacker, verb, path, victim.path_for(path),
                      headers={"Host": f"{victim.tenant.slug}.localhost"})
    assert response.status_code in REFUSED, (verb, path, response.status_code, response.body)


@pytest.mark.parametrize("path, verb", [(p, v) for p, v in matrix() if not PARAM.search(p)])
def test_attackers_own_routes_never_show_the_victims_data(module_api, victim, attacker, path, verb):
    response = attack(module_api, victim, attacker, verb, path, path)
    text = response.body.decode(errors="replace")
    assert not [i for i in victim.identifiers() if i in text], (verb, path)


# --- random interleavings of several tenants ----------------------------------------------------------

class World:
    """Three tenants and what each of them should see, kept next to the real API."""

    def __init__(self, api):
        self.api = api
        self.tenants = [api.signup(name=f"World {i}") for i in range(3)]
        self.users = [{t.owner_id} for t in self.tenants]
        self.keys = [{} for _ in self.tenants]  # key_id -> revoked?
        self.secrets = {}
        self.names = [f"World {i}" for i in range(3)]

    def owner(self, index):
        return self.tenants[index].token

    def all_ids(self, index):
        return self.users[index] | set(self.keys[index]) | {self.tenants[index].id}

    def foreign_ids(self, index):
        return set().union(*(self.all_ids(j) for j in range(len(self.tenants)) if j != index))

    def assert_private(self, index, response):
        text = response.body.decode(errors="replace")
        leaked = [i for i in self.foreign_ids(index) if i in text]
        assert not leaked, (index, response.status_code, leaked)


def op_create_user(world, index, seed):
    response = world.api.call("POST", "/users", {"email": f"u{seed}-{secrets.token_hex(3)}@example.com",
                                                 "password": "world-password-1"}, token=world.owner(index))
    assert response.status_code == 201, response.body
    world.users[index].add(response.json["user_id"])
    return response


def op_create_key(world, index, seed):
    response = world.api.call("POST", "/api-keys", {"name": f"k{seed}"}, token=world.owner(index))
    assert response.status_code == 201, response.body
    world.keys[index][response.json["key_id"]] = False
    world.secrets[response.json["key_id"]] = response.json["key"]
    me = world.api.call("GET", "/me", token=response.json["key"])
    assert me.json["tenant_id"] == world.tenants[index].id
    return response


def op_revoke_key(world, index, seed):
    """Revoke any tenant's key as tenant `index`: its own goes, another's is a 404 and stays."""
    every = sorted((key_id, owner) for owner in range(len(world.tenants)) for key_id in world.keys[owner])
    if not every:
        return None
    key_id, owner = every[seed % len(every)]
    response = world.api.call("DELETE", f"/api-keys/{key_id}", token=world.owner(index))
    if owner == index:
        assert response.status_code == 204
        world.keys[index][key_id] = True
    else:
        assert response.status_code == 404
    return response


def op_list_users(world, index, seed):
    response = world.api.call("GET", "/users", token=world.owner(index))
    assert {u["user_id"] for u in response.json["users"]} == world.users[index]
    return response


def op_list_keys(world, index, seed):
    response = world.api.call("GET", "/api-keys", token=world.owner(index))
    seen = {k["key_id"]: k["revoked_at"] is not None for k in response.json["api_keys"]}
    assert seen == world.keys[index]
    return response


def op_rename(world, index, seed):
    name = f"World {index} v{seed}"
    response = world.api.call("PATCH", "/tenant", {"name": name}, token=world.owner(index))
    assert response.status_code == 200
    world.names[index] = name
    return response


def op_read_foreign_user(world, index, seed):
    foreign = sorted(world.users[(index + 1 + seed % 2) % len(world.tenants)])
    response = world.api.call("GET", f"/users/{foreign[seed % len(foreign)]}", token=world.owner(index))
    assert response.status_code == 404
    return response


OPERATIONS = [op_create_user, op_create_key, op_revoke_key, op_list_users, op_list_keys, op_rename,
              op_read_foreign_user]


@pytest.fixture(scope="module")
def world(module_api):
    return World(module_api)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(OPERATIONS), st.integers(0, 10_000)),
                      min_size=1, max_size=8))
def test_interleaved_operations_of_several_tenants_never_cross(world, steps):
    for index, operation, seed in steps:
        response = operation(world, index, seed)
        if response is not None:
            world.assert_private(index, response)
    for index in range(len(world.tenants)):
        world.assert_private(index, op_list_users(world, index, 0))
        world.assert_private(index, op_list_keys(world, index, 0))
        profile = world.api.call("GET", "/tenant", token=world.owner(index))
        assert (profile.json["tenant_id"], profile.json["name"]) == (world.tenants[index].id, world.names[index])
