"""Tessera's HTTP API, authorizers and schedules: a table of contents.

The routes live in families, each a chalice Blueprint in chalicelib/routes/ registered below. Each route
parses its request, makes one service call and returns a dict; the tenant always comes from the
authorizer, never from a path, query or body. Logic lives in chalicelib/.
"""
import os

from chalice import Chalice, Rate

from chalicelib import offboarding, snapshot
from chalicelib.jobs.batch_sweep import sweep_batches
from chalicelib.jobs.budget_check import check_budgets
from chalicelib.metering import aggregator, sweeper
from chalicelib.routes import ai, anthropic, members, operators, public, request_scope, tenant
from chalicelib.routes.authorizers import authorizers, operator_auth, tenant_auth, tenant_request_auth
from chalicelib.web import envelope_middleware

# The app's logger is ours ("tessera", JSON lines from chalicelib.logs). Chalice's own set-up, and its
# `debug` setter, would set that logger to ERROR and drop every info and warning line (debug is off by default).
app = Chalice(app_name="tessera", configure_logs=False)
app.register_middleware(envelope_middleware, "http")
app.register_middleware(request_scope, "http")  # which request the route families (below) serve
snapshot.register()  # SnapStart's hooks (chalicelib/snapshot.py): init done ahead, each restore its own


# --- authorizers: a credential becomes the caller's context (chalicelib/routes/authorizers.py) ------------
# Lambda runs each as app.<name>: tenant_auth (TOKEN, chalice local), tenant_request_auth (the deployed
# REQUEST authorizer, dev/deploy/package.py) and operator_auth.
app.register_blueprint(authorizers)
__all__ = ["app", "operator_auth", "tenant_auth", "tenant_request_auth"]

# --- routes, by family (chalicelib/routes/<family>.py) ---------------------------------------------------
app.register_blueprint(public.routes)     # /health, /console, POST /tenants (sign-up), /auth/login
app.register_blueprint(tenant.routes)     # /me, /tenant, its AI settings, /models, /usage, /features, /audit, exports
app.register_blueprint(members.routes)    # /users, /api-keys, and each one's /budget
app.register_blueprint(ai.routes)         # /ai/chat, /ai/code-review, /ai/document-analysis, /prompts
app.register_blueprint(anthropic.routes)  # /v1/messages, count_tokens, batches, /v1/models, /v1/files (refused)
app.register_blueprint(operators.routes)  # /admin/*: tenants, platform usage, plans (the operator authorizer)


# --- events and schedules ----------------------------------------------------

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
