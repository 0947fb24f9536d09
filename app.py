"""Tessera's HTTP API, authorizers and schedules: translation only.

Each route parses its request, makes one service call and returns a dict.
The tenant always comes from the authorizer (`tenant()`), never from a path,
query or body. Logic lives in chalicelib/.
"""
import functools
import os

from chalice import AuthResponse, Chalice, Rate, Response
from chalice.app import AuthRequest

from chalicelib import (audit, console, keys, offboarding, operators, plan_catalog, principal_budgets, snapshot,
                        tenants, users, validation)
from chalicelib.ai import batches, calls, features, files_api, messages_api, models_api, prompts
from chalicelib.ai import settings as ai_settings
from chalicelib.ai.gateway import default_gateway
from chalicelib.errors import TesseraError
from chalicelib.identity import login as identity_login
from chalicelib.identity.resolve import ResolvedCache, credential_header, resolve, resolve_operator
from chalicelib.jobs.batch_sweep import sweep_batches
from chalicelib.jobs.budget_check import check_budgets
from chalicelib.metering import aggregator, platform, sweeper, usage
from chalicelib.periods import current_period
from chalicelib.web import (base_url, body, envelope_middleware, source_address, tenant_context, translated,
                            unauthorized)

# The app's logger is ours ("tessera", JSON lines from chalicelib.logs). Chalice's own set-up, and its
# `debug` setter, would set that logger to ERROR and drop every info and warning line (debug is off by default).
app = Chalice(app_name="tessera", configure_logs=False)
app.register_middleware(envelope_middleware, "http")
snapshot.register()  # SnapStart's hooks (chalicelib/snapshot.py): init done ahead, each restore its own


# --- authorizers -------------------------------------------------------------

# API Gateway caches a decision per token for AUTHORIZER_CACHE_SECONDS: a revoked key, a suspended tenant,
# a deleted user or a changed role takes effect within that time in deployed stages (at once locally).
# Without the cache every request would pay an authorizer invocation and a DynamoDB read.
AUTHORIZER_CACHE_SECONDS = 30


@app.authorizer(ttl_seconds=AUTHORIZER_CACHE_SECONDS)
def tenant_auth(auth_request):
    try:
        ctx = resolve(auth_request.token)
    except TesseraError as error:
        anthropic_shape = messages_api.error_body(error) if messages_api.is_v1(auth_request.method_arn) else None
        raise unauthorized(error, anthropic_shape) from None
    return AuthResponse(routes=["*"], principal_id=ctx.principal_id, context=ctx.to_authorizer())


_request_auth_cache = ResolvedCache(AUTHORIZER_CACHE_SECONDS)


@app.lambda_function(name="tenant_request_auth")
def tenant_request_auth(event, context):
    """The deployed tenant authorizer (a REQUEST authorizer, dev/deploy/package.py): it reads `Authorization` or
    Anthropic's `x-api-key`, which a TOKEN authorizer, reading one header, cannot. API Gateway cannot cache
    a decision keyed by either of two headers, so this keeps its own for AUTHORIZER_CACHE_SECONDS."""
    request = AuthRequest("REQUEST", credential_header(event.get("headers") or {}), event["methodArn"])
    try:
        ctx = _request_auth_cache.resolve(request.token)
    except TesseraError:
        raise Exception("Unauthorized") from None  # API Gateway's 401, in the gateway response's shape
    return AuthResponse(routes=["*"], principal_id=ctx.principal_id, context=ctx.to_authorizer()).to_dict(request)


@app.authorizer(ttl_seconds=AUTHORIZER_CACHE_SECONDS)
def operator_auth(auth_request):
    try:
        operator_id = resolve_operator(auth_request.token)
    except TesseraError as error:
        raise unauthorized(error) from None
    return AuthResponse(routes=["*"], principal_id=operator_id, context={"operator_id": operator_id})


