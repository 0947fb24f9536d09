"""The caller and its tenant: the profile, its AI settings, its usage, its audit trail and exports."""
from chalice import Response

from chalicelib import audit, offboarding, tenants
from chalicelib.ai import settings as ai_settings
from chalicelib.ai.gateway import default_gateway
from chalicelib.metering import usage
from chalicelib.periods import current_period
from chalicelib.routes import Routes

routes = Routes(__name__)
tenant, audited = routes.tenant, routes.audited


@routes.route("/me", methods=["GET"])
def me():
    ctx = tenant()
    if ctx.is_user:
        return {"user_id": ctx.principal_id, "tenant_id": ctx.tenant_id, "email": ctx.display, "role": ctx.role,
                "principal_type": "user"}
    return {"key_id": ctx.principal_id, "name": ctx.display, "tenant_id": ctx.tenant_id, "role": ctx.role,
            "principal_type": "api_key"}


@routes.route("/tenant", methods=["GET"])
def get_tenant():
    return tenants.profile(tenants.get_tenant(tenant().tenant_id))


@routes.route("/tenant", methods=["PATCH"])
@audited("tenant.update", audit.tenant_profile)
def update_tenant():
    ctx = tenant()
    ctx.require("admin")
    return tenants.update_tenant(ctx.tenant_id, routes.body())


# --- audit trail and exports -------------------------------------------------

@routes.route("/audit", methods=["GET"])
def get_audit():
    ctx = tenant()
    ctx.require("admin")
    return audit.page(ctx.tenant_id, routes.query("limit"), routes.query("cursor"))


@routes.route("/tenant/export", methods=["POST"])
@audited("tenant.export", audit.outcome)
def export_tenant():
    ctx = tenant()
    ctx.require("owner")
    return Response(body=offboarding.export_tenant(*routes.as_tenant({})), status_code=201)


@routes.route("/tenant/exports/{export_id}", methods=["GET"])
def get_export(export_id):
    ctx = tenant()
    ctx.require("owner")
    return offboarding.get_export(ctx.tenant_id, export_id)


# --- AI settings and models --------------------------------------------------

@routes.route("/tenant/ai-config", methods=["GET"])
def get_ai_config():
    return ai_settings.view(ai_settings.get_config(tenant().tenant_id))


@routes.route("/tenant/ai-config", methods=["PUT"])
@audited("ai_settings.update", audit.ai_settings)
def update_ai_config():
    ctx = tenant()
    ctx.require("admin")
    plan = tenants.get_tenant(ctx.tenant_id).plan
    updated = ai_settings.update_config(ctx.tenant_id, plan, routes.body())
    default_gateway().settings_changed(ctx.tenant_id)
    return updated


@routes.route("/tenant/ai-config/api-key", methods=["PUT"])
@audited("own_key.set", audit.ai_settings)
def set_tenant_api_key():
    ctx = tenant()
    ctx.require("owner")
    updated = ai_settings.set_own_key(ctx.tenant_id, routes.body())
    default_gateway().settings_changed(ctx.tenant_id)
    return updated


@routes.route("/tenant/ai-config/api-key", methods=["DELETE"])
@audited("own_key.remove", audit.ai_settings)
def remove_tenant_api_key():
    ctx = tenant()
    ctx.require("owner")
    updated = ai_settings.remove_own_key(ctx.tenant_id)
    default_gateway().settings_changed(ctx.tenant_id)
    return updated


@routes.route("/models", methods=["GET"])
def list_models():
    return ai_settings.models_for(tenants.get_tenant(tenant().tenant_id))


# --- usage, features and budgets ---------------------------------------------

@routes.route("/usage", methods=["GET"])
def get_usage():
    return usage.summary(tenants.get_tenant(tenant().tenant_id), routes.query("period"))


@routes.route("/usage/daily", methods=["GET"])
def get_daily_usage():
    return usage.daily(tenant().tenant_id, routes.query("days"))


@routes.route("/usage/events", methods=["GET"])
def list_usage_events():
    return usage.events(tenant().tenant_id, routes.query("period"), routes.query("limit"), routes.query("cursor"))


@routes.route("/features", methods=["GET"])
def list_features():
    return usage.feature_standing(tenants.get_tenant(tenant().tenant_id), current_period())
