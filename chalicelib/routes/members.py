"""The tenant's members: its users and API keys, and each one's own budget."""
from chalice import Response

from chalicelib import audit, keys, principal_budgets, users, validation
from chalicelib.routes import Routes, no_content

routes = Routes(__name__)
tenant, audited = routes.tenant, routes.audited


# --- users -------------------------------------------------------------------

@routes.route("/users", methods=["GET"])
def list_users():
    ctx = tenant()
    return {"users": users.list_users(ctx.tenant_id, ctx)}


@routes.route("/users", methods=["POST"])
@audited("user.create", audit.user)
def create_user():
    ctx = tenant()
    return Response(body=users.create_user(ctx.tenant_id, ctx, routes.body()), status_code=201)


@routes.route("/users/{user_id}", methods=["GET"])
def get_user(user_id):
    ctx = tenant()
    return users.get_user(ctx.tenant_id, ctx, user_id)


@routes.route("/users/{user_id}", methods=["PATCH"])
@audited("user.role", audit.user)
def change_user_role(user_id):
    ctx = tenant()
    return users.change_role(ctx.tenant_id, ctx, user_id, routes.body())


@routes.route("/users/{user_id}", methods=["DELETE"])
@audited("user.delete", audit.user)
def delete_user(user_id):
    ctx = tenant()
    users.delete_user(ctx.tenant_id, ctx, user_id, validation.query_flag(routes.query("revoke_keys"), "revoke_keys"))
    return no_content()


@routes.route("/users/{user_id}/budget", methods=["GET"])
def get_user_budget(user_id):
    return principal_budgets.read(tenant(), "user", user_id)


@routes.route("/users/{user_id}/budget", methods=["PUT"])
@audited("user.budget", principal_budgets.audit_subject("user_id"))
def set_user_budget(user_id):
    return principal_budgets.change(tenant(), "user", user_id, routes.body())


# --- API keys ----------------------------------------------------------------

@routes.route("/api-keys", methods=["POST"])
@audited("api_key.create", audit.api_key)
def create_api_key():
    ctx = tenant()
    return Response(body=keys.create_key(ctx.tenant_id, ctx, routes.body()), status_code=201)


@routes.route("/api-keys", methods=["GET"])
def list_api_keys():
    ctx = tenant()
    return {"api_keys": keys.list_keys(ctx.tenant_id, ctx)}


@routes.route("/api-keys/{key_id}/budget", methods=["GET"])
def get_api_key_budget(key_id):
    return principal_budgets.read(tenant(), "api_key", key_id)


@routes.route("/api-keys/{key_id}/budget", methods=["PUT"])
@audited("api_key.budget", principal_budgets.audit_subject("key_id"))
def set_api_key_budget(key_id):
    return principal_budgets.change(tenant(), "api_key", key_id, routes.body())


@routes.route("/api-keys/{key_id}", methods=["DELETE"])
@audited("api_key.revoke", audit.api_key)
def revoke_api_key(key_id):
    ctx = tenant()
    keys.revoke_key(ctx.tenant_id, ctx, key_id)
    return no_content()