def route(path, authorizer=tenant_auth, render=None, **kwargs):
    """app.route with the tenant authorizer by default and errors mapped to the envelope."""
    def register(view):
        wrapped = translated(view, render) if render else translated(view)
        return app.route(path, authorizer=authorizer, **kwargs)(wrapped)
    return register


def public(path, **kwargs):
    def register(view):
        return app.route(path, **kwargs)(translated(view))
    return register


def tenant():
    return tenant_context(app.current_request)


def needs_feature(feature):
    """Refuse the route unless the caller's plan includes `feature`."""
    def gate(view):
        @functools.wraps(view)
        def gated(*args, **kwargs):
            default_gateway().require_plan_feature(tenant().tenant_id, feature)
            return view(*args, **kwargs)
        return gated
    return gate


# Answer a retry carrying the same Idempotency-Key with the first call's response (billed once).
idempotent = calls.idempotent_view(lambda: app.current_request, lambda: tenant().tenant_id)

AI_BODY_BYTES = calls.AI_BODY_BYTES


def request_body(max_bytes=None):
    return body(app.current_request, max_bytes)


def query_param(name):
    return (app.current_request.query_params or {}).get(name)


def no_content():
    return Response(body="", status_code=204)


def as_tenant(params):
    ctx = tenant()
    return ctx.tenant_id, audit.Actor(ctx.principal_type, ctx.principal_id)


def as_operator(params):
    return params["tenant_id"], audit.Actor("operator", app.current_request.context["authorizer"]["operator_id"])


def audited(action, subject, operator=False):
    """Record the route's change in the tenant's audit trail (chalicelib/audit.py) once it succeeded."""
    return audit.audited(action, subject, as_operator if operator else as_tenant)


# --- public ------------------------------------------------------------------

@public("/health", methods=["GET"])
def health():
    return {"status": "ok"}


@public("/console", methods=["GET"])
def console_page():
    return static_file("index.html")


@public("/console/{name}", methods=["GET"])
def console_asset(name):
    return static_file(name)


def static_file(name):
    text, headers = console.asset(name)
    return Response(body=text, headers=headers)


@public("/tenants", methods=["POST"])
def sign_up():
    created = tenants.sign_up(request_body(), app.current_request.headers.get("idempotency-key"))
    return Response(body=created, status_code=201)


@public("/auth/login", methods=["POST"])
def log_in():
    request = app.current_request
    return identity_login.login(request_body(), request.headers.get("host"), source_address(request))


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
@audited("tenant.update", audit.tenant_profile)
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
@audited("user.create", audit.user)
def create_user():
    ctx = tenant()
    return Response(body=users.create_user(ctx.tenant_id, ctx, request_body()), status_code=201)


@route("/users/{user_id}", methods=["GET"])
def get_user(user_id):
    ctx = tenant()
    return users.get_user(ctx.tenant_id, ctx, user_id)


@route("/users/{user_id}", methods=["PATCH"])
@audited("user.role", audit.user)
def change_user_role(user_id):
    ctx = tenant()
    return users.change_role(ctx.tenant_id, ctx, user_id, request_body())


@route("/users/{user_id}", methods=["DELETE"])
@audited("user.delete", audit.user)
def delete_user(user_id):
    ctx = tenant()
    users.delete_user(ctx.tenant_id, ctx, user_id, validation.query_flag(query_param("revoke_keys"), "revoke_keys"))
    return no_content()


@route("/users/{user_id}/budget", methods=["GET"])
def get_user_budget(user_id):
    return principal_budgets.read(tenant(), "user", user_id)


@route("/users/{user_id}/budget", methods=["PUT"])
@audited("user.budget", principal_budgets.audit_subject("user_id"))
def set_user_budget(user_id):
    return principal_budgets.change(tenant(), "user", user_id, request_body())


# --- API keys ----------------------------------------------------------------

@route("/api-keys", methods=["POST"])
@audited("api_key.create", audit.api_key)
def create_api_key():
    ctx = tenant()
    return Response(body=keys.create_key(ctx.tenant_id, ctx, request_body()), status_code=201)


