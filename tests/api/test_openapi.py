"""docs/openapi.yaml is Tessera's HTTP contract: it names exactly the routes app.py serves, declares each
route's authorizer as its security, is a valid OpenAPI 3.1 document, and describes what the routes really
return (real responses are validated against its schemas)."""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = ROOT / "docs" / "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
SCHEMES = {"tenant_auth": "tenantBearer", "operator_auth": "operatorBearer"}

try:
    import jsonschema
except ImportError:  # the small recursive check below still runs
    jsonschema = None


# --- reading the spec and the route table ---------------------------------------------------------

@functools.lru_cache(maxsize=1)
def spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text())


def operations():
    for path, item in spec()["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method.upper(), item[method]


def routes() -> dict:
    from app import app

    return {(path, method): entry for path, methods in app.routes.items() for method, entry in methods.items()}


def resolve(node: dict) -> dict:
    """Follow local `$ref`s (`#/components/...`) until a node without one."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/") and ref not in seen, f"unresolvable or circular $ref {ref}"
        seen.add(ref)
        target = spec()
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(target, dict) and part in target, f"$ref {ref} points nowhere"
            target = target[part]
        node = target
    return node


def walk(node, where="#"):
    """Every (location, dict) in the document."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{where}/{index}")


# --- 1. the spec documents exactly the routes app.py serves ---------------------------------------

def test_spec_documents_exactly_the_routes_of_app_py():
    documented = {(path, method) for path, method, _ in operations()}
    served = set(routes())
    assert not served - documented, f"routes missing from docs/openapi.yaml: {sorted(served - documented)}"
    assert not documented - served, f"documented but not served: {sorted(documented - served)}"


# --- 2. the document is valid OpenAPI 3.1 ---------------------------------------------------------

def test_spec_is_valid_openapi_3_1():
    try:
        from openapi_spec_validator import OpenAPIV31SpecValidator, validate
    except ImportError:
        pytest.skip("openapi-spec-validator is not installed; structural checks below still run")
    assert spec()["openapi"].startswith("3.1")
    validate(spec(), cls=OpenAPIV31SpecValidator)


def test_every_ref_resolves_to_an_existing_component():
    refs = [(where, node["$ref"]) for where, node in walk(spec()) if isinstance(node.get("$ref"), str)]
    assert refs
    for where, ref in refs:
        assert ref.startswith("#/components/"), f"{where}: $ref {ref} is not a local component"
        resolve({"$ref": ref})


def test_every_operation_has_a_summary_and_real_responses():
    for path, method, op in operations():
        assert op.get("summary"), f"{method} {path} has no summary"
        responses = op.get("responses") or {}
        assert responses, f"{method} {path} has no responses"
        for status, response in responses.items():
            assert re.fullmatch(r"[1-5]\d\d", str(status)), f"{method} {path}: status {status!r}"
            assert resolve(response).get("description"), f"{method} {path} {status} has no description"
        if path not in REFUSED_ONLY:
            assert any(str(s).startswith("2") for s in responses), f"{method} {path} has no success response"


# Routes that refuse every call (the Files API is not offered: chalicelib/ai/files_api.py).
REFUSED_ONLY = {"/v1/files", "/v1/files/{file_id}", "/v1/files/{file_id}/content"}


def test_creates_answer_201_and_deletes_204_as_the_routes_do():
    for path, method, op in operations():
        codes = {str(s) for s in op["responses"] if str(s).startswith("2")}
        if op["operationId"] in ("signUp", "createUser", "createApiKey", "createPrompt", "exportTenant",
                                 "adminExportTenant", "adminCreatePlan"):
            assert codes == {"201"}, (method, path)
        elif op["operationId"] == "adminDeleteTenant":  # accepted: the purge follows the grace period
            assert codes == {"202"}, (method, path)
        elif method == "DELETE" and path not in ("/tenant/ai-config/api-key",  # answers 200 with the settings
                                                 "/v1/messages/batches/{message_batch_id}",  # Anthropic's 200
                                                 *REFUSED_ONLY):
            assert codes == {"204"}, (method, path)
            assert "content" not in op["responses"]["204"]
        elif path in REFUSED_ONLY:
            assert codes == set(), (method, path)
        else:
            assert codes == {"200"}, (method, path)


