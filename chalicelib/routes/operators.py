"""The platform operators' routes (the operator authorizer): tenants, platform usage and plans."""
from chalice import Response

from chalicelib import audit, offboarding, operators, plan_catalog
from chalicelib.metering import platform
from chalicelib.routes import Routes, operator_auth

routes = Routes(__name__)
query = routes.query


def audited(action, subject):
    return routes.audited(action, subject, operator=True)


# --- tenants -----------------------------------------------------------------

@routes.route("/admin/tenants", methods=["GET"], authorizer=operator_auth)
def admin_list_tenants():
    return operators.list_tenants(query("limit"), query("cursor"), query("sort"), query("order"), query("search"))


@routes.route("/admin/tenants/{tenant_id}", methods=["GET"], authorizer=operator_auth)
def admin_get_tenant(tenant_id):
    return operators.tenant_page(tenant_id, query("period"))


@routes.route("/admin/usage", methods=["GET"], authorizer=operator_auth)
def admin_platform_usage():
    return platform.totals(query("period"))


@routes.route("/admin/tenants/{tenant_id}/plan", methods=["PUT"], authorizer=operator_auth)
@audited("tenant.plan", audit.tenant_profile)
def admin_set_plan(tenant_id):
    return operators.set_plan(tenant_id, routes.body())


@routes.route("/admin/tenants/{tenant_id}/suspend", methods=["POST"], authorizer=operator_auth)
@audited("tenant.suspend", audit.tenant_profile)
def admin_suspend(tenant_id):
    return operators.set_status(tenant_id, "suspended")


@routes.route("/admin/tenants/{tenant_id}/resume", methods=["POST"], authorizer=operator_auth)
@audited("tenant.resume", audit.tenant_profile)
def admin_resume(tenant_id):
    return operators.set_status(tenant_id, "active")


@routes.route("/admin/tenants/{tenant_id}/limits", methods=["PUT"], authorizer=operator_auth)
@audited("tenant.limits", audit.tenant_profile)
def admin_set_limits(tenant_id):
    return operators.set_limits(tenant_id, routes.body())


@routes.route("/admin/tenants/{tenant_id}", methods=["DELETE"], authorizer=operator_auth)
@audited("tenant.delete", audit.tenant_profile)
def admin_delete_tenant(tenant_id):
    return Response(body=offboarding.request_deletion(tenant_id, routes.body(), routes.operator()), status_code=202)


@routes.route("/admin/tenants/{tenant_id}/export", methods=["POST"], authorizer=operator_auth)
@audited("tenant.export", audit.outcome)
def admin_export_tenant(tenant_id):
    return Response(body=offboarding.export_tenant(tenant_id, routes.operator()), status_code=201)


@routes.route("/admin/tenants/{tenant_id}/audit", methods=["GET"], authorizer=operator_auth)
def admin_audit(tenant_id):
    return audit.page(tenant_id, query("limit"), query("cursor"))


# --- plans as data: every edit a new version, recorded under plan:<name> (chalicelib/plan_catalog.py) ------

@routes.route("/admin/plans", methods=["GET"], authorizer=operator_auth)
def admin_list_plans():
    return plan_catalog.list_view()


@routes.route("/admin/plans", methods=["POST"], authorizer=operator_auth)
def admin_create_plan():
    return Response(body=plan_catalog.create(routes.body(), routes.operator()), status_code=201)


@routes.route("/admin/plans/{plan_id}", methods=["GET"], authorizer=operator_auth)
def admin_get_plan(plan_id):
    return plan_catalog.view(plan_catalog.require(plan_id))


@routes.route("/admin/plans/{plan_id}", methods=["PATCH"], authorizer=operator_auth)
def admin_edit_plan(plan_id):
    return plan_catalog.edit(plan_id, routes.body(), routes.operator())


@routes.route("/admin/plans/{plan_id}/versions", methods=["GET"], authorizer=operator_auth)
def admin_plan_versions(plan_id):
    return plan_catalog.versions_view(plan_id)


@routes.route("/admin/plans/{plan_id}/versions/{version}", methods=["GET"], authorizer=operator_auth)
def admin_plan_version(plan_id, version):
    return plan_catalog.version_view(plan_id, version)


@routes.route("/admin/plans/{plan_id}/audit", methods=["GET"], authorizer=operator_auth)
def admin_plan_audit(plan_id):
    return plan_catalog.audit_page(plan_id, query("limit"), query("cursor"))