@route("/api-keys", methods=["GET"])
def list_api_keys():
    ctx = tenant()
    return {"api_keys": keys.list_keys(ctx.tenant_id, ctx)}


@route("/api-keys/{key_id}/budget", methods=["GET"])
def get_api_key_budget(key_id):
    return principal_budgets.read(tenant(), "api_key", key_id)


@route("/api-keys/{key_id}/budget", methods=["PUT"])
@audited("api_key.budget", principal_budgets.audit_subject("key_id"))
def set_api_key_budget(key_id):
    return principal_budgets.change(tenant(), "api_key", key_id, request_body())


@route("/api-keys/{key_id}", methods=["DELETE"])
@audited("api_key.revoke", audit.api_key)
def revoke_api_key(key_id):
    ctx = tenant()
    keys.revoke_key(ctx.tenant_id, ctx, key_id)
    return no_content()


# --- platform operators ------------------------------------------------------

@route("/admin/tenants", methods=["GET"], authorizer=operator_auth)
def admin_list_tenants():
    return operators.list_tenants(query_param("limit"), query_param("cursor"), query_param("sort"),
                                  query_param("order"), query_param("search"))


@route("/admin/tenants/{tenant_id}", methods=["GET"], authorizer=operator_auth)
def admin_get_tenant(tenant_id):
    return operators.tenant_page(tenant_id, query_param("period"))


@route("/admin/usage", methods=["GET"], authorizer=operator_auth)
def admin_platform_usage():
    return platform.totals(query_param("period"))


@route("/admin/tenants/{tenant_id}/plan", methods=["PUT"], authorizer=operator_auth)
@audited("tenant.plan", audit.tenant_profile, operator=True)
def admin_set_plan(tenant_id):
    return operators.set_plan(tenant_id, request_body())


@route("/admin/tenants/{tenant_id}/suspend", methods=["POST"], authorizer=operator_auth)
@audited("tenant.suspend", audit.tenant_profile, operator=True)
def admin_suspend(tenant_id):
    return operators.set_status(tenant_id, "suspended")


@route("/admin/tenants/{tenant_id}/resume", methods=["POST"], authorizer=operator_auth)
@audited("tenant.resume", audit.tenant_profile, operator=True)
def admin_resume(tenant_id):
    return operators.set_status(tenant_id, "active")


@route("/admin/tenants/{tenant_id}/limits", methods=["PUT"], authorizer=operator_auth)
@audited("tenant.limits", audit.tenant_profile, operator=True)
def admin_set_limits(tenant_id):
    return operators.set_limits(tenant_id, request_body())


@route("/admin/tenants/{tenant_id}", methods=["DELETE"], authorizer=operator_auth)
@audited("tenant.delete", audit.tenant_profile, operator=True)
def admin_delete_tenant(tenant_id):
    actor = as_operator({"tenant_id": tenant_id})[1]
    return Response(body=offboarding.request_deletion(tenant_id, request_body(), actor), status_code=202)


@route("/admin/tenants/{tenant_id}/export", methods=["POST"], authorizer=operator_auth)
@audited("tenant.export", audit.outcome, operator=True)
def admin_export_tenant(tenant_id):
    return Response(body=offboarding.export_tenant(tenant_id, as_operator({"tenant_id": tenant_id})[1]),
                    status_code=201)


@route("/admin/tenants/{tenant_id}/audit", methods=["GET"], authorizer=operator_auth)
def admin_audit(tenant_id):
    return audit.page(tenant_id, query_param("limit"), query_param("cursor"))


def operator():
    return audit.Actor("operator", app.current_request.context["authorizer"]["operator_id"])


# Plans as data: every edit a new version, recorded under plan:<name> (chalicelib/plan_catalog.py).
@route("/admin/plans", methods=["GET"], authorizer=operator_auth)
def admin_list_plans():
    return plan_catalog.list_view()


