"""Tessera's HTTP API, authorizers and schedules: translation only.

Each route parses its request, makes one service call and returns a dict.
The tenant always comes from the authorizer (`tenant()`), never from a path,
query or body. Logic lives in chalicelib/.
"""
from chalice import AuthResponse, Chalice, Response

from chalicelib import keys, operators, tenants, users
from chalicelib.errors import TesseraError
from chalicelib.identity import login as identity_login
from chalicelib.identity.resolve import resolve, resolve_operator
from chalicelib.web import body, envelope_middleware, tenant_context, translated

app = Chalice(app_name="tessera")
app.debug = False
app.register_middleware(envelope_middleware, "http")


# --- authorizers -------------------------------------------------------------

@app.authorizer(ttl_seconds=60)
def tenant_auth(auth_request):
    try:
        ctx = resolve(auth_request.token)
    except TesseraError:
        return AuthResponse(routes=[], principal_id="anonymous")
    return AuthResponse(routes=["*"], principal_id=ctx.principal_id, context=ctx.to_authorizer())


@app.authorizer(ttl_seconds=60)
def operator_auth(auth_request):
    try:
        operator_id = resolve_operator(auth_request.token)
    except TesseraError:
        return AuthResponse(routes=[], principal_id="anonymous")
    return AuthResponse(routes=["*"], principal_id=operator_id, context={"operator_id": operator_id})


def route(path, authorizer=tenant_auth, **kwargs):
    """app.route with the tenant authorizer by default and errors mapped to the envelope."""
    def register(view):
        return app.route(path, authorizer=authorizer, **kwargs)(translated(view))
    return register


def public(path, **kwargs):
    def register(view):
        return app.route(path, **kwargs)(translated(view))
    return register


def tenant():
    return tenant_context(app.current_request)


def request_body():
    return body(app.current_request)


def no_content():
    return Response(body="", status_code=204)


# --- public ------------------------------------------------------------------

@public("/health", methods=["GET"])
def health():
    return {"status": "ok"}


@public("/tenants", methods=["POST"])
def sign_up():
    created = tenants.sign_up(request_body(), app.current_request.headers.get("idempotency-key"))
    return Response(body=created, status_code=201)


@public("/auth/login", methods=["POST"])
def log_in():
    return identity_login.login(request_body(), app.current_request.headers.get("host"))


# --- the caller and its tenant ----------------------------------------------

@route("/me", methods=["GET"])
def me():
    ctx = tenant()
    if ctx.is_user:
        return {"user_id": ctx.principal_id, "tenant_id": ctx.tenant_id, "email": ctx.display, "role": ctx.role,
                "principal_type": "user"}
    return {"key_id": ctx.principal_id, "name": ctx.display, "tenant_id": ctx.tenant_id, "role": ctx.role,
            "principal_type": "api_key"}


@route("/tenant", methods=["GET"])
def get_tenant():
    return tenants.profile(tenants.get_tenant(tenant().tenant_id))


@route("/tenant", methods=["PATCH"])
def update_tenant():
    ctx = tenant()
    ctx.require("admin")
    return tenants.update_tenant(ctx.tenant_id, request_body())


# --- users -------------------------------------------------------------------

@route("/users", methods=["GET"])
def list_users():
    ctx = tenant()
    return {"users": users.list_users(ctx.tenant_id, ctx)}


@route("/users", methods=["POST"])
def create_user():
    ctx = tenant()
    return Response(body=users.create_user(ctx.tenant_id, ctx, request_body()), status_code=201)


@route("/users/{user_id}", methods=["GET"])
def get_user(user_id):
    ctx = tenant()
    return users.get_user(ctx.tenant_id, ctx, user_id)


@route("/users/{user_id}", methods=["PATCH"])
def change_user_role(user_id):
    ctx = tenant()
    return users.change_role(ctx.tenant_id, ctx, user_id, request_body())


@route("/users/{user_id}", methods=["DELETE"])
def delete_user(user_id):
    ctx = tenant()
    users.delete_user(ctx.tenant_id, ctx, user_id)
    return no_content()


# --- API keys ----------------------------------------------------------------

@route("/api-keys", methods=["POST"])
def create_api_key():
    ctx = tenant()
    return Response(body=keys.create_key(ctx.tenant_id, ctx, request_body()), status_code=201)


@route("/api-keys", methods=["GET"])
def list_api_keys():
    ctx = tenant()
    return {"api_keys": keys.list_keys(ctx.tenant_id, ctx)}


@route("/api-keys/{key_id}", methods=["DELETE"])
def revoke_api_key(key_id):
    ctx = tenant()
    keys.revoke_key(ctx.tenant_id, ctx, key_id)
    return no_content()


# --- platform operators ------------------------------------------------------

def query_param(name):
    return (app.current_request.query_params or {}).get(name)


@route("/admin/tenants", methods=["GET"], authorizer=operator_auth)
def admin_list_tenants():
    return operators.list_tenants(query_param("limit"), query_param("cursor"))


@route("/admin/tenants/{tenant_id}/plan", methods=["PUT"], authorizer=operator_auth)
def admin_set_plan(tenant_id):
    return operators.set_plan(tenant_id, request_body())


@route("/admin/tenants/{tenant_id}/suspend", methods=["POST"], authorizer=operator_auth)
def admin_suspend(tenant_id):
    return operators.set_status(tenant_id, "suspended")


@route("/admin/tenants/{tenant_id}/resume", methods=["POST"], authorizer=operator_auth)
def admin_resume(tenant_id):
    return operators.set_status(tenant_id, "active")


@route("/admin/tenants/{tenant_id}/limits", methods=["PUT"], authorizer=operator_auth)
def admin_set_limits(tenant_id):
    return operators.set_limits(tenant_id, request_body())