def test_every_path_parameter_is_declared():
    for path, method, op in operations():
        item = spec()["paths"][path]
        declared = {resolve(p)["name"] for p in item.get("parameters", []) + op.get("parameters", [])
                    if resolve(p)["in"] == "path"}
        assert declared == set(re.findall(r"\{([^}]+)\}", path)), f"{method} {path}"


def test_request_bodies_reject_unknown_fields_as_the_code_does():
    for path, method, op in operations():
        if "requestBody" in op:
            schema = resolve(op["requestBody"]["content"]["application/json"]["schema"])
            assert schema.get("additionalProperties") is False, f"{method} {path}"


def test_error_responses_carry_the_envelope_and_429_carries_retry_after():
    components = spec()["components"]["responses"]
    for name in ("BadRequest", "Unauthorized", "PaymentRequired", "Forbidden", "NotFound", "Conflict",
                 "PayloadTooLarge", "TooManyRequests", "Upstream"):
        assert name in components, name
    assert components["TooManyRequests"]["headers"]["Retry-After"]
    for path, method, op in operations():
        too_many = op["responses"].get("429")
        if too_many:
            assert "Retry-After" in resolve(too_many).get("headers", {}), f"{method} {path}"


def test_the_reserved_slugs_are_the_codes_own():
    from chalicelib.tenants import ADDRESS_LIKE_SLUG, RESERVED_SLUGS

    reserved = spec()["components"]["schemas"]["SignupRequest"]["properties"]["slug"]["not"]["anyOf"]
    assert set(reserved[0]["enum"]) == RESERVED_SLUGS
    assert [b["pattern"] for b in reserved[1:]] == [f"^{p}$" for p in ADDRESS_LIKE_SLUG.pattern.split("|")]


def test_the_budget_string_is_the_codes_own():
    from chalicelib.tenants import BUDGET_STRING

    branches = spec()["components"]["schemas"]["TenantUpdate"]["properties"]["monthly_budget_usd"]["oneOf"]
    assert [b["pattern"] for b in branches if b.get("type") == "string"] == [BUDGET_STRING.pattern]


def test_the_email_pattern_is_the_codes_own():
    from chalicelib.validation import _EMAIL

    assert spec()["components"]["schemas"]["Email"]["pattern"] == _EMAIL.pattern


# --- 3. security matches each route's authorizer --------------------------------------------------

def test_security_matches_each_routes_authorizer():
    served = routes()
    for path, method, op in operations():
        entry = served[(path, method)]
        assert "security" in op, f"{method} {path} declares no security"
        if entry.authorizer is None:
            assert op["security"] == [], f"{method} {path} is public but declares {op['security']}"
        else:
            scheme = SCHEMES[entry.authorizer.name]
            assert op["security"] == [{scheme: []}], f"{method} {path} needs {scheme}"
            assert scheme in spec()["components"]["securitySchemes"]


def test_tenant_routes_document_x_tenant_id_and_the_others_do_not():
    served = routes()
    for path, method, op in operations():
        headers = {resolve(p)["name"].lower() for p in op.get("parameters", []) if resolve(p)["in"] == "header"}
        authorizer = served[(path, method)].authorizer
        is_tenant_route = authorizer is not None and authorizer.name == "tenant_auth"
        assert ("x-tenant-id" in headers) == is_tenant_route, f"{method} {path}"


# --- 4. real responses match the documented schemas -----------------------------------------------