@route("/admin/plans", methods=["POST"], authorizer=operator_auth)
def admin_create_plan():
    return Response(body=plan_catalog.create(request_body(), operator()), status_code=201)


@route("/admin/plans/{plan_id}", methods=["GET"], authorizer=operator_auth)
def admin_get_plan(plan_id):
    return plan_catalog.view(plan_catalog.require(plan_id))


@route("/admin/plans/{plan_id}", methods=["PATCH"], authorizer=operator_auth)
def admin_edit_plan(plan_id):
    return plan_catalog.edit(plan_id, request_body(), operator())


@route("/admin/plans/{plan_id}/versions", methods=["GET"], authorizer=operator_auth)
def admin_plan_versions(plan_id):
    return plan_catalog.versions_view(plan_id)


@route("/admin/plans/{plan_id}/versions/{version}", methods=["GET"], authorizer=operator_auth)
def admin_plan_version(plan_id, version):
    return plan_catalog.version_view(plan_id, version)


@route("/admin/plans/{plan_id}/audit", methods=["GET"], authorizer=operator_auth)
def admin_plan_audit(plan_id):
    return plan_catalog.audit_page(plan_id, query_param("limit"), query_param("cursor"))


# --- audit trail and exports of the caller's tenant --------------------------

@route("/audit", methods=["GET"])
def get_audit():
    ctx = tenant()
    ctx.require("admin")
    return audit.page(ctx.tenant_id, query_param("limit"), query_param("cursor"))


@route("/tenant/export", methods=["POST"])
@audited("tenant.export", audit.outcome)
def export_tenant():
    ctx = tenant()
    ctx.require("owner")
    return Response(body=offboarding.export_tenant(*as_tenant({})), status_code=201)


@route("/tenant/exports/{export_id}", methods=["GET"])
def get_export(export_id):
    ctx = tenant()
    ctx.require("owner")
    return offboarding.get_export(ctx.tenant_id, export_id)


# --- AI settings and models --------------------------------------------------

@route("/tenant/ai-config", methods=["GET"])
def get_ai_config():
    return ai_settings.view(ai_settings.get_config(tenant().tenant_id))


@route("/tenant/ai-config", methods=["PUT"])
@audited("ai_settings.update", audit.ai_settings)
def update_ai_config():
    ctx = tenant()
    ctx.require("admin")
    plan = tenants.get_tenant(ctx.tenant_id).plan
    updated = ai_settings.update_config(ctx.tenant_id, plan, request_body())
    default_gateway().settings_changed(ctx.tenant_id)
    return updated


@route("/tenant/ai-config/api-key", methods=["PUT"])
@audited("own_key.set", audit.ai_settings)
def set_tenant_api_key():
    ctx = tenant()
    ctx.require("owner")
    updated = ai_settings.set_own_key(ctx.tenant_id, request_body())
    default_gateway().settings_changed(ctx.tenant_id)
    return updated


@route("/tenant/ai-config/api-key", methods=["DELETE"])
@audited("own_key.remove", audit.ai_settings)
def remove_tenant_api_key():
    ctx = tenant()
    ctx.require("owner")
    updated = ai_settings.remove_own_key(ctx.tenant_id)
    default_gateway().settings_changed(ctx.tenant_id)
    return updated


@route("/models", methods=["GET"])
def list_models():
    return ai_settings.models_for(tenants.get_tenant(tenant().tenant_id))


# --- AI features -------------------------------------------------------------

# POST /ai/chat and POST /v1/messages run here whole (chalice sends responses whole); deployed, API Gateway
# sends them to the streaming function instead (chalicelib/stream_host), which answers as produced.
def streamable(route_):
    return calls.answer(route_, default_gateway(), tenant(), app.current_request, calls.BUFFERED)


@route("/ai/chat", methods=["POST"])
@idempotent
def ai_chat():
    return streamable(calls.CHAT)


@route("/ai/code-review", methods=["POST"])
@idempotent
def ai_code_review():
    call = features.code_review(request_body(AI_BODY_BYTES))
    return default_gateway().run(tenant(), "code_review", call).as_response()


@route("/ai/document-analysis", methods=["POST"])
@idempotent
def ai_document_analysis():
    call = features.document_analysis(request_body(AI_BODY_BYTES))
    return default_gateway().run(tenant(), "document_analysis", call).as_response()


@route("/prompts", methods=["POST"])
@needs_feature("custom_prompts")
def create_prompt():
    ctx = tenant()
    ctx.require("admin")
    return Response(body=prompts.create_prompt(ctx.tenant_id, request_body()), status_code=201)


@route("/prompts", methods=["GET"])
@needs_feature("custom_prompts")
def list_prompts():
    return {"prompts": prompts.list_prompts(tenant().tenant_id)}


@route("/prompts/{prompt_id}", methods=["GET"])
@needs_feature("custom_prompts")
def get_prompt(prompt_id):
    ctx = tenant()
    return prompts.view(prompts.get_prompt(ctx.tenant_id, prompt_id))


@route("/prompts/{prompt_id}", methods=["PUT"])
@needs_feature("custom_prompts")
def update_prompt(prompt_id):
    ctx = tenant()
    ctx.require("admin")
    return prompts.update_prompt(ctx.tenant_id, prompt_id, request_body())


@route("/prompts/{prompt_id}", methods=["DELETE"])
@needs_feature("custom_prompts")
def delete_prompt(prompt_id):
    ctx = tenant()
    ctx.require("admin")
    prompts.delete_prompt(ctx.tenant_id, prompt_id)
    return no_content()


@route("/prompts/{prompt_id}/run", methods=["POST"])
@needs_feature("custom_prompts")
@idempotent
def run_prompt(prompt_id):
    ctx = tenant()
    call = prompts.render(prompts.get_prompt(ctx.tenant_id, prompt_id), request_body(AI_BODY_BYTES))
    return default_gateway().run(ctx, "custom_prompts", call).as_response()


# --- Anthropic-compatible API ------------------------------------------------

anthropic_error = calls.anthropic_error


@route("/v1/messages", methods=["POST"], render=anthropic_error)
@idempotent
def anthropic_messages():
    return streamable(calls.MESSAGES)


@route("/v1/messages/count_tokens", methods=["POST"], render=anthropic_error)
def anthropic_count_tokens():
    call = messages_api.parse_count(request_body(messages_api.BODY_BYTES),
                                   messages_api.parse_betas(app.current_request.headers))
    return messages_api.count_response(default_gateway().count_tokens(tenant(), messages_api.FEATURE, call))


@route("/v1/models", methods=["GET"], render=anthropic_error)
def anthropic_models():
    return models_api.list_models(tenants.get_tenant(tenant().tenant_id), query_param("limit"),
                                  query_param("after_id"), query_param("before_id"))


@route("/v1/models/{model_id}", methods=["GET"], render=anthropic_error)
def anthropic_model(model_id):
    return models_api.get_model(tenants.get_tenant(tenant().tenant_id), model_id)


@route("/v1/messages/batches", methods=["POST"], render=anthropic_error)
@idempotent
def anthropic_create_batch():
    return batches.create(default_gateway(), tenant(), request_body(messages_api.BODY_BYTES),
                          base_url(app.current_request))


@route("/v1/messages/batches", methods=["GET"], render=anthropic_error)
def anthropic_list_batches():
    return batches.list_batches(default_gateway(), tenant().tenant_id, query_param("limit"),
                                query_param("after_id"), query_param("before_id"), base_url(app.current_request))


@route("/v1/messages/batches/{message_batch_id}", methods=["GET"], render=anthropic_error)
def anthropic_batch(message_batch_id):
    return batches.retrieve(default_gateway(), tenant().tenant_id, message_batch_id, base_url(app.current_request))


@route("/v1/messages/batches/{message_batch_id}", methods=["DELETE"], render=anthropic_error)
def anthropic_delete_batch(message_batch_id):
    return batches.delete(default_gateway(), tenant().tenant_id, message_batch_id)