def response_spec(path: str, method: str, status: int) -> dict:
    responses = spec()["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} does not document status {status}"
    return resolve(responses[str(status)])


def keys_match(body, schema, where="body"):
    """A small recursive check without jsonschema: required keys present, no undeclared ones, JSON types."""
    schema = resolve(schema)
    for keyword in ("oneOf", "anyOf"):
        if keyword in schema:
            failures = []
            for branch in schema[keyword]:
                try:
                    keys_match(body, branch, where)
                    return
                except AssertionError as error:
                    failures.append(str(error))
            raise AssertionError(f"{where} matches no {keyword} branch: {failures}")
    types = schema.get("type")
    types = [types] if isinstance(types, str) else (types or [])
    python_types = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
                    "integer": int, "number": (int, float)}
    if types:
        assert any(isinstance(body, python_types[t]) and not (t in ("integer", "number") and isinstance(body, bool))
                   for t in types), f"{where}: {body!r} is not {types}"
    if "const" in schema:
        assert body == schema["const"], f"{where}: {body!r} != {schema['const']!r}"
    if isinstance(body, dict):
        properties = schema.get("properties", {})
        missing = set(schema.get("required", [])) - set(body)
        assert not missing, f"{where} lacks {sorted(missing)}"
        if schema.get("additionalProperties") is False:
            extra = set(body) - set(properties)
            assert not extra, f"{where} has undocumented {sorted(extra)}"
        for key, value in body.items():
            if key in properties:
                keys_match(value, properties[key], f"{where}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                keys_match(value, schema["additionalProperties"], f"{where}.{key}")
    if isinstance(body, list) and "items" in schema:
        for index, item in enumerate(body):
            keys_match(item, schema["items"], f"{where}[{index}]")


def header(response, name):
    return {k.lower(): v for k, v in response.headers.items()}.get(name.lower())


def check(response, path: str, method: str, status: int):
    """The response has the documented status, headers and body; returns the body."""
    assert response.status_code == status, f"{method} {path}: {response.status_code} {response.body!r}"
    documented = response_spec(path, method, status)
    for name, value in documented.get("headers", {}).items():
        value = resolve(value)
        if value.get("required"):
            assert header(response, name) is not None, f"{method} {path} {status}: no {name} header"
            if jsonschema is not None:
                raw = header(response, name)
                value_schema = value["schema"]
                jsonschema.validate(int(raw) if resolve(value_schema).get("type") == "integer" else raw,
                                    {"components": spec()["components"], **value_schema})
    if "content" not in documented:
        assert not response.body, f"{method} {path} {status} should have no body"
        return None
    schema = documented["content"]["application/json"]["schema"]
    body = json.loads(response.body)
    if jsonschema is not None:
        # The schema's `#/components/...` refs resolve against this root, which carries the spec's components.
        validator = jsonschema.Draft202012Validator({"components": spec()["components"], **schema},
                                                    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        assert not errors, f"{method} {path} {status}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors[:5])
    keys_match(body, schema, f"{method} {path} {status}")
    top = resolve(schema)
    if top.get("additionalProperties") is False and isinstance(body, dict):
        assert set(body) == set(top["required"]), f"{method} {path} {status}: keys {sorted(body)}"
    return body


def test_public_and_account_responses_match_the_spec(api):
    from conftest import random_slug

    check(api.call("GET", "/health"), "/health", "GET", 200)

    slug = random_slug("oa")
    email, password = f"owner@{slug}.example.com", "correct-horse-battery"
    created = check(api.call("POST", "/tenants", {"company_name": "Acme Inc", "slug": slug, "email": email,
                                                  "password": password}), "/tenants", "POST", 201)
    login = check(api.call("POST", "/auth/login", {"tenant": slug, "email": email, "password": password}),
                  "/auth/login", "POST", 200)
    token = login["access_token"]

    me = check(api.call("GET", "/me", token=token), "/me", "GET", 200)
    assert (me["principal_type"], me["tenant_id"]) == ("user", created["tenant_id"])
    profile = check(api.call("GET", "/tenant", token=token), "/tenant", "GET", 200)
    assert profile["budget"]["monthly_budget_usd"] is None
    usage = check(api.call("GET", "/usage", token=token), "/usage", "GET", 200)
    assert usage["total_cost_usd"] == "0.000000"
    features = check(api.call("GET", "/features", token=token), "/features", "GET", 200)
    assert features["features"]["code_review"]["enabled"] is False
    check(api.call("GET", "/models", token=token), "/models", "GET", 200)
    check(api.call("GET", "/tenant/ai-config", token=token), "/tenant/ai-config", "GET", 200)
    check(api.call("GET", "/users", token=token), "/users", "GET", 200)

    budget = check(api.call("PATCH", "/tenant", {"monthly_budget_usd": "12.5", "budget_hard_limit": False},
                            token=token), "/tenant", "PATCH", 200)
    assert budget["budget"]["monthly_budget_usd"] == "12.500000"
    check(api.call("GET", "/usage", token=token), "/usage", "GET", 200)

    key = check(api.call("POST", "/api-keys", {"name": "ci"}, token=token), "/api-keys", "POST", 201)
    key_me = check(api.call("GET", "/me", token=key["key"]), "/me", "GET", 200)
    assert (key_me["principal_type"], key_me["role"]) == ("api_key", "member")
    check(api.call("GET", "/api-keys", token=token), "/api-keys", "GET", 200)
    check(api.call("DELETE", f"/api-keys/{key['key_id']}", token=token), "/api-keys/{key_id}", "DELETE", 204)


def test_error_responses_match_the_spec(api):
    tenant = api.signup()
    failure = check(api.call("PATCH", "/tenant", {}, token=tenant.token), "/tenant", "PATCH", 400)
    assert failure["error"]["code"] == "empty_update"
    mismatch = check(api.call("GET", "/tenant", token=tenant.token, headers={"X-Tenant-ID": "ten_other"}),
                     "/tenant", "GET", 403)
    assert mismatch["error"]["code"] == "tenant_mismatch"
    check(api.call("GET", "/users/usr_missing", token=tenant.token), "/users/{user_id}", "GET", 404)
    taken = check(api.call("POST", "/tenants", {"company_name": "Again", "slug": tenant.slug,
                                                "email": "again@example.com", "password": "correct-horse-battery"}),
                  "/tenants", "POST", 409)
    assert taken["error"]["code"] == "slug_taken"
    gated = check(api.call("POST", "/ai/code-review", {"code": "print(1)"}, token=tenant.token),
                  "/ai/code-review", "POST", 403)
    assert (gated["error"]["feature"], gated["error"]["required_plan"]) == ("code_review", "pro")
    check(api.call("GET", "/me"), "/me", "GET", 401)


def test_ai_responses_match_the_spec(api):
    tenant = api.signup()
    chat = check(api.call("POST", "/ai/chat", {"messages": [{"role": "user", "content": "openapi-probe"}]},
                          token=tenant.token), "/ai/chat", "POST", 200)
    events = check(api.call("GET", "/usage/events?limit=10", token=tenant.token), "/usage/events", "GET", 200)
    assert [e["request_id"] for e in events["events"]] == [chat["id"]]
    usage = check(api.call("GET", "/usage", token=tenant.token), "/usage", "GET", 200)
    assert usage["by_feature"]["basic_chat"]["cost_usd"] == chat["cost_usd"]

    limited = check(api.call("POST", "/ai/chat", {"messages": [{"role": "user", "content": "[[standin:429]]"}]},
                             token=tenant.token), "/ai/chat", "POST", 429)
    assert limited["error"]["code"] == "upstream_rate_limited"

    key = api.api_key(tenant)["key"]
    message = check(api.call("POST", "/v1/messages", {"model": "claude-sonnet-4-6", "max_tokens": 32,
                                                      "messages": [{"role": "user", "content": "sdk-shape"}]},
                             token=key), "/v1/messages", "POST", 200)
    assert message["type"] == "message"
    refused = check(api.call("POST", "/v1/messages", {"model": "claude-sonnet-4-6", "max_tokens": 32, "a_new_field": 1,
                                                      "messages": [{"role": "user", "content": "hi"}]},
                             token=key), "/v1/messages", "POST", 400)
    assert refused["error"] == {"type": "invalid_request_error", "message": refused["error"]["message"],
                                "code": "unknown_field"}
    streamed = api.call("POST", "/v1/messages", {"model": "claude-sonnet-4-6", "max_tokens": 32, "stream": True,
                                                 "messages": [{"role": "user", "content": "hi"}]}, token=key)
    assert streamed.status_code == 200 and "text/event-stream" in response_spec("/v1/messages", "POST", 200)["content"]
    assert header(streamed, "content-type") == "text/event-stream"
    counted = check(api.call("POST", "/v1/messages/count_tokens", {"model": "claude-sonnet-4-6", "messages": [
        {"role": "user", "content": "hi"}]}, token=key), "/v1/messages/count_tokens", "POST", 200)
    assert counted["input_tokens"] > 0
    page = check(api.call("GET", "/v1/models?limit=1", token=key), "/v1/models", "GET", 200)
    model = check(api.call("GET", f"/v1/models/{page['first_id']}", token=key), "/v1/models/{model_id}", "GET", 200)
    assert model["id"] == page["data"][0]["id"]
    missing = check(api.call("GET", "/v1/models/claude-opus-5", token=key), "/v1/models/{model_id}", "GET", 404)
    assert missing["error"]["type"] == "not_found_error"
    denied = check(api.call("GET", "/v1/models", token="tsk_ten_x.key_x.nope"), "/v1/models", "GET", 401)
    assert denied["error"]["type"] == "authentication_error"


def test_message_batch_responses_match_the_spec(api, monkeypatch):
    import time

    monkeypatch.setenv("STANDIN_BATCH_SECONDS", "1.5")
    tenant = api.signup()
    key = api.api_key(tenant)["key"]
    params = {"model": "claude-sonnet-4-6", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    created = check(api.call("POST", "/v1/messages/batches", {"requests": [{"custom_id": "a", "params": params}]},
                             token=key), "/v1/messages/batches", "POST", 200)
    path = "/v1/messages/batches/{message_batch_id}"
    early = check(api.call("GET", f"/v1/messages/batches/{created['id']}/results", token=key), path + "/results",
                  "GET", 400)
    assert early["error"]["code"] == "batch_not_ended"
    time.sleep(1.6)
    ended = check(api.call("GET", f"/v1/messages/batches/{created['id']}", token=key), path, "GET", 200)
    assert ended["processing_status"] == "ended"
    page = check(api.call("GET", "/v1/messages/batches?limit=1", token=key), "/v1/messages/batches", "GET", 200)
    assert page["first_id"] == created["id"]
    check(api.call("POST", f"/v1/messages/batches/{created['id']}/cancel", token=key), path + "/cancel", "POST", 200)
    results = api.call("GET", f"/v1/messages/batches/{created['id']}/results", token=key)
    assert results.status_code == 200 and header(results, "content-type") in response_spec(
        path + "/results", "GET", 200)["content"]
    bad = check(api.call("POST", "/v1/messages/batches", {"requests": [{"custom_id": "a", "params": {}}]},
                         token=key), "/v1/messages/batches", "POST", 400)
    assert (bad["error"]["index"], bad["error"]["custom_id"]) == (0, "a")
    check(api.call("DELETE", f"/v1/messages/batches/{created['id']}", token=key), path, "DELETE", 200)
    check(api.call("GET", f"/v1/messages/batches/{created['id']}", token=key), path, "GET", 404)
    check(api.call("GET", "/v1/files/file_1/content", token=key), "/v1/files/{file_id}/content", "GET", 404)