@route("/v1/messages/batches/{message_batch_id}/cancel", methods=["POST"], render=anthropic_error)
def anthropic_cancel_batch(message_batch_id):
    return batches.cancel(default_gateway(), tenant().tenant_id, message_batch_id, base_url(app.current_request))


@route("/v1/messages/batches/{message_batch_id}/results", methods=["GET"], render=anthropic_error)
def anthropic_batch_results(message_batch_id):
    lines = batches.results(default_gateway(), tenant().tenant_id, message_batch_id)
    return Response(body=batches.jsonl(lines), headers={"Content-Type": "application/x-jsonl"})


# Files: refused for every tenant, after the credential is checked (chalicelib/ai/files_api.py says why).
# Only text content types: chalice refuses a route that mixes binary and text ones (the SDK uploads multipart).
@route("/v1/files", methods=["GET", "POST"], render=anthropic_error,
       content_types=["application/json", "multipart/form-data"])
def anthropic_files():
    files_api.refuse()


@route("/v1/files/{file_id}", methods=["GET", "DELETE"], render=anthropic_error)
def anthropic_file(file_id):
    files_api.refuse()


@route("/v1/files/{file_id}/content", methods=["GET"], render=anthropic_error)
def anthropic_file_content(file_id):
    files_api.refuse()


# --- usage, features and budgets ---------------------------------------------

@route("/usage", methods=["GET"])
def get_usage():
    return usage.summary(tenants.get_tenant(tenant().tenant_id), query_param("period"))


@route("/usage/daily", methods=["GET"])
def get_daily_usage():
    return usage.daily(tenant().tenant_id, query_param("days"))


@route("/usage/events", methods=["GET"])
def list_usage_events():
    return usage.events(tenant().tenant_id, query_param("period"), query_param("limit"), query_param("cursor"))


@route("/features", methods=["GET"])
def list_features():
    return usage.feature_standing(tenants.get_tenant(tenant().tenant_id), current_period())


# The table's stream. Chalice needs the ARN when it loads the app. `chalice deploy --stage dev` reads it
# from TESSERA_TABLE_STREAM_ARN (the dev stage's resources stack, dev/deploy/dev_stage.py); for `make package` a
# placeholder names the stage's table and dev/deploy/template.py points the event source at its StreamArn.
TABLE_STREAM_ARN = os.environ.get("TESSERA_TABLE_STREAM_ARN") or (
    f"arn:aws:dynamodb:us-east-1:000000000000:table/{os.environ.get('TESSERA_TABLE_NAME', 'tessera')}"
    "/stream/TABLE_STREAM")


@app.on_dynamodb_record(stream_arn=TABLE_STREAM_ARN, batch_size=1000, starting_position="TRIM_HORIZON",
                        maximum_batching_window_in_seconds=1)
def usage_aggregator(event):
    report = aggregator.handle(event.to_dict()["Records"])
    return {"events": report.events, "duplicates": report.duplicates, "marks": report.marks}


@app.schedule(Rate(10, unit=Rate.MINUTES))
def reservation_sweeper(event):
    report = sweeper.sweep()
    return {"buckets": report.buckets, "tenants": report.tenants, "reclaims": report.reclaims}


@app.schedule(Rate(10, unit=Rate.MINUTES))
def batch_sweep(event):
    return sweep_batches().summary()


@app.schedule(Rate(1, unit=Rate.HOURS))
def budget_check(event):
    report = check_budgets()
    report.raise_if_incomplete()  # a failed invocation is retried by Lambda; the job repeats no alert
    return report.summary()


@app.schedule(Rate(15, unit=Rate.MINUTES))
def tenant_purge(event):
    """Deleted tenants' partitions, after their grace period; a run stops short of its time limit and the
    next one carries on (chalicelib/offboarding.py)."""
    return offboarding.purge_due(event.context.get_remaining_time_in_millis)
